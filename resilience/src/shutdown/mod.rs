//! Graceful shutdown: prioritised hooks, signals, readiness, draining.
//!
//! On SIGTERM / SIGINT (after [`install_signal_handlers`]) or a call to [`shutdown`]:
//! 1. readiness turns off at once ([`should_accept_requests`] returns `false`, `/readyz` says 503);
//! 2. requests are still served for `drain_delay`, so load balancers notice;
//! 3. the [`cancellation_token`] fires and [`server_close_signal`] resolves: servers stop
//!    accepting, tasks wind down;
//! 4. tracked in-flight work ([`ShutdownCoordinator::in_flight`]) is waited for, up to
//!    `drain_timeout`;
//! 5. hooks run by priority, highest first; hooks of equal priority run concurrently; each under
//!    its own timeout, all under the total timeout;
//! 6. the process exits with 0 (success), 1 (a hook failed or panicked) or 124 (total timeout).
//!
//! ```
//! use resilience::shutdown::{register_shutdown_hook, Priority};
//!
//! register_shutdown_hook("flush-metrics", Priority::LOW, || async {
//!     // flush, close, say goodbye...
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! register_shutdown_hook("close-redis", "high".parse::<Priority>().unwrap(), || async {}).unwrap();
//! ```

mod config;
mod coordinator;
mod hook;
mod priority;
mod report;
mod signal;

use std::future::Future;
use std::sync::LazyLock;

pub use config::{ShutdownConfig, ShutdownConfigBuilder};
pub use coordinator::{InFlightGuard, ShutdownCoordinator};
pub use hook::{BoxError, HookFuture, IntoHookResult, StaticShutdownHook};
pub use priority::{ParsePriorityError, Priority};
pub use report::{
    EXIT_FAILURE, EXIT_SUCCESS, EXIT_TIMEOUT, HookReport, HookStatus, ShutdownOutcome,
    ShutdownReport,
};
pub use tokio_util::sync::CancellationToken;

static GLOBAL: LazyLock<ShutdownCoordinator> =
    LazyLock::new(|| ShutdownCoordinator::build(ShutdownConfig::default(), true));

/// Why a shutdown operation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// Shutdown has already begun: hooks can no longer be registered, nor the configuration
    /// changed.
    #[error("shutdown has already begun")]
    AlreadyStarted,
    /// Signal handlers need a tokio runtime and none was running.
    #[error("signal handlers need a running tokio runtime")]
    NoRuntime,
    /// The OS refused to install a signal handler.
    #[error("installing signal handlers failed: {0}")]
    Signal(#[source] std::io::Error),
    /// A hook's own setting was refused (e.g. a zero timeout).
    #[error(transparent)]
    InvalidConfig(#[from] crate::ConfigError),
}

/// Registers `f` to run on the global coordinator at shutdown, in `priority`'s tier.
///
/// `f` returns a future of `()` or `Result<(), E>`; an error or a panic is reported and fails the
/// shutdown (exit code 1) without stopping other hooks. Fails with
/// [`ShutdownError::AlreadyStarted`] once shutdown has begun.
pub fn register_shutdown_hook<F, Fut, R>(
    name: impl Into<String>,
    priority: impl Into<Priority>,
    f: F,
) -> Result<(), ShutdownError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoHookResult,
{
    GLOBAL.register(name, priority, f)
}

/// Sets the global coordinator's configuration; fails once shutdown has begun.
pub fn configure_shutdown(config: ShutdownConfig) -> Result<(), ShutdownError> {
    GLOBAL.configure(config)
}

/// `false` once the global shutdown has begun (one atomic load).
pub fn should_accept_requests() -> bool {
    GLOBAL.should_accept_requests()
}

/// Whether the global shutdown has begun.
pub fn is_shutting_down() -> bool {
    GLOBAL.is_shutting_down()
}

/// The global token, cancelled when tasks should stop (after the drain delay).
pub fn cancellation_token() -> CancellationToken {
    GLOBAL.cancellation_token()
}

/// The global close signal for `axum::serve(..).with_graceful_shutdown(..)`.
pub fn server_close_signal() -> impl Future<Output = ()> + Send + 'static {
    GLOBAL.server_close_signal()
}

/// Marks one unit of in-flight work on the global coordinator until the guard drops.
pub fn in_flight() -> InFlightGuard {
    GLOBAL.in_flight()
}

/// Runs the global shutdown (or waits for the one under way) and returns its report.
pub async fn shutdown() -> ShutdownReport {
    GLOBAL.shutdown().await
}

/// Installs SIGTERM / SIGINT handlers for the global coordinator; see
/// [`ShutdownCoordinator::install_signal_handlers`].
pub fn install_signal_handlers() -> Result<(), ShutdownError> {
    GLOBAL.install_signal_handlers()
}

/// A hook body that waits for a server task to finish closing (its graceful shutdown having been
/// triggered by [`server_close_signal`]); register it at [`Priority::CRITICAL`]. A server error
/// or a panicked server task fails the hook.
///
/// ```no_run
/// # async fn demo(server: tokio::task::JoinHandle<std::io::Result<()>>) {
/// use resilience::shutdown::{register_shutdown_hook, server_close_hook, Priority};
/// register_shutdown_hook("http", Priority::CRITICAL, server_close_hook(server)).unwrap();
/// # }
/// ```
pub fn server_close_hook<E>(
    server: tokio::task::JoinHandle<Result<(), E>>,
) -> impl FnOnce() -> HookFuture + Send + 'static
where
    E: Into<BoxError> + Send + 'static,
{
    move || {
        Box::pin(async move {
            match server.await {
                Ok(result) => result.map_err(Into::into),
                Err(join) => Err(Box::new(join) as BoxError),
            }
        })
    }
}
