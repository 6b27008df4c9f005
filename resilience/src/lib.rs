// The crate documentation is the README (a symlink to the repository's, so the packaged crate
// carries the same text): docs.rs shows the tour, and every Rust block in it is a doctest.
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bulkhead;
pub mod circuit_breaker;
#[cfg(feature = "database")]
pub mod database;
pub mod error;
pub mod health;
#[cfg(feature = "reqwest")]
pub mod http_client;
#[cfg(any(feature = "tower", feature = "axum"))]
pub mod integration;
#[cfg(feature = "jobs")]
pub mod jobs;
#[cfg(any(feature = "redis", feature = "tower"))]
mod log_throttle;
pub mod metrics;
pub mod protect;
pub mod rate_limit;
#[cfg(feature = "redis")]
pub mod redis;
pub mod retry;
pub mod shutdown;
pub mod timeout;

#[doc(hidden)]
pub mod __private;

pub use error::ConfigError;

// --- presets and adapter protection (issue 13) ---
pub use error::UnknownPreset;
pub use protect::{Dependency, protect};
pub use retry::RetryService;

// --- circuit breaker re-exports ---
pub use circuit_breaker::{
    BreakerRegistry, CallError, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset,
    CircuitOpenError, CircuitState, Protected, RegistryError, configure_circuit_breaker,
    get_circuit_breaker, with_circuit_breaker,
};

// --- retry / timeout re-exports ---
pub use retry::{
    Backoff, RetryError, RetryEvent, RetryPolicy, RetryPreset, Retryable, retry, retry_blocking,
};
pub use timeout::{TimeoutError, timeout};

// --- rate limit / bulkhead re-exports ---
pub use bulkhead::{Bulkhead, BulkheadError, BulkheadFull, BulkheadPermit};
pub use rate_limit::{KeyedRateLimiter, RateLimitDecision, RateLimited, RateLimiter};

// --- redis re-exports ---
#[cfg(feature = "redis")]
pub use crate::redis::{RedisClient, RedisConfig, RedisKey};

// --- database re-exports ---
#[cfg(feature = "database")]
pub use database::{
    DatabaseHealthCheck, MeasuredPool, PoolStats, QueryStats, check_database_health,
    retry_transaction,
};

// --- shutdown / health re-exports ---
pub use shutdown::{
    Priority, ShutdownConfig, ShutdownCoordinator, ShutdownError, ShutdownOutcome, ShutdownReport,
    register_shutdown_hook,
};

// --- macro re-exports ---
// Macros live in the macro namespace, so `retry` / `timeout` here coexist with the modules and
// functions of the same name, and `RedisKey` (the derive) with the trait.
#[cfg(feature = "redis")]
#[doc(inline)]
pub use resilience_macros::RedisKey;
#[cfg(feature = "jobs")]
#[doc(inline)]
pub use resilience_macros::job;
#[doc(inline)]
pub use resilience_macros::{bulkhead, circuit_breaker, rate_limit, retry, shutdown_hook, timeout};
