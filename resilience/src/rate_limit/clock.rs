//! Clocks for the limiters: a cheap default, one driven by tokio's (pausable) clock, and a manual
//! one for tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic time source for the limiters, in nanoseconds since an arbitrary fixed origin.
///
/// A limiter reads it once per decision, so it should be cheap. Readings must never go back.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since this clock's origin.
    fn now_nanos(&self) -> u64;
}

/// The default clock: [`quanta`]'s TSC-backed clock (the one `governor` uses).
///
/// `std::time::Instant::now()` costs about 29 ns on the virtual machines this crate is measured
/// on, more than a whole `check`; reading the TSC and scaling it costs a few. Where the TSC is not
/// usable quanta falls back to the OS monotonic clock on its own. It does not follow tokio's
/// paused clock: in tests use [`TokioClock`] or [`ManualClock`].
#[derive(Clone)]
pub struct QuantaClock {
    clock: quanta::Clock,
}

impl QuantaClock {
    /// A clock over the process-wide quanta calibration (calibrated once, on first use).
    pub fn new() -> Self {
        Self {
            clock: quanta::Clock::new(),
        }
    }
}

impl Default for QuantaClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for QuantaClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuantaClock")
    }
}

impl Clock for QuantaClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        // `raw` + `delta_as_nanos` skips building a `quanta::Instant`/`Duration`.
        self.clock.delta_as_nanos(0, self.clock.raw())
    }
}

/// A clock that reads [`tokio::time::Instant`], so `tokio::time::pause()` / `advance()` drive it.
///
/// Costs what `Instant::now()` costs (plus a runtime lookup), so use it where tokio's test clock
/// matters, not on hot paths in production.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is tokio's "now" (the paused time, inside a paused runtime).
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        duration_nanos(tokio::time::Instant::now().saturating_duration_since(self.origin))
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (saturating at `u64::MAX` nanoseconds).
    pub fn advance(&self, by: Duration) {
        let by = duration_nanos(by);
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// The time since the origin.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
