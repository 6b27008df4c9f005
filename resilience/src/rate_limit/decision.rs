//! The vocabulary every limiter shares: decisions, rejections and the keyed-limiter trait.

use std::future::Future;
use std::time::Duration;

/// A call was refused by a rate limiter; try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: retry after {retry_after:?}")]
pub struct RateLimited {
    /// How long until the request would be admitted.
    pub retry_after: Duration,
}

/// For functions returning `io::Result` under `#[rate_limit]`: an `ErrorKind::Other` error
/// carrying the rejection (the retry classifier still finds it and its `retry_after`).
impl From<RateLimited> for std::io::Error {
    fn from(limited: RateLimited) -> Self {
        std::io::Error::other(limited)
    }
}

/// The full answer of a limiter for one request of some cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Whether the request was admitted (and its cost taken).
    pub allowed: bool,
    /// Whole tokens left after this decision.
    pub remaining: u64,
    /// When refused: how long until a request of the same cost would be admitted. Zero when allowed.
    pub retry_after: Duration,
    /// How long until the bucket is full again (all `capacity` tokens available).
    pub reset_after: Duration,
}

impl RateLimitDecision {
    /// `Ok(self)` when allowed, otherwise the [`RateLimited`] rejection.
    pub fn into_result(self) -> Result<Self, RateLimited> {
        if self.allowed {
            Ok(self)
        } else {
            Err(RateLimited {
                retry_after: self.retry_after,
            })
        }
    }
}

/// A limiter could not decide (its backend failed and the failure policy did not cover it).
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// The request's cost can never be admitted: it exceeds the bucket's capacity.
    #[error("cost {cost} exceeds the limiter's capacity {capacity}")]
    CostExceedsCapacity {
        /// The requested cost.
        cost: u64,
        /// The bucket's capacity (burst).
        capacity: u64,
    },
    /// The backend (e.g. Redis) failed and the failure policy is to fail closed.
    #[error("rate-limit backend unavailable: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// A limiter that decides per key; implemented by the in-memory keyed limiter and, with the
/// `redis` feature, by the Redis-backed one, so code can switch backends without changes.
pub trait KeyedRateLimit: Send + Sync {
    /// Decide for one request of `cost` tokens under `key`.
    fn check_key(
        &self,
        key: &str,
        cost: u32,
    ) -> impl Future<Output = Result<RateLimitDecision, RateLimitError>> + Send;
}
