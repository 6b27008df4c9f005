//! Rate limiting: an in-memory GCRA limiter, a keyed limiter with bounded memory, and (feature
//! `redis`) a Redis-backed limiter with the same [`KeyedRateLimit`] face.

mod decision;
#[cfg(feature = "redis")]
mod redis;

pub use decision::{KeyedRateLimit, RateLimitDecision, RateLimitError, RateLimited};
#[cfg(feature = "redis")]
pub use redis::{FailurePolicy, RedisRateLimiter, RedisRateLimiterBuilder};
