//! Rate limiting: an in-memory GCRA limiter, a keyed limiter with bounded memory, and (feature
//! `redis`) a Redis-backed limiter with the same [`KeyedRateLimit`] face.
//!
//! - [`RateLimiter`]: one bucket, lock-free, its whole state in one `AtomicU64`.
//! - [`KeyedRateLimiter`]: one bucket per key (user, IP, tenant, ...); keys whose bucket is full
//!   again are evicted as new keys arrive, and `max_keys` bounds the memory.
//! - Clocks: [`QuantaClock`] (default, cheap), [`TokioClock`] (follows tokio's paused clock in
//!   tests), [`ManualClock`]; or implement [`Clock`].
//!
//! Tests drive time through the clock instead of sleeping:
//!
//! ```
//! use std::time::Duration;
//! use resilience::rate_limit::{RateLimiter, TokioClock};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let limiter = RateLimiter::builder()
//!     .per_second(4)
//!     .clock(TokioClock::new())
//!     .build()
//!     .expect("valid quota");
//! assert!(limiter.check_n(4).is_ok()); // the whole burst
//! let start = tokio::time::Instant::now();
//! limiter.until_ready().await; // the next token comes back after 250 ms
//! assert_eq!(start.elapsed(), Duration::from_millis(250));
//! # }
//! ```

mod clock;
mod decision;
mod error;
mod gcra;
mod keyed;
mod metrics;
mod preset;
mod quota;
#[cfg(feature = "redis")]
mod redis;

pub use clock::{Clock, ManualClock, QuantaClock, TokioClock};
pub use decision::{KeyedRateLimit, RateLimitDecision, RateLimitError, RateLimited};
pub use error::CheckError;
pub use gcra::{RateLimiter, RateLimiterBuilder};
pub use keyed::{KeyedRateLimiter, KeyedRateLimiterBuilder};
pub use preset::LimiterPreset;
pub use quota::Quota;
#[cfg(feature = "redis")]
pub use redis::{FailurePolicy, RedisRateLimiter, RedisRateLimiterBuilder};
