//! `retry_attempts_total{name,outcome}` and `retry_attempts_count{name}`, through a debugging
//! recorder installed before the first retried call (one test: the recorder is
//! process-global).

use std::io;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use resilience::metrics::{RETRY_ATTEMPTS_COUNT, RETRY_ATTEMPTS_TOTAL};
use resilience::retry::{Backoff, RetryPolicy};

/// The attribute drives the same engine and reports on the same families, under its path.
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

    // (name, outcome) -> count; name -> attempts.
    let mut counts = std::collections::BTreeMap::new();
    let mut histograms = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |name: &str| {
            key.labels()
                .find(|l| l.key() == name)
                .unwrap()
                .value()
                .to_owned()
        };
        match (key.name(), value) {
            (RETRY_ATTEMPTS_TOTAL, DebugValue::Counter(c)) => {
                counts.insert((label("name"), label("outcome")), c);
            }
            (RETRY_ATTEMPTS_COUNT, DebugValue::Histogram(v)) => {
                let mut v: Vec<f64> = v.into_iter().map(|x| x.into_inner()).collect();
                v.sort_by(f64::total_cmp);
                histograms.insert(label("name"), v);
            }
            _ => {}
        }
    }
    let get = |name: &str, outcome: &str| {
        counts
            .get(&(name.to_owned(), outcome.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    // The policy has no name.
    assert_eq!(get("unnamed", "success"), 2);
    assert_eq!(get("unnamed", "retry"), 4); // 2 in the second sequence, 2 in the third
    assert_eq!(get("unnamed", "exhausted"), 1);
    assert_eq!(get("unnamed", "not_retryable"), 1);
    assert_eq!(histograms["unnamed"], [1.0, 1.0, 3.0, 3.0]);
    // The attribute's policy is named after the function.
    let attribute = "retry_metrics::attribute_exhausted";
    assert_eq!(get(attribute, "retry"), 1);
    assert_eq!(get(attribute, "exhausted"), 1);
    assert_eq!(get(attribute, "success"), 0);
    assert_eq!(histograms[attribute], [2.0]);
    // Outcomes never seen were never registered.
    assert!(!counts.contains_key(&("unnamed".to_owned(), "cancelled".to_owned())));
}
