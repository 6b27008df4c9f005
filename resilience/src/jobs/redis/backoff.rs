//! How our retry decision reaches bullmq's backoff hook, and how a per-attempt timeout travels
//! with a job.
//!
//! A job added here carries `backoff: {type: "resilience", delay: 0}` — a custom strategy, so the
//! worker asks its `backoff_strategy` hook for the delay. The hook gets only (attempt, type,
//! error message, job data): no job id. But the crate calls it in the same task poll in which our
//! processor returned its error (worker.rs `process_fetched_job` → `handle_job_failed` →
//! `handle_retry` → `calculate_backoff`, with no await point that can suspend in between), so
//! the processor leaves the delay in a thread-local just before returning, and the hook takes it
//! there, checking that the attempt and the error message match.
//!
//! bullmq's job options have no timeout field and drop unknown ones, so a per-attempt timeout
//! rides in the type string: `resilience;timeout_ms=<n>`.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use bullmq::BackoffStrategyFn;

/// The custom backoff type of jobs added through this toolkit.
pub(crate) const BACKOFF_TYPE: &str = "resilience";

const TIMEOUT_TAG: &str = ";timeout_ms=";

/// The backoff type string for a job: ours, with its timeout if it has one.
pub(crate) fn backoff_type(timeout: Option<Duration>) -> String {
    match timeout {
        None => BACKOFF_TYPE.to_owned(),
        Some(t) => {
            // At least 1 ms: a timeout the facade accepted is never zero.
            let ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1);
            format!("{BACKOFF_TYPE}{TIMEOUT_TAG}{ms}")
        }
    }
}

/// The per-attempt timeout carried by a backoff type string of ours, if any.
pub(crate) fn timeout_of(type_name: &str) -> Option<Duration> {
    let rest = type_name.strip_prefix(BACKOFF_TYPE)?;
    let ms = rest.strip_prefix(TIMEOUT_TAG)?.parse::<u64>().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// The delay our processor decided for the attempt that just failed.
struct Handover {
    attempt: u32,
    reason: String,
    delay_ms: i64,
}

thread_local! {
    static HANDOVER: RefCell<Option<Handover>> = const { RefCell::new(None) };
}

/// Leaves `delay` for the hook call that follows (same thread, same poll). `attempt` is the
/// 1-based attempt that failed (the crate passes `attempts_made + 1`), `reason` the error
/// message the processor returns.
pub(crate) fn hand_over(attempt: u32, reason: &str, delay: Duration) {
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    HANDOVER.with(|h| {
        *h.borrow_mut() = Some(Handover {
            attempt,
            reason: reason.to_owned(),
            delay_ms,
        });
    });
}

/// Drops a delay no hook took (the crate retried without asking, e.g. a job with no backoff).
pub(crate) fn clear() {
    HANDOVER.with(|h| h.borrow_mut().take());
}

/// Takes the delay left for this attempt and message, if it is there.
fn take(attempt: u32, reason: &str) -> Option<i64> {
    HANDOVER.with(|h| {
        let mut slot = h.borrow_mut();
        let matches = slot
            .as_ref()
            .is_some_and(|x| x.attempt == attempt && x.reason == reason);
        if matches {
            slot.take().map(|x| x.delay_ms)
        } else {
            None
        }
    })
}

/// The worker's `backoff_strategy` hook: the delay our processor decided, or 0 ms (retry now)
/// when none was left — a job added elsewhere with a custom type, or a crate that changed how it
/// calls the hook.
pub(crate) fn strategy() -> BackoffStrategyFn {
    Arc::new(|attempt, type_name, message, _data| {
        // Taken here, in the call, not in the returned future: the call is what happens in the
        // processor's poll.
        let delay = take(attempt, message).unwrap_or_else(|| {
            tracing::debug!(
                backoff = type_name,
                attempt,
                "no retry delay handed over for this attempt; retrying at once"
            );
            0
        });
        Box::pin(std::future::ready(delay))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_string_round_trips_the_timeout() {
        assert_eq!(backoff_type(None), "resilience");
        assert_eq!(timeout_of("resilience"), None);
        let t = backoff_type(Some(Duration::from_millis(1500)));
        assert_eq!(t, "resilience;timeout_ms=1500");
        assert_eq!(timeout_of(&t), Some(Duration::from_millis(1500)));
        // Sub-millisecond timeouts round up to 1 ms rather than vanish.
        assert_eq!(
            timeout_of(&backoff_type(Some(Duration::from_micros(10)))),
            Some(Duration::from_millis(1))
        );
        for other in [
            "fixed",
            "resiliencex;timeout_ms=5",
            "resilience;timeout_ms=",
            "resilience;timeout_ms=-1",
            "resilience;timeout_ms=0",
        ] {
            assert_eq!(timeout_of(other), None, "{other}");
        }
    }

    #[tokio::test]
    async fn hook_takes_a_matching_handover_once() {
        let hook = strategy();
        let data = serde_json::Value::Null;
        hand_over(2, "boom", Duration::from_millis(750));
        // Another attempt or message does not take it.
        assert_eq!(hook(3, BACKOFF_TYPE, "boom", &data).await, 0);
        assert_eq!(hook(2, BACKOFF_TYPE, "other", &data).await, 0);
        assert_eq!(hook(2, BACKOFF_TYPE, "boom", &data).await, 750);
        // Taken: a second call finds nothing.
        assert_eq!(hook(2, BACKOFF_TYPE, "boom", &data).await, 0);
        hand_over(1, "x", Duration::MAX);
        assert_eq!(hook(1, BACKOFF_TYPE, "x", &data).await, i64::MAX);
        hand_over(1, "y", Duration::from_secs(1));
        clear();
        assert_eq!(hook(1, BACKOFF_TYPE, "y", &data).await, 0);
    }
}
