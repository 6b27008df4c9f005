//! reqwest integration (feature `reqwest`): which HTTP failures are worth retrying, and a
//! `reqwest-middleware` middleware that gives every host a rate limiter, a circuit breaker and a
//! retry policy.
//!
//! # Classifying
//! - [`Retryable`](crate::Retryable) for `reqwest::Error`: connect, timeout, request-sending
//!   and body errors are transient; builder, redirect-policy, decode and upgrade errors are not;
//!   an error from `error_for_status` follows [`RetryableStatuses::DEFAULT`]. For
//!   `reqwest_middleware::Error`: its `Reqwest` variant the same, its `Middleware` variant by the
//!   error chain (a [`RetryableStatus`] or a `reqwest::Error` in it decides; a
//!   `CircuitOpenError` is not retryable; a `RateLimitError` is as transient as its backend's
//!   error; otherwise the [chain
//!   classifier](crate::retry::classify::is_transient_error), which also reads a
//!   `RateLimited`'s hint).
//! - [`classify_response`] / [`RetryableStatuses::classify`]: 408, 429, 500, 502, 503 and 504
//!   are retryable by default (the set is configurable), and their `Retry-After` — seconds or
//!   an HTTP-date, parsed by [`parse_retry_after`] — becomes the hint that replaces the backoff
//!   delay. A date in the past means zero, values beyond [`MAX_RETRY_AFTER`] (a day) are
//!   clamped, garbage is ignored. [`retry_after`] takes the wall-clock time as an argument, so
//!   tests can pin it.
//!
//! # The middleware
//! [`ResilienceMiddleware`] works per host — the URL's origin, `scheme://host[:port]` — in this
//! order:
//! 1. **Rate limit** (optional): any [`KeyedRateLimit`](crate::rate_limit::KeyedRateLimit)
//!    keyed by origin admits each request (not each attempt: it admits callers) — the
//!    in-memory [`KeyedRateLimiter`](crate::KeyedRateLimiter) for a quota per process, or
//!    (feature `redis`) a `RedisRateLimiter` for one quota shared by every replica. Over the
//!    limit, the request fails at once with `Error::Middleware` carrying
//!    [`RateLimited`](crate::RateLimited), or waits up to
//!    [`rate_limit_wait`](ResilienceMiddlewareBuilder::rate_limit_wait) for its token (sleeping
//!    for each refusal's `retry_after`, then asking again). A limiter that cannot decide — Redis
//!    down under `FailurePolicy::FailClosed` — fails the request at once with `Error::Middleware`
//!    carrying the [`RateLimitError`](crate::rate_limit::RateLimitError) (`FailOpen` admits,
//!    `Local` decides in memory). The middleware's own retry never repeats an admission (the
//!    limiter sits outside it); a caller's retry around `send` treats that error as transient
//!    when the backend's error is (a Redis timeout or lost connection: yes), and each try asks
//!    the limiter again, so no retry gets around the limit.
//! 2. **Circuit breaker**: by default the global breaker named after the origin (created on
//!    first use; a prefix and a configuration can be given, or one fixed breaker for all
//!    hosts). It sits outside the retry, as the README's stacking rule says, so a retried
//!    sequence counts once: a final 5xx or transport failure (connect, timeout, send, body, a cut
//!    attempt) is a failure; a 4xx, 429 included, is the host answering; a request that never
//!    reached the host (a builder error) records nothing. While open it answers
//!    `Error::Middleware` carrying [`CircuitOpenError`](crate::CircuitOpenError) — downcast
//!    it to read `retry_after` — without sending anything.
//! 3. **Retry**: the policy retries retryable statuses and errors, waiting a response's
//!    `Retry-After` instead of its backoff. Every attempt sends a clone of the request; a
//!    request whose body cannot be cloned (a stream) is sent once. Out of attempts (or of the
//!    policy's total time) on a retryable status, the caller gets that last response, not an
//!    error; an attempt cut by the policy's `attempt_timeout` or deadline ends as
//!    `Error::Middleware` carrying a [`TimeoutError`](crate::TimeoutError).
//!
//! Breaker names and log lines carry the origin only, never the path, query or user info. A
//! per-host breaker is one registry entry (and one metric label) per origin: meant for a client
//! that calls a known set of services. A client that follows arbitrary URLs should use one fixed
//! breaker ([`breaker_name`](ResilienceMiddlewareBuilder::breaker_name)).
//!
//! The crate re-exports the [`reqwest`] and [`reqwest_middleware`] it is built on: name them
//! through `resilience::http_client` (or pin the same versions) so your client and the
//! middleware's types match.
//!
//! ```no_run
//! use resilience::http_client::{ResilienceMiddleware, reqwest, reqwest_middleware};
//! use resilience::rate_limit::KeyedRateLimiter;
//! use resilience::{CircuitOpenError, RetryPreset};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(
//!         ResilienceMiddleware::builder()
//!             .retry(RetryPreset::Quick)
//!             .rate_limit(KeyedRateLimiter::builder().per_second(10).build()?)
//!             .build(),
//!     )
//!     .build();
//! match client.get("http://127.0.0.1:8080/quote").send().await {
//!     Ok(response) => println!("{}", response.status()), // a 503 after the last attempt lands here
//!     Err(reqwest_middleware::Error::Middleware(e)) if e.is::<CircuitOpenError>() => {
//!         println!("upstream is down, not calling it");
//!     }
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok(())
//! # }
//! ```

mod classify;
mod limit;
mod middleware;
mod retry_after;

/// The `reqwest` this module is built on: name it through here to match our version.
pub use reqwest;
/// The `reqwest-middleware` this module is built on: name it through here to match our version.
pub use reqwest_middleware;

pub use classify::{
    ResponseClass, RetryableStatus, RetryableStatuses, classify_response, status_of,
};
pub use middleware::{ResilienceMiddleware, ResilienceMiddlewareBuilder};
pub use retry_after::{MAX_RETRY_AFTER, parse_retry_after, retry_after};
