//! The process-wide default [`RedisClient`]: what `#[rate_limit(backend = "redis")]` and
//! `#[circuit_breaker(shared = true)]` use when they are not given `client = ...`.
//!
//! Set once at start-up, after connecting; it cannot be replaced (attributes keep the limiter or
//! breaker they built on first use, so a later swap would not reach them anyway).

use std::sync::OnceLock;

use super::RedisClient;

static DEFAULT_CLIENT: OnceLock<RedisClient> = OnceLock::new();

/// Installs `client` as the process-wide default. `Err(client)` (handing it back) when a default
/// is installed already.
///
/// ```no_run
/// # async fn demo() -> Result<(), resilience::redis::RedisError> {
/// use resilience::redis::{RedisClient, RedisConfig, set_default_client};
///
/// let redis = RedisClient::connect(RedisConfig::from_url("redis://127.0.0.1:6379")?.build()?).await?;
/// if set_default_client(redis.clone()).is_err() {
///     tracing::warn!("a default Redis client was installed already; keeping it");
/// }
/// # Ok(()) }
/// ```
pub fn set_default_client(client: RedisClient) -> Result<(), RedisClient> {
    DEFAULT_CLIENT.set(client)
}

/// The process-wide default client, if one was installed with [`set_default_client`].
pub fn default_client() -> Option<&'static RedisClient> {
    DEFAULT_CLIENT.get()
}
