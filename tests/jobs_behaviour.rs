//! One behaviour suite for job queues, run against both backends through the facade only
//! (`Queue`, `Worker`, `JobOptions`, `Handler`, `JobContext`): each case is an `async fn`
//! taking a fresh `Queue`; `suite!` instantiates it in memory (tokio's paused clock drives
//! delays, backoffs and timeouts) and on Redis (a private redis-server, real time).

mod support;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::jobs::{
    BackendKind, Handler, JobContext, JobError, JobInfo, JobOptions, JobPriority, JobState,
    MemoryBroker, Queue, QueueError, Retention, Worker, WorkerBuilder,
};
use resilience::retry::{Backoff, RetryPolicy, Retryable};
use resilience::shutdown::ShutdownCoordinator;
use serde_json::json;
use tokio::time::Instant;

/// Generous for Redis (real time); instant under the paused clock.
const LIMIT: Duration = Duration::from_secs(20);

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(start_paused = true)]
                async fn $case() {
                    super::$case(super::memory_queue(stringify!($case))).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs the Redis backend (Queue::redis), merged separately"]
                async fn $case() {
                    let server = super::support::RedisServer::start();
                    super::$case(super::redis_queue(&server, stringify!($case)).await).await;
                }
            )*
        }
    };
}

suite!(
    processed_with_result_stored,
    counts_and_job_info,
    priority_order,
    lifo_first_in_its_level,
    delay_order,
    bulk_add,
    idempotent_id,
    retry_then_complete,
    non_retryable_fails_at_once,
    exhausted_attempts_fail_with_the_last_reason,
    retry_after_hint_honoured,
    bad_payload_fails_that_job_and_the_next_runs,
    timeout_fails_the_attempt,
    concurrency_cap_respected,
    pause_and_resume,
    close_waits_for_in_flight,
    close_timeout,
    retention_count,
);

fn memory_queue(name: &str) -> Queue {
    Queue::in_memory(name, &MemoryBroker::new()).expect("valid queue name")
}

/// The queue `name` on `server`. The Redis backend (`Queue::redis`) is written in parallel;
/// once it is merged, the body becomes
/// ```ignore
/// let config = resilience::RedisConfig::from_url(&server.url()).unwrap().build().unwrap();
/// Queue::redis(name, &config).await.unwrap()
/// ```
/// and `suite!` drops its `#[ignore]`.
async fn redis_queue(server: &support::RedisServer, name: &str) -> Queue {
    let _ = (server.url(), name);
    todo!("Queue::redis lands with the Redis backend")
}

/// A worker builder that registers with a private coordinator, not the global one.
fn worker(queue: &Queue) -> WorkerBuilder {
    Worker::builder(queue).shutdown(&ShutdownCoordinator::new())
}

/// Retry `attempts` times in all, `delay` apart (no jitter), within a minute.
fn fixed(attempts: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .backoff(Backoff::Fixed)
        .initial_delay(delay)
        .total_timeout(Duration::from_secs(60))
        .build()
        .expect("valid policy")
}

/// How early a Redis job may start relative to our clock: BullMQ stamps jobs in whole ms of
/// the wall clock. The paused clock is exact.
fn slack(queue: &Queue) -> Duration {
    match queue.backend_kind() {
        BackendKind::Memory => Duration::ZERO,
        _ => Duration::from_millis(5),
    }
}

/// Waits until `f` holds, failing the test with `what` after [`LIMIT`].
async fn wait_for(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let reached = support::poll_until(LIMIT, async || f().await.then_some(())).await;
    assert!(reached.is_some(), "timed out waiting for {what}");
}

/// Waits until job `id` has completed or failed, and returns it.
async fn finished(queue: &Queue, id: &str) -> JobInfo {
    let mut last = None;
    let found = support::poll_until(LIMIT, async || {
        let info = queue.job(id).await.expect("job lookup");
        let done = info
            .as_ref()
            .is_some_and(|j| matches!(j.state, JobState::Completed | JobState::Failed));
        last = info.clone();
        if done { info } else { None }
    })
    .await;
    found.unwrap_or_else(|| panic!("job {id} did not finish: {last:?}"))
}

/// A log shared with handlers.
type Log<T> = Arc<Mutex<Vec<T>>>;

fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

fn entries<T: Clone>(log: &Log<T>) -> Vec<T> {
    log.lock().unwrap().clone()
}

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

async fn processed_with_result_stored(queue: Queue) {
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

async fn counts_and_job_info(queue: Queue) {
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

async fn priority_order(queue: Queue) {
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

async fn lifo_first_in_its_level(queue: Queue) {
    let zero = || JobOptions::new().priority(JobPriority::Level(0));
    let order = run_in_order(
        &queue,
        vec![("a", zero()), ("b", zero()), ("c", zero().lifo())],
    )
    .await;
    assert_eq!(order, ["c", "a", "b"]);
}

async fn delay_order(queue: Queue) {
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

async fn bulk_add(queue: Queue) {
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

async fn idempotent_id(queue: Queue) {
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

async fn retry_then_complete(queue: Queue) {
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

async fn non_retryable_fails_at_once(queue: Queue) {
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

async fn exhausted_attempts_fail_with_the_last_reason(queue: Queue) {
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

async fn retry_after_hint_honoured(queue: Queue) {
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

async fn bad_payload_fails_that_job_and_the_next_runs(queue: Queue) {
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

async fn timeout_fails_the_attempt(queue: Queue) {
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

async fn concurrency_cap_respected(queue: Queue) {
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

async fn pause_and_resume(queue: Queue) {
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

async fn close_waits_for_in_flight(queue: Queue) {
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

async fn close_timeout(queue: Queue) {
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

async fn retention_count(queue: Queue) {
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
