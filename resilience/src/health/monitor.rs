//! Periodic health checks with a callback and the last result.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{HealthRegistry, HealthReport};
use crate::ConfigError;

type Callback = Box<dyn Fn(&HealthReport) + Send + Sync>;

/// The shortest period between checks.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Runs a registry's checks every `interval`, keeps the last report and calls a callback with
/// each one. Stops on [`stop`](Self::stop) or when dropped.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use resilience::health::{HealthMonitor, HealthRegistry, HealthStatus};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let monitor = HealthMonitor::new(Arc::new(HealthRegistry::new()), Duration::from_secs(30))
///     .unwrap()
///     .on_check(|report| if report.status != HealthStatus::Healthy { eprintln!("{report:?}") });
/// monitor.start().unwrap();
/// assert!(monitor.is_running());
/// assert_eq!(monitor.check_now().await.status, HealthStatus::Healthy);
/// monitor.stop();
/// # }
/// ```
pub struct HealthMonitor {
    shared: Arc<Shared>,
    running: Mutex<Option<CancellationToken>>,
}

struct Shared {
    registry: Arc<HealthRegistry>,
    interval: Duration,
    last: ArcSwapOption<HealthReport>,
    callback: ArcSwapOption<Callback>,
}

impl Shared {
    async fn run_once(&self) -> Arc<HealthReport> {
        let report = Arc::new(self.registry.check().await);
        self.last.store(Some(report.clone()));
        if let Some(callback) = self.callback.load().as_deref() {
            // A panicking callback must not kill the monitor's task (it would then claim to be
            // running while checking nothing).
            if catch_unwind(AssertUnwindSafe(|| callback(&report))).is_err() {
                tracing::error!("health monitor callback panicked; the monitor keeps running");
            }
        }
        report
    }
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("interval", &self.shared.interval)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

/// Starting a monitor failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the health monitor needs a running tokio runtime")]
pub struct NoRuntime;

impl HealthMonitor {
    /// A stopped monitor of `registry`; `interval` must be at least 1 ms (tokio's timer
    /// resolution). `Duration::MAX` checks once at start and then, in practice, never again.
    pub fn new(registry: Arc<HealthRegistry>, interval: Duration) -> Result<Self, ConfigError> {
        if interval < MIN_INTERVAL {
            // Below the timer's resolution the loop would run checks back to back.
            return Err(ConfigError::new(
                "interval",
                "must be at least 1 ms (the timer's resolution)",
            ));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                registry,
                interval,
                last: ArcSwapOption::empty(),
                callback: ArcSwapOption::empty(),
            }),
            running: Mutex::new(None),
        })
    }

    /// Calls `callback` with every report (periodic ones and [`check_now`](Self::check_now)'s).
    /// Replaces any previous callback. A panic in it is logged; the monitor keeps running.
    pub fn on_check(self, callback: impl Fn(&HealthReport) + Send + Sync + 'static) -> Self {
        self.shared
            .callback
            .store(Some(Arc::new(Box::new(callback))));
        self
    }

    /// The monitored registry.
    pub fn registry(&self) -> &Arc<HealthRegistry> {
        &self.shared.registry
    }

    /// Starts checking now and every interval after; a no-op when already running.
    pub fn start(&self) -> Result<(), NoRuntime> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| NoRuntime)?;
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.as_ref().is_some_and(|t| !t.is_cancelled()) {
            return Ok(());
        }
        let token = CancellationToken::new();
        let stop = token.clone();
        let shared = self.shared.clone();
        handle.spawn(async move {
            let mut ticks = tokio::time::interval(shared.interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = shared.run_once() => {}
                }
            }
        });
        *running = Some(token);
        Ok(())
    }

    /// Stops the periodic checks (a check under way is dropped).
    pub fn stop(&self) {
        if let Some(token) = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            token.cancel();
        }
    }

    /// Whether periodic checks are running.
    pub fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|t| !t.is_cancelled())
    }

    /// The latest report, if any check has completed.
    pub fn last(&self) -> Option<Arc<HealthReport>> {
        self.shared.last.load_full()
    }

    /// Runs the checks now, stores the report as the latest and calls the callback.
    pub async fn check_now(&self) -> Arc<HealthReport> {
        self.shared.run_once().await
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        self.stop();
    }
}
