//! The Redis backend of `jobs` (bullmq-official) against a real redis-server: add and process,
//! ordering, bulk, idempotent ids, retries driven by our policy and `Retry-After`, failures,
//! timeouts, pause, retention, credentials, unreachable servers, close, a Cluster, idle CPU.

mod support;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resilience::Retryable;
use resilience::jobs::redis::RedisJobsConfig;
use resilience::jobs::{
    BackendKind, Handler, JobOptions, JobPriority, JobState, MemoryBroker, Queue, QueueError,
    Retention, Worker,
};
use resilience::redis::{RedisConfig, RedisError};
use resilience::retry::{Backoff, RetryPolicy};
use resilience::shutdown::ShutdownCoordinator;
use serde_json::json;
use support::{RedisServer, poll_until};

const WAIT: Duration = Duration::from_secs(15);

fn config(port: u16) -> RedisConfig {
    RedisConfig::builder()
        .port(port)
        .key_prefix("t")
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

async fn queue(server: &RedisServer, name: &str) -> Queue {
    Queue::redis(name, &config(server.port()))
        .await
        .expect("queue on redis")
}

/// A worker on `queue` with `f` as the handler of `name`, its own shutdown coordinator.
fn builder(queue: &Queue) -> resilience::jobs::WorkerBuilder {
    Worker::builder(queue).shutdown(&ShutdownCoordinator::new())
}

/// Polls until job `id` is in `state`; its info then.
async fn until_state(queue: &Queue, id: &str, state: JobState) -> resilience::jobs::JobInfo {
    poll_until(WAIT, async || {
        queue.job(id).await.unwrap().filter(|j| j.state == state)
    })
    .await
    .unwrap_or_else(|| panic!("job {id} never reached {state:?}"))
}

/// A handler error with a chosen classification and `Retry-After` hint.
#[derive(Debug, Clone)]
struct TestError {
    msg: String,
    retryable: bool,
    after: Option<Duration>,
}

impl TestError {
    fn transient(msg: impl Into<String>) -> Self {
        Self {
            msg: msg.into(),
            retryable: true,
            after: None,
        }
    }
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl Retryable for TestError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
    fn retry_after(&self) -> Option<Duration> {
        self.after
    }
}

fn fixed(attempts: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .backoff(Backoff::Fixed)
        .initial_delay(delay)
        .jitter(0.0)
        .total_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn add_process_and_result_stored() {
    let server = RedisServer::start();
    let q = queue(&server, "emails").await;
    assert_eq!(q.backend_kind(), BackendKind::Redis);
    let id = q
        .add("welcome", &json!({ "user": 42 }), JobOptions::new())
        .await
        .unwrap();
    // Our key prefix `t` gives the BullMQ prefix `t/jobs`.
    assert_eq!(server.cli(&["EXISTS", &format!("t/jobs:emails:{id}")]), "1");
    let w = builder(&q)
        .handle("welcome", |p: serde_json::Value| async move {
            Ok::<_, TestError>(json!({ "sent_to": p["user"] }))
        })
        .start()
        .await
        .unwrap();
    let info = until_state(&q, &id, JobState::Completed).await;
    assert_eq!(info.result, Some(json!({ "sent_to": 42 })));
    assert_eq!(info.data, json!({ "user": 42 }));
    assert_eq!(info.attempts_made, 1);
    assert_eq!(info.priority, 3, "normal is the default");
    assert_eq!(info.name, "welcome");
    assert!(info.timestamp_ms > 1_600_000_000_000);
    assert_eq!(q.counts().await.unwrap().completed, 1);
    w.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(q.job("nope").await.unwrap(), None);
}

#[tokio::test]
async fn priority_then_delay_ordering() {
    let server = RedisServer::start();
    let q = queue(&server, "ordered").await;
    for (name, p) in [
        ("low", JobPriority::Low),
        ("critical", JobPriority::Critical),
        ("normal", JobPriority::Normal),
        ("unprioritized", JobPriority::Level(0)),
        ("high", JobPriority::High),
    ] {
        q.add("job", &name, JobOptions::new().priority(p))
            .await
            .unwrap();
    }
    let added = Instant::now();
    q.add(
        "job",
        &"later",
        JobOptions::new().delay(Duration::from_millis(900)),
    )
    .await
    .unwrap();
    q.add(
        "job",
        &"sooner",
        JobOptions::new().delay(Duration::from_millis(400)),
    )
    .await
    .unwrap();
    assert_eq!(q.counts().await.unwrap().delayed, 2);
    let order = Arc::new(Mutex::new(Vec::<(String, Duration)>::new()));
    let seen = order.clone();
    let w = builder(&q)
        .handle("job", move |name: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((name, added.elapsed()));
                Ok::<_, TestError>(())
            }
        })
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || {
        (order.lock().unwrap().len() == 7).then_some(())
    })
    .await
    .expect("all seven processed");
    w.close(Duration::from_secs(5)).await.unwrap();
    let order = order.lock().unwrap().clone();
    let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "unprioritized",
            "critical",
            "high",
            "normal",
            "low",
            "sooner",
            "later"
        ]
    );
    assert!(order[5].1 >= Duration::from_millis(400), "{order:?}");
    assert!(order[6].1 >= Duration::from_millis(900), "{order:?}");
}

#[tokio::test]
async fn bulk_add_and_idempotent_ids() {
    let server = RedisServer::start();
    let q = queue(&server, "bulk").await;
    let ids = q
        .add_bulk((0..50u32).map(|i| ("n", i, JobOptions::new())))
        .await
        .unwrap();
    assert_eq!(ids.len(), 50);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 50);
    assert_eq!(q.counts().await.unwrap().waiting, 50);

    // Adding an existing id keeps the one job (its first payload) and returns its id.
    let first = q
        .add("n", &1000u32, JobOptions::new().job_id("welcome-42"))
        .await
        .unwrap();
    let again = q
        .add("n", &2000u32, JobOptions::new().job_id("welcome-42"))
        .await
        .unwrap();
    assert_eq!(
        (first.as_str(), again.as_str()),
        ("welcome-42", "welcome-42")
    );
    let bulk_again = q
        .add_bulk([("n", 3000u32, JobOptions::new().job_id("welcome-42"))])
        .await
        .unwrap();
    assert_eq!(bulk_again, ["welcome-42"]);
    assert_eq!(q.counts().await.unwrap().waiting, 51);
    assert_eq!(
        q.job("welcome-42").await.unwrap().unwrap().data,
        json!(1000)
    );

    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = runs.clone();
    let w = builder(&q)
        .handle("n", move |n: u32| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(n);
                Ok::<_, TestError>(n)
            }
        })
        .concurrency(8)
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || {
        (q.counts().await.unwrap().completed == 51).then_some(())
    })
    .await
    .expect("all processed");
    // Completed and kept: adding the id again neither adds nor re-runs it.
    let after = q
        .add("n", &4000u32, JobOptions::new().job_id("welcome-42"))
        .await
        .unwrap();
    assert_eq!(after, "welcome-42");
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.close(Duration::from_secs(5)).await.unwrap();
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 51, "each job ran once");
    assert_eq!(runs.iter().filter(|n| **n >= 1000).count(), 1);
}

/// Records when each attempt started and ended.
type Attempts = Arc<Mutex<Vec<(Instant, Instant)>>>;

// Multi-threaded: the delay hand-over must hold where tasks move between threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_error_waits_the_policy_delay_then_completes() {
    let server = RedisServer::start();
    let q = queue(&server, "retry").await;
    let policy = fixed(3, Duration::from_millis(400));
    let id = q
        .add("flaky", &(), JobOptions::new().retry(policy.clone()))
        .await
        .unwrap();
    let attempts: Attempts = Arc::default();
    let seen = attempts.clone();
    let w = builder(&q)
        .handle("flaky", move |(): ()| {
            let seen = seen.clone();
            async move {
                let start = Instant::now();
                let n = seen.lock().unwrap().len();
                seen.lock().unwrap().push((start, Instant::now()));
                if n < 2 {
                    Err(TestError::transient(format!("transient #{}", n + 1)))
                } else {
                    Ok("done")
                }
            }
        })
        .retry(policy)
        .start()
        .await
        .unwrap();
    let info = until_state(&q, &id, JobState::Completed).await;
    w.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(info.attempts_made, 3);
    assert_eq!(info.result, Some(json!("done")));
    let a = attempts.lock().unwrap().clone();
    assert_eq!(a.len(), 3);
    for pair in a.windows(2) {
        let gap = pair[1].0 - pair[0].1;
        // Redis holds the job in `delayed` for the policy's 400 ms (ms rounding aside); our
        // handover reached bullmq's hook (without it the retry would be immediate).
        assert!(gap >= Duration::from_millis(395), "gap {gap:?}");
        assert!(gap < Duration::from_secs(3), "gap {gap:?}");
    }
}

// Multi-threaded: the delay hand-over must hold where tasks move between threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_hint_drives_the_delay() {
    let server = RedisServer::start();
    let q = queue(&server, "hint").await;
    // The policy alone would wait 20 ms; the error asks for 1.2 s.
    let policy = fixed(2, Duration::from_millis(20));
    let id = q
        .add("limited", &(), JobOptions::new().retry(policy.clone()))
        .await
        .unwrap();
    let attempts: Attempts = Arc::default();
    let seen = attempts.clone();
    let w = builder(&q)
        .handle("limited", move |(): ()| {
            let seen = seen.clone();
            async move {
                let now = Instant::now();
                let first = seen.lock().unwrap().is_empty();
                seen.lock().unwrap().push((now, now));
                if first {
                    Err(TestError {
                        msg: "429 too many requests".into(),
                        retryable: true,
                        after: Some(Duration::from_millis(1200)),
                    })
                } else {
                    Ok(())
                }
            }
        })
        .retry(policy)
        .start()
        .await
        .unwrap();
    // Not re-run before the hint: still delayed at 900 ms.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(attempts.lock().unwrap().len(), 1);
    assert_eq!(q.job(&id).await.unwrap().unwrap().state, JobState::Delayed);
    until_state(&q, &id, JobState::Completed).await;
    w.close(Duration::from_secs(5)).await.unwrap();
    let a = attempts.lock().unwrap().clone();
    let gap = a[1].0 - a[0].1;
    assert!(gap >= Duration::from_millis(1195), "gap {gap:?}");
    assert!(gap < Duration::from_secs(4), "gap {gap:?}");
}

#[tokio::test]
async fn non_retryable_fails_at_once_and_exhausted_attempts_keep_the_last_reason() {
    let server = RedisServer::start();
    let q = queue(&server, "fails").await;
    let policy = fixed(3, Duration::from_millis(50));
    let permanent = q
        .add("permanent", &(), JobOptions::new().retry(policy.clone()))
        .await
        .unwrap();
    let exhausted = q
        .add("always", &(), JobOptions::new().retry(policy.clone()))
        .await
        .unwrap();
    let tries = Arc::new(Mutex::new(0u32));
    let counter = tries.clone();
    let w = builder(&q)
        .handle("permanent", |(): ()| async move {
            Err::<(), _>(TestError {
                msg: "invalid address".into(),
                retryable: false,
                after: None,
            })
        })
        .handle("always", move |(): ()| {
            let counter = counter.clone();
            async move {
                let n = {
                    let mut t = counter.lock().unwrap();
                    *t += 1;
                    *t
                };
                Err::<(), _>(TestError::transient(format!("down #{n}")))
            }
        })
        .retry(policy)
        .start()
        .await
        .unwrap();
    let p = until_state(&q, &permanent, JobState::Failed).await;
    assert_eq!(p.attempts_made, 1);
    assert_eq!(p.failed_reason.as_deref(), Some("invalid address"));
    let e = until_state(&q, &exhausted, JobState::Failed).await;
    w.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(e.attempts_made, 3);
    assert_eq!(e.failed_reason.as_deref(), Some("down #3"));
    assert_eq!(*tries.lock().unwrap(), 3);
}

/// A typed payload (the root package has no `serde` derive): a map of counters.
type Welcome = std::collections::BTreeMap<String, u64>;

#[tokio::test]
async fn a_payload_that_does_not_fit_fails_its_job_and_the_worker_goes_on() {
    let server = RedisServer::start();
    let q = queue(&server, "payloads").await;
    let bad = q
        .add("welcome", &json!("not an object"), JobOptions::new())
        .await
        .unwrap();
    let good = q
        .add("welcome", &json!({ "user": 7 }), JobOptions::new())
        .await
        .unwrap();
    let w = builder(&q)
        .handle("welcome", |w: Welcome| async move {
            Ok::<_, TestError>(w.get("user").copied())
        })
        .start()
        .await
        .unwrap();
    let failed = until_state(&q, &bad, JobState::Failed).await;
    let done = until_state(&q, &good, JobState::Completed).await;
    w.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(failed.attempts_made, 1, "a payload error is not retried");
    let reason = failed.failed_reason.unwrap();
    assert!(
        reason.starts_with("job payload does not match the handler's type"),
        "{reason}"
    );
    assert_eq!(done.result, Some(json!(7)));
}

#[tokio::test]
async fn per_job_timeout_cuts_the_attempt() {
    let server = RedisServer::start();
    let q = queue(&server, "slow").await;
    let id = q
        .add(
            "slow",
            &(),
            JobOptions::new()
                .timeout(Duration::from_millis(200))
                .retry(fixed(1, Duration::from_millis(10))),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let w = builder(&q)
        .handle("slow", |(): ()| async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, TestError>(())
        })
        .start()
        .await
        .unwrap();
    let info = until_state(&q, &id, JobState::Failed).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    w.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        info.failed_reason.as_deref(),
        Some("job attempt timed out after 200ms")
    );
}

#[tokio::test]
async fn pause_and_resume_the_queue_and_a_worker() {
    let server = RedisServer::start();
    let q = queue(&server, "paused").await;
    let w = builder(&q)
        .handle("n", |n: u32| async move { Ok::<_, TestError>(n) })
        .start()
        .await
        .unwrap();
    q.pause().await.unwrap();
    let a = q.add("n", &1u32, JobOptions::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(q.job(&a).await.unwrap().unwrap().state, JobState::Waiting);
    assert_eq!(
        q.counts().await.unwrap().waiting,
        1,
        "paused jobs count as waiting"
    );
    q.resume().await.unwrap();
    until_state(&q, &a, JobState::Completed).await;

    w.pause();
    // Let the worker's fetch loop see the flag (it may be in its blocking read).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b = q.add("n", &2u32, JobOptions::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(q.job(&b).await.unwrap().unwrap().state, JobState::Waiting);
    w.resume();
    until_state(&q, &b, JobState::Completed).await;
    w.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn retention_removes_finished_jobs() {
    let server = RedisServer::start();
    let q = queue(&server, "retention").await;
    let gone = q
        .add(
            "ok",
            &(),
            JobOptions::new().remove_on_complete(Retention::RemoveAll),
        )
        .await
        .unwrap();
    let keep_two = JobOptions::new().remove_on_complete(Retention::count(2));
    for _ in 0..4 {
        q.add("ok", &(), keep_two.clone()).await.unwrap();
    }
    let fail_opts = JobOptions::new()
        .retry(fixed(1, Duration::from_millis(1)))
        .remove_on_fail(Retention::count(1));
    for _ in 0..3 {
        q.add("bad", &(), fail_opts.clone()).await.unwrap();
    }
    let w = builder(&q)
        .handle("ok", |(): ()| async move { Ok::<_, TestError>(()) })
        .handle("bad", |(): ()| async move {
            Err::<(), _>(TestError::transient("no"))
        })
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || {
        let c = q.counts().await.unwrap();
        (c.waiting == 0 && c.active == 0).then_some(())
    })
    .await
    .expect("all processed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(q.job(&gone).await.unwrap(), None);
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.failed), (2, 1));
}

#[tokio::test]
async fn acl_user_and_requirepass_work_and_a_wrong_password_is_typed() {
    let acl = RedisServer::builder().acl_user("app", "s3cret-acl").start();
    let cfg = RedisConfig::builder()
        .port(acl.port())
        .username("app")
        .password("s3cret-acl")
        .build()
        .unwrap();
    let q = Queue::redis("acl", &cfg).await.unwrap();
    let id = q.add("n", &5u32, JobOptions::new()).await.unwrap();
    let w = builder(&q)
        .handle("n", |n: u32| async move { Ok::<_, TestError>(n + 1) })
        .start()
        .await
        .unwrap();
    assert_eq!(
        until_state(&q, &id, JobState::Completed).await.result,
        Some(json!(6))
    );
    w.close(Duration::from_secs(5)).await.unwrap();

    let pass = RedisServer::builder().password("s3cret-pass").start();
    let cfg = RedisConfig::builder()
        .port(pass.port())
        .password("s3cret-pass")
        .build()
        .unwrap();
    let q = Queue::redis("pass", &cfg).await.unwrap();
    q.add("n", &1u32, JobOptions::new()).await.unwrap();
    assert_eq!(q.counts().await.unwrap().waiting, 1);

    for (port, user) in [(acl.port(), Some("app")), (pass.port(), None)] {
        let mut b = RedisConfig::builder()
            .port(port)
            .password("wrong-hunter2")
            .connect_timeout(Duration::from_secs(2));
        if let Some(u) = user {
            b = b.username(u);
        }
        let e = Queue::redis("x", &b.build().unwrap()).await.unwrap_err();
        assert!(
            matches!(e, QueueError::Redis(RedisError::Auth { .. })),
            "{e:?}"
        );
        assert!(!e.to_string().contains("wrong-hunter2"), "{e}");
        assert!(!format!("{e:?}").contains("wrong-hunter2"), "{e:?}");
    }
}

#[tokio::test]
async fn closed_port_without_fallback_errors_within_the_timeout() {
    let port = support::free_port();
    let cfg = RedisConfig::builder()
        .port(port)
        .password("hunter2")
        .connect_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let started = Instant::now();
    let e = Queue::redis("down", &cfg).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(e, QueueError::Unavailable(_)), "{e:?}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[tokio::test]
#[ignore = "needs in-memory backend"]
async fn closed_port_with_fallback_runs_in_memory() {
    let port = support::free_port();
    let cfg = RedisConfig::builder()
        .port(port)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let broker = MemoryBroker::new();
    let q = Queue::connect(
        "fallback",
        RedisJobsConfig::builder(cfg)
            .fallback_to_memory(&broker)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(q.backend_kind(), BackendKind::MemoryFallback);
    q.add("n", &1u32, JobOptions::new()).await.unwrap();
    // The broker holds it: a queue of the same name on it sees the job.
    let same = Queue::in_memory("fallback", &broker).unwrap();
    assert_eq!(same.counts().await.unwrap().waiting, 1);
}

#[tokio::test]
async fn close_timeout_leaves_the_job_active_for_another_worker() {
    let server = RedisServer::start();
    let q = queue(&server, "handover").await;
    let id = q.add("long", &(), JobOptions::new()).await.unwrap();
    let runs = Arc::new(Mutex::new(0u32));
    let counter = runs.clone();
    let handler = move || {
        let counter = counter.clone();
        Handler::new("long", move |(): ()| {
            let counter = counter.clone();
            async move {
                let first = {
                    let mut r = counter.lock().unwrap();
                    *r += 1;
                    *r == 1
                };
                if first {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Ok::<_, TestError>("finished")
            }
        })
    };
    let first = builder(&q)
        .handler(handler())
        .lock_duration(Duration::from_millis(800))
        .start()
        .await
        .unwrap();
    until_state(&q, &id, JobState::Active).await;
    poll_until(WAIT, async || (first.in_flight() == 1).then_some(()))
        .await
        .unwrap();
    let started = Instant::now();
    let e = first.close(Duration::from_millis(300)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(e, QueueError::CloseTimeout { in_flight: 1, .. }),
        "{e:?}"
    );
    // Left active, not failed or retried.
    let info = q.job(&id).await.unwrap().unwrap();
    assert_eq!((info.state, info.attempts_made), (JobState::Active, 0));
    let second = builder(&q)
        .handler(handler())
        .stalled_interval(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let info = until_state(&q, &id, JobState::Completed).await;
    second.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(info.result, Some(json!("finished")));
    assert_eq!(*runs.lock().unwrap(), 2);
}

#[tokio::test]
async fn close_waits_for_in_flight_jobs() {
    let server = RedisServer::start();
    let q = queue(&server, "drain").await;
    let id = q.add("short", &(), JobOptions::new()).await.unwrap();
    let w = builder(&q)
        .handle("short", |(): ()| async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok::<_, TestError>(1)
        })
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || (w.in_flight() == 1).then_some(()))
        .await
        .unwrap();
    let started = Instant::now();
    w.close(Duration::from_secs(5)).await.unwrap();
    // Done once the job was, not after bullmq's blocking read (10 s drain delay).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        q.job(&id).await.unwrap().unwrap().state,
        JobState::Completed
    );
    // A closed worker takes nothing more.
    let next = q.add("short", &(), JobOptions::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        q.job(&next).await.unwrap().unwrap().state,
        JobState::Waiting
    );
}

#[tokio::test]
async fn oldest_waiting_age_reads_the_next_job() {
    let server = RedisServer::start();
    let q = queue(&server, "age").await;
    assert_eq!(q.oldest_waiting_age().await.unwrap(), None);
    q.add(
        "n",
        &1u32,
        JobOptions::new().priority(JobPriority::Level(0)),
    )
    .await
    .unwrap();
    q.add("n", &2u32, JobOptions::new().priority(JobPriority::Low))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let age = q.oldest_waiting_age().await.unwrap().unwrap();
    assert!(
        age >= Duration::from_millis(290) && age < Duration::from_secs(5),
        "{age:?}"
    );
}

#[tokio::test]
async fn bullmq_prefix_override_and_config_errors() {
    let server = RedisServer::start();
    let cfg = RedisJobsConfig::builder(config(server.port()))
        .bullmq_prefix("bull")
        .build()
        .unwrap();
    let q = Queue::connect("shared", cfg).await.unwrap();
    let id = q.add("n", &1u32, JobOptions::new()).await.unwrap();
    assert_eq!(server.cli(&["EXISTS", &format!("bull:shared:{id}")]), "1");
    let e = RedisJobsConfig::builder(RedisConfig::builder().db(300).build().unwrap())
        .build()
        .unwrap_err();
    assert_eq!(e.field, "db");
    let e = Queue::redis("a:b", &config(server.port()))
        .await
        .unwrap_err();
    assert!(matches!(e, QueueError::Config(_)), "{e:?}");
}

/// CPU time used so far by this process's threads named `name*`, from `/proc` (ns).
fn cpu_ns_of_threads(name: &str) -> u64 {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(name) {
            continue;
        }
        let sched = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        total += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// One idle worker (and its queue) on a runtime of its own, measured over 10 s.
#[test]
fn an_idle_worker_burns_no_cpu() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("jobs-idle")
        .enable_all()
        .build()
        .unwrap();
    let (cpu, commands) = rt.block_on(async {
        let q = queue(&server, "idle").await;
        let w = builder(&q)
            .handle("n", |n: u32| async move { Ok::<_, TestError>(n) })
            .start()
            .await
            .unwrap();
        // Settle, then measure.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stats = |s: &RedisServer| {
            s.cli(&["INFO", "stats"])
                .lines()
                .find_map(|l| l.strip_prefix("total_commands_processed:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let before = (cpu_ns_of_threads("jobs-idle"), stats(&server));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = (cpu_ns_of_threads("jobs-idle"), stats(&server));
        w.close(Duration::from_secs(5)).await.unwrap();
        (after.0 - before.0, after.1 - before.1)
    });
    println!(
        "idle worker over 10 s: {:.3} ms CPU, {} Redis commands (incl. 2 INFO)",
        cpu as f64 / 1e6,
        commands
    );
    assert!(cpu < 50_000_000, "idle worker used {cpu} ns of CPU in 10 s");
    assert!(commands < 20, "{commands} commands while idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_adds_and_processes_under_a_hash_tag() {
    let cluster = tokio::task::block_in_place(|| {
        support::cluster::RedisCluster::builder()
            .masters_only()
            .start(2000)
    });
    let seeds = cluster.seeds();
    let cfg = RedisJobsConfig::builder(config(seeds[0].1))
        .cluster(seeds.clone())
        .build()
        .unwrap();
    assert_eq!(cfg.bullmq_queue_name("emails"), "{emails}");
    let q = Queue::connect("emails", cfg).await.unwrap();
    let ids = q
        .add_bulk((0..20u32).map(|i| ("n", i, JobOptions::new())))
        .await
        .unwrap();
    let w = builder(&q)
        .handle("n", |n: u32| async move { Ok::<_, TestError>(n * 2) })
        .concurrency(4)
        .start()
        .await
        .unwrap();
    poll_until(WAIT, async || {
        (q.counts().await.unwrap().completed == 20).then_some(())
    })
    .await
    .expect("all processed on the cluster");
    w.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        q.job(&ids[3]).await.unwrap().unwrap().result,
        Some(json!(6))
    );
    // Every key of the queue lives on the master owning slot of `{emails}`.
    let (port, _) = cluster
        .master_for_key("t/jobs:{emails}:meta")
        .expect("a master for the queue's slot");
    let keys = cluster.cli(port, &["KEYS", "t/jobs:{emails}:*"]);
    assert!(keys.lines().count() > 20, "{keys}");
}

#[tokio::test]
async fn a_server_that_never_answers_errors_within_the_timeout() {
    // Accepts connections (the kernel's backlog) and never replies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = RedisConfig::builder()
        .port(silent.local_addr().unwrap().port())
        .connect_timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let started = Instant::now();
    let e = Queue::redis("silent", &cfg).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(matches!(e, QueueError::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn mutual_tls_reads_the_pem_files() {
    let server = RedisServer::builder()
        .password("s3cret-tls")
        .tls_auth_clients()
        .start();
    let tls = server.tls_files().clone();
    let base = || {
        RedisConfig::builder()
            .host("localhost")
            .port(server.tls_port())
            .password("s3cret-tls")
            .tls_ca_file(&tls.ca_cert)
            .connect_timeout(Duration::from_secs(3))
    };
    let cfg = base()
        .tls_client_cert(&tls.client_cert, &tls.client_key)
        .build()
        .unwrap();
    let q = Queue::redis("tls", &cfg).await.unwrap();
    let id = q.add("n", &20u32, JobOptions::new()).await.unwrap();
    let w = builder(&q)
        .handle("n", |n: u32| async move { Ok::<_, TestError>(n + 1) })
        .start()
        .await
        .unwrap();
    assert_eq!(
        until_state(&q, &id, JobState::Completed).await.result,
        Some(json!(21))
    );
    w.close(Duration::from_secs(5)).await.unwrap();
    // A client certificate from another CA is refused: typed, not a fallback case.
    let other = base()
        .tls_client_cert(&tls.other_client_cert, &tls.other_client_key)
        .build()
        .unwrap();
    let e = Queue::redis("tls", &other).await.unwrap_err();
    assert!(matches!(e, QueueError::Redis(_)), "{e:?}");
    assert!(!format!("{e:?}").contains("s3cret-tls"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_resolves_the_master() {
    use resilience::redis::SentinelOptions;
    use support::sentinel::{MASTER_NAME, SentinelSetup};
    let setup = tokio::task::block_in_place(|| SentinelSetup::start(1000));
    let cfg = RedisJobsConfig::builder(config(1))
        .sentinel(
            SentinelOptions::builder(MASTER_NAME, setup.sentinel_addrs())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let q = Queue::connect("sentinel", cfg).await.unwrap();
    let id = q.add("n", &1u32, JobOptions::new()).await.unwrap();
    // On the master the sentinels named, not on the config's (unused) port.
    let key = format!("t/jobs:sentinel:{id}");
    assert_eq!(setup.cli(setup.master_port(), &["EXISTS", &key]), "1");
    let w = builder(&q)
        .handle("n", |n: u32| async move { Ok::<_, TestError>(n) })
        .start()
        .await
        .unwrap();
    until_state(&q, &id, JobState::Completed).await;
    w.close(Duration::from_secs(5)).await.unwrap();
    // A wrong master name is an error, not a hang.
    let wrong = RedisJobsConfig::builder(config(1))
        .sentinel(
            SentinelOptions::builder("nope", setup.sentinel_addrs())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert!(Queue::connect("sentinel", wrong).await.is_err());
}
