//! Why an in-memory limiter did not admit a request.

use std::time::Duration;

use super::decision::RateLimited;

/// A request was not admitted by [`RateLimiter::check_n`](super::RateLimiter::check_n) or a
/// [`KeyedRateLimiter`](super::KeyedRateLimiter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// Not enough tokens now; retry after the given time.
    #[error(transparent)]
    Limited(#[from] RateLimited),
    /// The cost is larger than the bucket (the burst), so it can never be admitted; waiting
    /// would never end.
    #[error(
        "cost {cost} exceeds the limiter's capacity (burst) {capacity}; it can never be admitted"
    )]
    CostExceedsCapacity {
        /// The requested cost.
        cost: u32,
        /// The bucket's capacity (burst).
        capacity: u32,
    },
    /// A keyed limiter already tracks `max_keys` keys that are all still active, so a new key
    /// cannot be tracked yet; a slot frees after `retry_after`.
    #[error(
        "the keyed limiter tracks its maximum of {max_keys} active keys; a slot frees in {retry_after:?}"
    )]
    TooManyKeys {
        /// The configured bound.
        max_keys: usize,
        /// When the first tracked key becomes idle (its bucket full again) and can be evicted.
        retry_after: Duration,
    },
}

impl CheckError {
    /// How long to wait before the same request could succeed; `None` when it never can.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Limited(limited) => Some(limited.retry_after),
            Self::CostExceedsCapacity { .. } => None,
            Self::TooManyKeys { retry_after, .. } => Some(*retry_after),
        }
    }
}
