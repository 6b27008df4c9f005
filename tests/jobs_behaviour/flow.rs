//! Cases about the way jobs flow: results, counts, ordering by priority and delay, bulk add,
//! idempotent ids.

use super::*;

pub(super) async fn processed_with_result_stored(queue: Queue) {
    let w = worker(&queue)
        .handle("double", |n: u64| async move { Ok::<_, io::Error>(n * 2) })
        .start()
        .await
        .unwrap();
    let id = queue
        .add("double", &21u64, JobOptions::new())
        .await
        .unwrap();
    let job = finished(&queue, &id).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.result, Some(json!(42)));
    assert_eq!(job.data, json!(21));
    assert_eq!(job.attempts_made, 1);
    assert_eq!(job.name, "double");
    assert_eq!(queue.counts().await.unwrap().completed, 1);
    w.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn counts_and_job_info(queue: Queue) {
    let now = queue
        .add("a", &json!({"k": 1}), JobOptions::new())
        .await
        .unwrap();
    let later = queue
        .add(
            "b",
            &2u8,
            JobOptions::new()
                .delay(Duration::from_secs(3600))
                .priority(JobPriority::Low),
        )
        .await
        .unwrap();
    assert_ne!(now, later);
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.delayed, counts.active), (1, 1, 0));
    let a = queue.job(&now).await.unwrap().expect("job a");
    assert_eq!(
        (a.state, a.priority, a.attempts_made),
        (JobState::Waiting, 3, 0)
    );
    assert_eq!(a.data, json!({"k": 1}));
    assert_eq!((a.result, a.failed_reason), (None, None));
    let b = queue.job(&later).await.unwrap().expect("job b");
    assert_eq!((b.state, b.priority), (JobState::Delayed, 4));
    assert!(queue.job("no-such-job").await.unwrap().is_none());
    assert!(queue.oldest_waiting_age().await.unwrap().is_some());
}

/// Adds jobs named `step` with the given labels and options, runs them with one worker of
/// concurrency 1, and returns the order the handler saw them in.
async fn run_in_order(queue: &Queue, jobs: Vec<(&str, JobOptions)>) -> Vec<String> {
    let mut ids = Vec::new();
    for (label, opts) in jobs {
        ids.push(queue.add("step", label, opts).await.unwrap());
    }
    let seen = log();
    let sink = seen.clone();
    let w = worker(queue)
        .handle("step", move |label: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(label);
                Ok::<_, io::Error>(())
            }
        })
        .start()
        .await
        .unwrap();
    for id in &ids {
        finished(queue, id).await;
    }
    w.close(Duration::from_secs(5)).await.unwrap();
    entries(&seen)
}

pub(super) async fn priority_order(queue: Queue) {
    let p = |p: JobPriority| JobOptions::new().priority(p);
    let order = run_in_order(
        &queue,
        vec![
            ("low", p(JobPriority::Low)),
            ("normal", p(JobPriority::Normal)),
            ("unprioritized", p(JobPriority::Level(0))),
            ("high", p(JobPriority::High)),
            ("critical", p(JobPriority::Critical)),
            ("normal-2", JobOptions::new()),
        ],
    )
    .await;
    assert_eq!(
        order,
        [
            "unprioritized",
            "critical",
            "high",
            "normal",
            "normal-2",
            "low"
        ]
    );
}

pub(super) async fn lifo_first_in_its_level(queue: Queue) {
    let zero = || JobOptions::new().priority(JobPriority::Level(0));
    let order = run_in_order(
        &queue,
        vec![("a", zero()), ("b", zero()), ("c", zero().lifo())],
    )
    .await;
    assert_eq!(order, ["c", "a", "b"]);
}

pub(super) async fn delay_order(queue: Queue) {
    let t0 = Instant::now();
    let delays = [("late", 600), ("early", 200), ("mid", 400), ("now", 0)];
    let mut ids = Vec::new();
    for (label, ms) in delays {
        let mut opts = JobOptions::new();
        if ms > 0 {
            opts = opts.delay(Duration::from_millis(ms));
        }
        ids.push(queue.add("step", label, opts).await.unwrap());
    }
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.delayed, counts.waiting), (3, 1));
    let seen: Log<(String, Duration)> = log();
    let sink = seen.clone();
    let w = worker(&queue)
        .handle("step", move |label: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((label, t0.elapsed()));
                Ok::<_, io::Error>(())
            }
        })
        .start()
        .await
        .unwrap();
    for id in &ids {
        finished(&queue, id).await;
    }
    w.close(Duration::from_secs(5)).await.unwrap();
    let seen = entries(&seen);
    let labels: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["now", "early", "mid", "late"]);
    for (label, at) in &seen {
        let ms = delays
            .iter()
            .find(|(l, _)| l == label)
            .map(|d| d.1)
            .unwrap();
        assert!(
            *at + slack(&queue) >= Duration::from_millis(ms),
            "{label} ran after {at:?}, before its delay of {ms} ms"
        );
    }
}

pub(super) async fn bulk_add(queue: Queue) {
    let ids = queue
        .add_bulk((1..=50u64).map(|n| ("sum", n, JobOptions::new())))
        .await
        .unwrap();
    assert_eq!(ids.len(), 50);
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 50);
    assert_eq!(queue.counts().await.unwrap().waiting, 50);
    assert_eq!(queue.job(&ids[9]).await.unwrap().unwrap().data, json!(10));
    let total = Arc::new(AtomicUsize::new(0));
    let sum = total.clone();
    let w = worker(&queue)
        .handle("sum", move |n: usize| {
            sum.fetch_add(n, Ordering::SeqCst);
            async { Ok::<_, io::Error>(()) }
        })
        .concurrency(5)
        .start()
        .await
        .unwrap();
    wait_for("50 completed jobs", async || {
        queue.counts().await.unwrap().completed == 50
    })
    .await;
    assert_eq!(total.load(Ordering::SeqCst), 1275);
    w.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn idempotent_id(queue: Queue) {
    let opts = || JobOptions::new().job_id("order-7");
    let first = queue.add("echo", &1u32, opts()).await.unwrap();
    let again = queue.add("echo", &2u32, opts()).await.unwrap();
    assert_eq!((first.as_str(), again.as_str()), ("order-7", "order-7"));
    assert_eq!(queue.counts().await.unwrap().waiting, 1);
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let w = worker(&queue)
        .handle("echo", move |n: u32| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, io::Error>(n) }
        })
        .start()
        .await
        .unwrap();
    let job = finished(&queue, "order-7").await;
    assert_eq!(job.result, Some(json!(1)), "the first payload is kept");
    // A finished job that is still retained keeps its id too.
    assert_eq!(queue.add("echo", &3u32, opts()).await.unwrap(), "order-7");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.completed), (0, 1));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    w.close(Duration::from_secs(5)).await.unwrap();
}
