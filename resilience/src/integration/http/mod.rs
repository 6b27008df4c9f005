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
//! Both answer with responses, never errors, so they work in an axum `Router` with `.layer(..)`:
//!
//! ```rust
//! use std::sync::Arc;
//!
//! use axum::{Router, routing::get};
//! use resilience::integration::http::{ClientIp, HttpCircuitBreakerLayer, HttpRateLimitLayer};
//! use resilience::rate_limit::KeyedRateLimiter;
//!
//! # fn main() -> Result<(), resilience::ConfigError> {
//! // 10 requests a second per client, bursts of 20, behind one reverse proxy that appends to
//! // X-Forwarded-For (ClientIp::peer() when clients connect directly).
//! let per_ip = KeyedRateLimiter::builder().per_second(10).burst(20).build()?;
//! let limit = HttpRateLimitLayer::builder(ClientIp::x_forwarded_for(1), Arc::new(per_ip))
//!     .policy_name("per-ip")
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/quote", get(|| async { "42" }))
//!     .layer(HttpCircuitBreakerLayer::named("quotes")) // 503 + Retry-After while open
//!     .layer(limit); // outermost: refused requests never reach the breaker
//! // Serve with the peer address: axum::serve(listener,
//! //     app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod backend;
mod breaker;
mod forwarded;
mod headers;
mod key;
mod rate_limit;

#[cfg(feature = "redis")]
pub use backend::RedisDecision;
pub use backend::{Decide, LimitBackend};
pub use breaker::{
    HttpCircuitBreaker, HttpCircuitBreakerFuture, HttpCircuitBreakerLayer, ServerErrors,
};
pub use headers::PolicyInfo;
pub use key::{ClientIp, FnKey, HeaderKey, KeyExtractor, KeyType, MissingKey, key_fn, peer_addr};
pub use rate_limit::{
    CostFn, HttpRateLimit, HttpRateLimitFuture, HttpRateLimitLayer, HttpRateLimitLayerBuilder,
    OneToken, RequestCost,
};
