//! HTTP answers (feature `tower`): a keyed rate-limit layer with the standard headers, and a
//! circuit-breaker layer that answers an open circuit with 503.
//!
//! - [`HttpRateLimitLayer`]: one bucket per key read by a [`KeyExtractor`] ([`ClientIp`],
//!   [`HeaderKey`], [`key_fn`]), decided by a [`LimitBackend`]: the in-memory
//!   [`KeyedRateLimiter`](crate::rate_limit::KeyedRateLimiter) (synchronous) or the
//!   `RedisRateLimiter` (shared by replicas). Refusals are `429` with `Retry-After`,
//!   `RateLimit-Policy` and `RateLimit`; admitted responses carry the two `RateLimit` fields too.
//! - [`HttpCircuitBreakerLayer`]: `503` + `Retry-After` while the breaker is open; 5xx responses
//!   are failures ([`ServerErrors`]).
//!
//! Both answer with responses, never errors, so they work in an axum `Router` with `.layer(..)`.

mod backend;
mod breaker;
mod forwarded;
mod headers;
mod key;
mod rate_limit;

pub use backend::{Decide, LimitBackend};
#[cfg(feature = "redis")]
pub use backend::RedisDecision;
pub use breaker::{
    HttpCircuitBreaker, HttpCircuitBreakerFuture, HttpCircuitBreakerLayer, ServerErrors,
};
pub use headers::PolicyInfo;
pub use key::{ClientIp, FnKey, HeaderKey, KeyExtractor, KeyType, MissingKey, key_fn, peer_addr};
pub use rate_limit::{
    CostFn, HttpRateLimit, HttpRateLimitFuture, HttpRateLimitLayer, HttpRateLimitLayerBuilder,
    OneToken, RequestCost,
};
