//! `rate_limit_decisions_total{name,outcome}`: the counters every limiter holds.

use metrics::SharedString;

use crate::metrics::RATE_LIMIT_DECISIONS_TOTAL;
use crate::metrics::lazy::{OutcomeCounters, UNNAMED};

/// The `outcome` labels, by index.
const OUTCOMES: [&str; 5] = ["allowed", "rejected", "error", "fail_open", "local"];
/// The call was admitted.
pub(crate) const ALLOWED: usize = 0;
/// The call was refused.
pub(crate) const REJECTED: usize = 1;
/// Redis failed and the limiter refused to decide (fail closed).
#[cfg(feature = "redis")]
pub(crate) const ERROR: usize = 2;
/// Redis failed and the call was admitted (fail open).
#[cfg(feature = "redis")]
pub(crate) const FAIL_OPEN: usize = 3;
/// Redis failed and the local fallback limiter decided.
#[cfg(feature = "redis")]
pub(crate) const LOCAL: usize = 4;

/// One limiter's decision counters, each registered on first use.
#[derive(Debug)]
pub(crate) struct Decisions(OutcomeCounters<5>);

impl Decisions {
    /// The counters of the limiter `name` (`unnamed` without one).
    pub(crate) fn new(name: Option<SharedString>) -> Self {
        let name = name.unwrap_or(SharedString::const_str(UNNAMED));
        Self(OutcomeCounters::new(
            RATE_LIMIT_DECISIONS_TOTAL,
            name,
            &OUTCOMES,
        ))
    }

    /// Counts one decision of outcome `i`.
    #[inline]
    pub(crate) fn count(&self, i: usize) {
        self.0.increment(i);
    }

    /// Counts `allowed` for `Ok`, `rejected` for `Err`.
    #[inline]
    pub(crate) fn record<T, E>(&self, result: &Result<T, E>) {
        self.count(if result.is_ok() { ALLOWED } else { REJECTED });
    }

    /// The limiter's name, as the `name` label carries it.
    pub(crate) fn name(&self) -> &str {
        self.0.name()
    }
}
