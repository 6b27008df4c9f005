//! Cases about failures and control: retries, non-retryable errors, Retry-After hints, bad
//! payloads, timeouts, the concurrency cap, pause / resume, close, retention.

use super::*;

/// An error that asks for a specific wait before the next attempt.
#[derive(Debug)]
struct Throttled(Duration);

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "throttled for {:?}", self.0)
    }
}

impl Retryable for Throttled {
    fn is_retryable(&self) -> bool {
        true
    }

    fn retry_after(&self) -> Option<Duration> {
        Some(self.0)
    }
}

pub(super) async fn retry_then_complete(queue: Queue) {
    let policy = fixed(3, Duration::from_millis(100));
    let starts: Log<(u32, Instant)> = log();
    let sink = starts.clone();
    let handler = Handler::with_context("flaky", move |(): (), ctx: JobContext| {
        sink.lock().unwrap().push((ctx.attempt(), Instant::now()));
        let attempt = ctx.attempt();
        async move {
            if attempt < 3 {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
            } else {
                Ok(attempt)
            }
        }
    })
    .retry(policy.clone());
    let w = worker(&queue).handler(handler).start().await.unwrap();
    let id = queue
        .add("flaky", &(), JobOptions::new().retry(policy))
        .await
        .unwrap();
    let job = finished(&queue, &id).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.result, Some(json!(3)));
    assert_eq!(job.attempts_made, 3);
    // Both backends follow BullMQ: a completed job carries no failure reason.
    assert_eq!(job.failed_reason, None);
    let starts = entries(&starts);
    let attempts: Vec<u32> = starts.iter().map(|s| s.0).collect();
    assert_eq!(attempts, [1, 2, 3]);
    for pair in starts.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap + slack(&queue) >= Duration::from_millis(100),
            "retried after {gap:?}"
        );
    }
    w.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn non_retryable_fails_at_once(queue: Queue) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let w = worker(&queue)
        .handle("strict", move |(): ()| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(io::Error::new(io::ErrorKind::InvalidInput, "bad input")) }
        })
        .start()
        .await
        .unwrap();
    let id = queue
        .add(
            "strict",
            &(),
            JobOptions::new().retry(fixed(5, Duration::from_millis(10))),
        )
        .await
        .unwrap();
    let job = finished(&queue, &id).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.failed_reason.as_deref(), Some("bad input"));
    assert_eq!(job.attempts_made, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    w.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn exhausted_attempts_fail_with_the_last_reason(queue: Queue) {
    let policy = fixed(3, Duration::from_millis(50));
    let handler = Handler::with_context("doomed", |(): (), ctx: JobContext| async move {
        Err::<(), _>(io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("reset on attempt {}", ctx.attempt()),
        ))
    })
    .retry(policy.clone());
    let w = worker(&queue).handler(handler).start().await.unwrap();
    let id = queue
        .add("doomed", &(), JobOptions::new().retry(policy))
        .await
        .unwrap();
    let job = finished(&queue, &id).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts_made, 3);
    assert_eq!(job.failed_reason.as_deref(), Some("reset on attempt 3"));
    assert_eq!(queue.counts().await.unwrap().failed, 1);
    w.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn retry_after_hint_honoured(queue: Queue) {
    // The policy would wait 10 s; the error asks for 300 ms.
    let policy = fixed(2, Duration::from_secs(10));
    let starts: Log<Instant> = log();
    let sink = starts.clone();
    let handler = Handler::with_context("throttled", move |(): (), ctx: JobContext| {
        sink.lock().unwrap().push(Instant::now());
        let attempt = ctx.attempt();
        async move {
            if attempt == 1 {
                Err(Throttled(Duration::from_millis(300)))
            } else {
                Ok(())
            }
        }
    })
    .retry(policy.clone());
    let w = worker(&queue).handler(handler).start().await.unwrap();
    let id = queue
        .add("throttled", &(), JobOptions::new().retry(policy))
        .await
        .unwrap();
    let job = finished(&queue, &id).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempts_made, 2);
    let starts = entries(&starts);
    assert_eq!(starts.len(), 2);
    let gap = starts[1] - starts[0];
    assert!(
        gap + slack(&queue) >= Duration::from_millis(300) && gap < Duration::from_secs(10),
        "second attempt after {gap:?}"
    );
    w.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn bad_payload_fails_that_job_and_the_next_runs(queue: Queue) {
    let w = worker(&queue)
        .handle("double", |n: u64| async move { Ok::<_, io::Error>(n * 2) })
        .start()
        .await
        .unwrap();
    let bad = queue
        .add("double", "not a number", JobOptions::new())
        .await
        .unwrap();
    let good = queue.add("double", &4u64, JobOptions::new()).await.unwrap();
    let bad = finished(&queue, &bad).await;
    let serde_error = serde_json::from_value::<u64>(json!("not a number")).unwrap_err();
    assert_eq!(bad.state, JobState::Failed);
    assert_eq!(
        bad.failed_reason,
        Some(JobError::Payload(serde_error.to_string()).to_string())
    );
    assert_eq!(bad.attempts_made, 1, "a payload error is not retried");
    let good = finished(&queue, &good).await;
    assert_eq!(good.result, Some(json!(8)));
    w.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn timeout_fails_the_attempt(queue: Queue) {
    // Attempt 1 of each job hangs; the job's timeout cuts it.
    let policy = fixed(2, Duration::from_millis(10));
    let handler = Handler::with_context("slow-once", |(): (), ctx: JobContext| async move {
        if ctx.attempt() == 1 {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Ok::<_, io::Error>(ctx.attempt())
    })
    .retry(policy.clone());
    let w = worker(&queue)
        .handler(handler)
        .concurrency(2)
        .start()
        .await
        .unwrap();
    let timeout = Duration::from_millis(200);
    // One attempt only: the cut attempt fails the job, with the timeout as the reason.
    let single = JobOptions::new()
        .retry(fixed(1, Duration::from_millis(10)))
        .timeout(timeout);
    let single = queue.add("slow-once", &(), single).await.unwrap();
    // Two attempts: the cut one counts, the second completes.
    let twice = JobOptions::new().retry(policy).timeout(timeout);
    let twice = queue.add("slow-once", &(), twice).await.unwrap();
    let failed = finished(&queue, &single).await;
    assert_eq!((failed.state, failed.attempts_made), (JobState::Failed, 1));
    assert_eq!(
        failed.failed_reason,
        Some(JobError::Timeout(timeout).to_string())
    );
    let done = finished(&queue, &twice).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.result, Some(json!(2)));
    assert_eq!(done.attempts_made, 2, "the timed-out attempt counts");
    w.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn concurrency_cap_respected(queue: Queue) {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let w = worker(&queue)
        .handle("busy", move |(): ()| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, io::Error>(())
            }
        })
        .concurrency(3)
        .start()
        .await
        .unwrap();
    queue
        .add_bulk((0..12).map(|_| ("busy", (), JobOptions::new())))
        .await
        .unwrap();
    wait_for("12 completed jobs", async || {
        queue.counts().await.unwrap().completed == 12
    })
    .await;
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    w.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn pause_and_resume(queue: Queue) {
    let w = worker(&queue)
        .handle("job", |(): ()| async { Ok::<_, io::Error>(()) })
        .start()
        .await
        .unwrap();
    // Queue-wide.
    queue.pause().await.unwrap();
    let first = queue.add("job", &(), JobOptions::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.completed), (1, 0));
    queue.resume().await.unwrap();
    assert_eq!(finished(&queue, &first).await.state, JobState::Completed);
    // One worker.
    w.pause();
    let second = queue.add("job", &(), JobOptions::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = queue.job(&second).await.unwrap().unwrap().state;
    assert_eq!(state, JobState::Waiting);
    w.resume();
    assert_eq!(finished(&queue, &second).await.state, JobState::Completed);
    w.close(Duration::from_secs(5)).await.unwrap();
}

pub(super) async fn close_waits_for_in_flight(queue: Queue) {
    let w = worker(&queue)
        .handle("slow", |(): ()| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, io::Error>(7)
        })
        .start()
        .await
        .unwrap();
    let id = queue.add("slow", &(), JobOptions::new()).await.unwrap();
    wait_for("the job to start", async || w.in_flight() == 1).await;
    w.close(Duration::from_secs(10)).await.unwrap();
    assert_eq!(w.in_flight(), 0);
    let job = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.result),
        (JobState::Completed, Some(json!(7)))
    );
}

/// Whether a job's cancellation token has fired, as seen from outside the handler.
type Cancelled = Arc<Mutex<Option<Box<dyn Fn() -> bool + Send>>>>;

pub(super) async fn close_timeout(queue: Queue) {
    let cancelled: Cancelled = Arc::new(Mutex::new(None));
    let sink = cancelled.clone();
    let stuck = Handler::with_context("stuck", move |(): (), ctx: JobContext| {
        let token = ctx.cancellation().clone();
        *sink.lock().unwrap() = Some(Box::new(move || token.is_cancelled()));
        async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, io::Error>(())
        }
    });
    let w = worker(&queue).handler(stuck).start().await.unwrap();
    let id = queue.add("stuck", &(), JobOptions::new()).await.unwrap();
    wait_for("the job to start", async || w.in_flight() == 1).await;
    let closed = w.close(Duration::from_millis(200)).await;
    assert!(
        matches!(
            closed,
            Err(QueueError::CloseTimeout { in_flight: 1, timeout }) if timeout == Duration::from_millis(200)
        ),
        "{closed:?}"
    );
    let job = queue.job(&id).await.unwrap().unwrap();
    if queue.backend_kind() == BackendKind::Memory {
        // Nothing else would take it over: it is back to waiting, no attempt counted, and the
        // next worker runs it. The abandoned attempt was told through its token.
        assert_eq!((job.state, job.attempts_made), (JobState::Waiting, 0));
        let fired = cancelled.lock().unwrap().as_ref().map(|f| f());
        assert_eq!(fired, Some(true));
        let next = worker(&queue)
            .handle("stuck", |(): ()| async { Ok::<_, io::Error>(()) })
            .start()
            .await
            .unwrap();
        assert_eq!(finished(&queue, &id).await.state, JobState::Completed);
        next.close(Duration::from_secs(5)).await.unwrap();
    } else {
        // Left active until its lock lapses; not lost.
        assert_eq!(job.state, JobState::Active);
    }
}

pub(super) async fn retention_count(queue: Queue) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let w = worker(&queue)
        .handle("keep", move |ok: bool| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(io::Error::new(io::ErrorKind::InvalidData, "no"))
                }
            }
        })
        .start()
        .await
        .unwrap();
    let keep_two = || JobOptions::new().remove_on_complete(Retention::count(2));
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(queue.add("keep", &true, keep_two()).await.unwrap());
    }
    let dropped = queue
        .add(
            "keep",
            &false,
            JobOptions::new().remove_on_fail(Retention::RemoveAll),
        )
        .await
        .unwrap();
    wait_for("6 runs", async || runs.load(Ordering::SeqCst) == 6).await;
    wait_for("the failed job to go", async || {
        queue.job(&dropped).await.unwrap().is_none()
    })
    .await;
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.completed, counts.failed), (2, 0));
    for gone in &ids[..3] {
        assert!(queue.job(gone).await.unwrap().is_none(), "job {gone} kept");
    }
    for kept in &ids[3..] {
        let job = queue.job(kept).await.unwrap().expect("kept");
        assert_eq!(job.state, JobState::Completed);
    }
    w.close(Duration::from_secs(5)).await.unwrap();
}
