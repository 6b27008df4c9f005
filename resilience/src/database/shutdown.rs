//! Closing a pool at shutdown: a hook on a [`ShutdownCoordinator`].

use std::time::Duration;

use sqlx::Database;

use super::MeasuredPool;
use crate::shutdown::{Priority, ShutdownCoordinator, ShutdownError};

/// How [`register_pool_shutdown_with`] registers its hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolShutdownOptions {
    /// The hook's tier (default [`Priority::HIGH`]: close connections after servers stopped
    /// accepting, before low-priority cleanup).
    pub priority: Priority,
    /// The hook's own timeout; `None` uses the coordinator's per-hook timeout. In-flight
    /// queries get this long to finish before the pool is dropped with them.
    pub timeout: Option<Duration>,
    /// The hook's name in the shutdown report; `None` gives `"db-pool:<pool name>"`.
    pub name: Option<String>,
}

impl Default for PoolShutdownOptions {
    fn default() -> Self {
        Self {
            priority: Priority::HIGH,
            timeout: None,
            name: None,
        }
    }
}

impl PoolShutdownOptions {
    /// The default options: priority high, the coordinator's hook timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the hook in this tier.
    pub fn priority(mut self, priority: impl Into<Priority>) -> Self {
        self.priority = priority.into();
        self
    }

    /// Gives the hook (and so the in-flight queries) this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Names the hook.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Registers a shutdown hook (priority high) that closes `pool`: new acquires fail at once with
/// `PoolClosed`, idle connections close, and the hook waits for the connections in use to come
/// back — in-flight queries finish — within the hook's timeout, after which the coordinator
/// reports the hook timed out and the remaining connections close when dropped.
pub fn register_pool_shutdown<DB: Database>(
    pool: &MeasuredPool<DB>,
    coordinator: &ShutdownCoordinator,
) -> Result<(), ShutdownError> {
    register_pool_shutdown_with(pool, coordinator, PoolShutdownOptions::default())
}

/// [`register_pool_shutdown`] with another priority, timeout or name.
pub fn register_pool_shutdown_with<DB: Database>(
    pool: &MeasuredPool<DB>,
    coordinator: &ShutdownCoordinator,
    options: PoolShutdownOptions,
) -> Result<(), ShutdownError> {
    let name = options
        .name
        .unwrap_or_else(|| format!("db-pool:{}", pool.name()));
    let pool = pool.clone();
    let close = move || async move {
        pool.close().await;
        tracing::debug!(pool = pool.name(), "database pool closed");
    };
    match options.timeout {
        // The coordinator cuts the hook at its timeout (and drops `close`, leaving the rest of
        // the connections to close as they are dropped): that is the bound.
        Some(timeout) => coordinator.register_with_timeout(name, options.priority, timeout, close),
        None => coordinator.register(name, options.priority, close),
    }
}
