//! Warnings on paths that run once per call while a dependency is down (a fail-open rate limit,
//! an unreachable shared breaker): logged at most once per interval, with the number of
//! occurrences left out, so an outage does not flood the logs at the request rate.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a throttled warning is logged at most.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// One throttled warning site (per limiter / breaker instance).
#[derive(Debug, Default)]
pub(crate) struct LogThrottle {
    /// Milliseconds since [`EPOCH`] before which nothing is logged.
    next_ms: AtomicU64,
    /// Occurrences not logged since the last one that was.
    suppressed: AtomicU64,
}

/// The process's reference point for the throttle's milliseconds.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl LogThrottle {
    /// `Some(suppressed)` when this occurrence should be logged (with how many were left out
    /// since the last logged one), `None` when it is left out. Read on failure paths only.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.allow_at(now, WARN_INTERVAL)
    }

    fn allow_at(&self, now_ms: u64, interval: Duration) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_interval_and_counts_the_rest() {
        let t = LogThrottle::default();
        let every = Duration::from_secs(10);
        assert_eq!(t.allow_at(0, every), Some(0));
        for ms in [1, 500, 9_999] {
            assert_eq!(t.allow_at(ms, every), None);
        }
        assert_eq!(t.allow_at(10_000, every), Some(3));
        assert_eq!(t.allow_at(10_001, every), None);
        // A long quiet spell: the next occurrence is logged at once.
        assert_eq!(t.allow_at(60_000, every), Some(1));
    }

    #[test]
    fn one_of_many_threads_logs() {
        let t = std::sync::Arc::new(LogThrottle::default());
        // (occurrences logged, suppressed counts those log lines carried)
        let (logged, carried): (u64, u64) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let t = &t;
                    s.spawn(move || {
                        (0..1000)
                            .filter_map(|_| t.allow_at(5, Duration::from_secs(10)))
                            .fold((0u64, 0u64), |(n, c), carried| (n + 1, c + carried))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or((0, 0)))
                .fold((0, 0), |(n, c), (n2, c2)| (n + n2, c + c2))
        });
        assert_eq!(logged, 1);
        // Every other occurrence is counted exactly once: in the logged line (an increment that
        // raced the winner's reset) or in the count left for the next one.
        assert_eq!(carried + t.suppressed.load(Ordering::Relaxed), 3999);
    }
}
