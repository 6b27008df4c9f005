//! `retry_attempts_total{outcome}` and `retry_attempts_count`, through a debugging recorder
//! installed before the first retried call (one test: the recorder is process-global).

use std::io;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use resilience::metrics::{RETRY_ATTEMPTS_COUNT, RETRY_ATTEMPTS_TOTAL};
use resilience::retry::{Backoff, RetryPolicy};

/// The attribute drives the same engine, so it reports on the same series.
#[resilience::retry(max_attempts = 2, initial_delay_ms = 5, max_delay_ms = 5)]
async fn attribute_exhausted() -> Result<(), io::Error> {
    Err(io::Error::from(io::ErrorKind::ConnectionReset))
}

#[tokio::test(start_paused = true)]
async fn retries_are_counted_by_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Fixed)
        .initial_delay(std::time::Duration::from_millis(5))
        .max_delay(std::time::Duration::from_millis(5))
        .build()
        .unwrap();
    // 1: success first try; 2: success on the 3rd attempt; 3: exhausted; 4: not retryable;
    let _ = policy.retry(|| async { Ok::<_, io::Error>(()) }).await;
    let mut n = 0;
    let _ = policy
        .retry(|| {
            n += 1;
            let ok = n == 3;
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(io::Error::from(io::ErrorKind::TimedOut))
                }
            }
        })
        .await;
    let _ = policy
        .retry(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::TimedOut)) })
        .await;
    let _ = policy
        .retry(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)) })
        .await;
    // 5: through `#[retry]`, exhausted after 2 attempts.
    assert!(attribute_exhausted().await.is_err());

    let mut counts = std::collections::BTreeMap::new();
    let mut histogram = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        match (key.name(), value) {
            (RETRY_ATTEMPTS_TOTAL, DebugValue::Counter(c)) => {
                let outcome = key
                    .labels()
                    .find(|l| l.key() == "outcome")
                    .unwrap()
                    .value()
                    .to_owned();
                counts.insert(outcome, c);
            }
            (RETRY_ATTEMPTS_COUNT, DebugValue::Histogram(v)) => {
                histogram = v.into_iter().map(|x| x.into_inner()).collect();
            }
            _ => {}
        }
    }
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    assert_eq!(get("success"), 2);
    assert_eq!(get("retry"), 5); // 2 in the second sequence, 2 in the third, 1 in the fifth
    assert_eq!(get("exhausted"), 2);
    assert_eq!(get("not_retryable"), 1);
    histogram.sort_by(f64::total_cmp);
    assert_eq!(histogram, [1.0, 1.0, 2.0, 3.0, 3.0]);
}
