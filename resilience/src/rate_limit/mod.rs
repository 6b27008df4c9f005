//! Rate limiting: an in-memory GCRA limiter, a keyed limiter with bounded memory, and (feature
//! `redis`) a Redis-backed limiter with the same [`KeyedRateLimit`] face.

mod decision;

pub use decision::{KeyedRateLimit, RateLimitDecision, RateLimitError, RateLimited};
