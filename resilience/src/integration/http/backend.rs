//! The limiter behind the HTTP layer: the in-memory keyed limiter (decides synchronously) or,
//! with feature `redis`, the Redis limiter (decides asynchronously).

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use super::headers::PolicyInfo;
use crate::rate_limit::{
    CheckError, Clock, KeyedRateLimiter, RateLimitDecision, RateLimitError, RateLimited,
};

/// A backend's answer: decided on the spot (no future, no allocation) or later.
#[derive(Debug)]
pub enum Decide<F> {
    /// The decision, made synchronously.
    Ready(Result<RateLimitDecision, RateLimitError>),
    /// A future that makes the decision.
    Pending(F),
}

/// A keyed limiter the HTTP layer can sit on. Implemented by [`KeyedRateLimiter`], by
/// `RedisRateLimiter` (feature `redis`, keys written with `Display`) and by `Arc`s of either.
pub trait LimitBackend<K>: Send + Sync + 'static {
    /// The future of an asynchronous decision.
    type Future: Future<Output = Result<RateLimitDecision, RateLimitError>> + Send + 'static;

    /// Decides for a request of `cost` tokens under `key`.
    fn decide(&self, key: &K, cost: u32) -> Decide<Self::Future>;

    /// Like [`decide`](Self::decide) when no rate-limit header will be written: only `allowed`
    /// and `retry_after` of the decision are read, so a backend may skip the other figures.
    #[inline]
    fn admit(&self, key: &K, cost: u32) -> Decide<Self::Future> {
        self.decide(key, cost)
    }

    /// The quota, for the `RateLimit-Policy` / `X-RateLimit-Limit` headers.
    fn policy(&self) -> PolicyInfo;
}

impl<K, C> LimitBackend<K> for KeyedRateLimiter<K, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Clock,
{
    type Future = std::future::Ready<Result<RateLimitDecision, RateLimitError>>;

    #[inline]
    fn decide(&self, key: &K, cost: u32) -> Decide<Self::Future> {
        Decide::Ready(match self.decide_key(key, cost) {
            Ok(decision) => Ok(decision),
            Err(e) => from_check_error(e),
        })
    }

    #[inline]
    fn admit(&self, key: &K, cost: u32) -> Decide<Self::Future> {
        // The plain GCRA check: no remaining / reset arithmetic.
        Decide::Ready(match self.check_key_n(key, cost) {
            Ok(()) => Ok(RateLimitDecision {
                allowed: true,
                remaining: 0,
                retry_after: Duration::ZERO,
                reset_after: Duration::ZERO,
            }),
            Err(e) => from_check_error(e),
        })
    }

    fn policy(&self) -> PolicyInfo {
        let quota = self.quota();
        PolicyInfo {
            quota: u64::from(quota.burst()),
            window: quota.refill_time(),
        }
    }
}

/// A refusal of the in-memory limiter as the layer's decision.
#[cold]
fn from_check_error(e: CheckError) -> Result<RateLimitDecision, RateLimitError> {
    match e {
        CheckError::CostExceedsCapacity { cost, capacity } => {
            Err(RateLimitError::CostExceedsCapacity {
                cost: u64::from(cost),
                capacity: u64::from(capacity),
            })
        }
        // A new client while the table is full of active ones: refused like a spent bucket.
        CheckError::TooManyKeys { retry_after, .. }
        | CheckError::Limited(RateLimited { retry_after }) => Ok(RateLimitDecision {
            allowed: false,
            remaining: 0,
            retry_after,
            reset_after: retry_after,
        }),
    }
}

impl<K, T: LimitBackend<K> + ?Sized> LimitBackend<K> for Arc<T> {
    type Future = T::Future;

    #[inline]
    fn decide(&self, key: &K, cost: u32) -> Decide<Self::Future> {
        (**self).decide(key, cost)
    }

    #[inline]
    fn admit(&self, key: &K, cost: u32) -> Decide<Self::Future> {
        (**self).admit(key, cost)
    }

    fn policy(&self) -> PolicyInfo {
        (**self).policy()
    }
}

#[cfg(feature = "redis")]
mod redis_backend {
    use std::fmt::Display;
    use std::pin::Pin;

    use super::*;
    use crate::rate_limit::RedisRateLimiter;

    /// The future of a Redis decision.
    pub type RedisDecision =
        Pin<Box<dyn Future<Output = Result<RateLimitDecision, RateLimitError>> + Send>>;

    impl<K: Display> LimitBackend<K> for RedisRateLimiter {
        type Future = RedisDecision;

        fn decide(&self, key: &K, cost: u32) -> Decide<Self::Future> {
            let limiter = self.clone();
            let key = key.to_string();
            Decide::Pending(Box::pin(async move { limiter.check(&key, cost).await }))
        }

        fn policy(&self) -> PolicyInfo {
            let window = self.capacity() as f64 / self.refill_per_sec();
            PolicyInfo {
                quota: self.capacity(),
                window: Duration::try_from_secs_f64(window).unwrap_or(Duration::MAX),
            }
        }
    }
}
#[cfg(feature = "redis")]
pub use redis_backend::RedisDecision;
