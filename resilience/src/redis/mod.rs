//! Redis layer: secure client, typed collision-safe keys, Lua scripts for atomic operations.
//!
//! - [`RedisClient`] / [`RedisConfig`]: one auto-reconnecting multiplexed connection (connected
//!   lazily when Redis is down at start-up), TLS via rustls with verification always on, ACL user and
//!   password (a [`Secret`], never printed), key prefix, connect and response timeouts,
//!   `TCP_NODELAY`. Every call goes through the "redis" circuit breaker, has a deadline, and
//!   records `redis_operation_duration_seconds`, `redis_errors_total` and `redis_connected`.
//! - Keys: [`RedisKey`] (derive it with `#[derive(RedisKey)]`), [`KeyWriter`], [`KeySegment`],
//!   and the built-in families in [`keys`]: rate limits, locks, caches, breaker state,
//!   idempotency records.
//! - Scripts (Lua, EVALSHA, reloaded on NOSCRIPT): GCRA rate limit on the server's clock
//!   ([`RedisClient::rate_limit`]), locks with fencing tokens ([`RedisClient::lock`] with a
//!   bounded wait and a watchdog, [`RedisClient::acquire_lock`], [`RedisClient::with_lock`],
//!   [`RedisClient::release_lock`]), optimistic writes ([`RedisClient::create_if_not_exists`],
//!   [`RedisClient::conditional_update`]), and [`SharedCircuitBreaker`]: one breaker state
//!   shared by several processes.
//! - Topologies: [`RedisClient::connect`] (one server), [`RedisClient::connect_cluster`] (Redis
//!   Cluster: seeds, topology learnt, scripts on every node) and
//!   [`RedisClient::connect_sentinel`] / [`RedisClient::connect_sentinel_with`] (Sentinel:
//!   master discovery and re-discovery; [`SentinelOptions`] for the sentinels' own credentials,
//!   TLS and the master check interval). TLS ([`RedisConfigBuilder::tls_ca_file`],
//!   [`RedisConfigBuilder::tls_client_cert`] for mutual TLS) and credentials apply to every node.
//! - Attributes: [`set_default_client`] installs the client that
//!   `#[rate_limit(backend = "redis")]` and `#[circuit_breaker(shared = true)]` use when not given
//!   `client = ...`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), resilience::redis::RedisError> {
//! use std::time::Duration;
//! use resilience::redis::{Keys, RedisClient, RedisConfig, RateWindow};
//!
//! let config = RedisConfig::from_url("redis://127.0.0.1:6379")?.key_prefix("nova").build()?;
//! let redis = RedisClient::connect(config).await?;
//! let ip = "192.168.1.1".parse().unwrap();
//! let decision = redis.rate_limit(&Keys::rate_ip(ip, RateWindow::Minute), 60, 1.0, 1).await?;
//! if decision.allowed {
//!     redis.with_lock(&Keys::lock("goal_abc123"), Duration::from_secs(30), async |lock| {
//!         // ... write, passing `lock.fencing_token()` along ...
//!     }).await?;
//! }
//! # Ok(()) }
//! ```

mod client;
mod cluster;
mod config;
mod connection;
mod default_client;
mod error;
pub mod keys;
mod lock;
mod ops;
mod scripts;
mod secret;
mod sentinel;
mod shared_breaker;
mod tls;

pub use client::{RedisClient, Versioned};
pub use config::{ReconnectBackoff, RedisConfig, RedisConfigBuilder, TlsClientCert, TlsOptions};
pub use default_client::{default_client, set_default_client};
pub use error::{RedisError, ServerReply};
pub use keys::{
    BreakerKey, CacheKey, IdempotencyKey, KeySegment, KeyWriter, Keys, LockKey, RateLimitKey,
    RateSubject, RateWindow, RedisKey, encode_segment, render_key,
};
pub use lock::{DEFAULT_LOCK_TTL, LockGuard, LockOwner, LockRequest};
pub use scripts::{MAX_TTL, rate_limit_script_sha, rate_limit_script_source, script_source};
pub use secret::Secret;
pub use sentinel::{DEFAULT_MASTER_CHECK_INTERVAL, SentinelOptions, SentinelOptionsBuilder};
pub use shared_breaker::{SharedCircuitBreaker, SharedCircuitBreakerBuilder, SharedPermit};

// For the job queues' Redis backend, which connects through bullmq-official.
#[cfg(feature = "jobs")]
pub(crate) use error::connect_failure;
#[cfg(feature = "jobs")]
pub(crate) use sentinel::resolve_master;
#[cfg(feature = "jobs")]
pub(crate) use tls::{build_client, tls_certificates};

/// The underlying `redis` crate (e.g. `driver::cmd("INCR")` for [`RedisClient::query`]).
pub use ::redis as driver;

/// Validates rate-limit parameters the way [`RedisClient::rate_limit`] does.
pub(crate) fn check_rate_public(capacity: u64, refill_per_sec: f64) -> Result<f64, RedisError> {
    client::check_rate(capacity, refill_per_sec, 0)
}
