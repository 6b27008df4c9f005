//! Retries and failures on the Redis backend of `jobs`, against a real redis-server: our
//! policy's delays and `Retry-After` hints reach bullmq's backoff hook (measured: a job is not
//! re-run before its delay), non-retryable errors fail at once, exhausted attempts keep the
//! last reason, a payload that does not fit fails its job only, per-job timeouts cut attempts.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resilience::jobs::{JobOptions, JobState};
use serde_json::json;
use support::jobs::*;
use support::{RedisServer, poll_until};

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
        assert!(gap < Duration::from_secs(5), "gap {gap:?}");
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
    // Not re-run before the hint: still delayed 900 ms after the first attempt.
    let first_end = poll_until(WAIT, async || attempts.lock().unwrap().first().map(|a| a.1))
        .await
        .expect("a first attempt");
    tokio::time::sleep_until((first_end + Duration::from_millis(900)).into()).await;
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
