//! Cases for the in-memory backend alone, on the paused clock: the rate limit, the delay timer
//! shared by slots and workers, idle slots that do not spin, retention by age, hand-over.

use super::*;

// Memory only: the rate limit on the paused clock.
#[tokio::test(start_paused = true)]
async fn memory_rate_limit_per_window() {
    let queue = memory_queue("rate");
    let t0 = Instant::now();
    let starts: Log<Duration> = log();
    let sink = starts.clone();
    let w = worker(&queue)
        .handle("limited", move |(): ()| {
            sink.lock().unwrap().push(t0.elapsed());
            async { Ok::<_, io::Error>(()) }
        })
        .concurrency(4)
        .rate_limit(2, Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    queue
        .add_bulk((0..6).map(|_| ("limited", (), JobOptions::new())))
        .await
        .unwrap();
    wait_for("6 completed jobs", async || {
        queue.counts().await.unwrap().completed == 6
    })
    .await;
    let mut starts = entries(&starts);
    starts.sort();
    let windows: Vec<u64> = starts.iter().map(|d| d.as_secs()).collect();
    assert_eq!(windows, [0, 0, 1, 1, 2, 2], "starts at {starts:?}");
    w.close(Duration::from_secs(5)).await.unwrap();
}

// Memory only: two workers of four slots share the queue's one delay timer; every delayed job
// runs, none before its time.
#[tokio::test(start_paused = true)]
async fn memory_delays_across_workers_and_slots() {
    let queue = memory_queue("delays");
    let t0 = Instant::now();
    let late: Log<(u64, Duration)> = log();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let sink = late.clone();
        let w = worker(&queue)
            .handle("at", move |ms: u64| {
                sink.lock().unwrap().push((ms, t0.elapsed()));
                async { Ok::<_, io::Error>(()) }
            })
            .concurrency(4)
            .start()
            .await
            .unwrap();
        workers.push(w);
    }
    // Added out of order, some sharing an instant; a worker is busy-free between them.
    for ms in [900u64, 100, 500, 100, 2000, 300, 700, 1500, 50, 1200] {
        let opts = JobOptions::new().delay(Duration::from_millis(ms));
        queue.add("at", &ms, opts).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for("10 completed jobs", async || {
        queue.counts().await.unwrap().completed == 10
    })
    .await;
    let seen = entries(&late);
    assert_eq!(seen.len(), 10);
    for (ms, at) in seen {
        assert!(at >= Duration::from_millis(ms), "{ms} ms job ran at {at:?}");
        // Added within the first 100 ms, so due by then plus its delay.
        assert!(
            at <= Duration::from_millis(ms + 100),
            "{ms} ms job ran late, at {at:?}"
        );
    }
    for w in workers {
        w.close(Duration::from_secs(5)).await.unwrap();
    }
}

// Memory only: idle workers wait instead of spinning. On a paused clock, time only moves when
// every task is idle, so a spinning slot would stall the sleeps below; the runtime runs on its
// own thread so that the test still ends (and fails) if it does.
#[test]
fn memory_idle_workers_let_the_paused_clock_run() {
    let (done, finished_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let queue = memory_queue("idle");
            let w = worker(&queue)
                .handle("later", |(): ()| async { Ok::<_, io::Error>(()) })
                .concurrency(8)
                .start()
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(600)).await;
            let id = queue
                .add(
                    "later",
                    &(),
                    JobOptions::new().delay(Duration::from_secs(3600)),
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(1800)).await;
            let before = queue.job(&id).await.unwrap().unwrap().state;
            tokio::time::sleep(Duration::from_secs(1801)).await;
            let after = queue.job(&id).await.unwrap().unwrap().state;
            w.close(Duration::from_secs(5)).await.unwrap();
            let _ = done.send((before, after));
        });
    });
    let states = finished_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the paused clock did not advance: an idle worker kept the runtime busy");
    assert_eq!(states, (JobState::Delayed, JobState::Completed));
}

// Memory only: retention by age, on the paused clock. A finished job is trimmed when a later
// one finishes past its age (BullMQ trims on finish too).
#[tokio::test(start_paused = true)]
async fn memory_retention_age() {
    let queue = memory_queue("age");
    let w = worker(&queue)
        .handle("job", |(): ()| async { Ok::<_, io::Error>(()) })
        .start()
        .await
        .unwrap();
    let keep = || JobOptions::new().remove_on_complete(Retention::age(Duration::from_secs(10)));
    let old = queue.add("job", &(), keep()).await.unwrap();
    finished(&queue, &old).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let young = queue.add("job", &(), keep()).await.unwrap();
    finished(&queue, &young).await;
    assert!(queue.job(&old).await.unwrap().is_some(), "5 s old: kept");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let newest = queue.add("job", &(), keep()).await.unwrap();
    finished(&queue, &newest).await;
    assert!(
        queue.job(&old).await.unwrap().is_none(),
        "11 s old: trimmed"
    );
    assert!(queue.job(&young).await.unwrap().is_some(), "6 s old: kept");
    assert_eq!(queue.counts().await.unwrap().completed, 2);
    w.close(Duration::from_secs(5)).await.unwrap();
}

// Memory only: a paused worker closes at once, and a closed worker's queue keeps its jobs for
// the next worker; the closed one takes no more.
#[tokio::test(start_paused = true)]
async fn memory_close_paused_worker_and_hand_over() {
    let queue = memory_queue("handover");
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let first = worker(&queue)
        .handle("job", move |(): ()| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, io::Error>(()) }
        })
        .concurrency(4)
        .start()
        .await
        .unwrap();
    first.pause();
    let started = Instant::now();
    first.close(Duration::from_secs(30)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a paused worker closes at once"
    );
    let id = queue.add("job", &(), JobOptions::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        queue.job(&id).await.unwrap().unwrap().state,
        JobState::Waiting
    );
    let next = worker(&queue)
        .handle("job", |(): ()| async { Ok::<_, io::Error>(()) })
        .start()
        .await
        .unwrap();
    assert_eq!(finished(&queue, &id).await.state, JobState::Completed);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "the closed worker took nothing"
    );
    next.close(Duration::from_secs(5)).await.unwrap();
}
