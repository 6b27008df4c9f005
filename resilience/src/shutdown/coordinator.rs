//! The coordinator: readiness, drain, then hook tiers highest first.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::{TaskTrackerToken, TrackedFuture};

use super::hook::{Hook, IntoHookResult, StaticShutdownHook};
use super::{
    HookReport, HookStatus, Priority, ShutdownConfig, ShutdownError, ShutdownOutcome,
    ShutdownReport,
};
use crate::ConfigError;
use crate::timeout::{deadline_after, run_until, sleep_until};

/// Runs a graceful shutdown: turns readiness off, waits `drain_delay`, fires the cancellation
/// token, waits for in-flight work, then runs the hooks by priority tier (highest first, hooks of
/// one tier concurrently), each under its timeout and all under the total timeout.
///
/// Cheap to clone (one `Arc`). [`ShutdownCoordinator::global`] is the process-wide one that the
/// free functions of [`crate::shutdown`] use and that includes `#[shutdown_hook]` functions;
/// [`ShutdownCoordinator::new`] makes an independent one (for tests, or several in one process).
///
/// ```
/// use resilience::shutdown::{Priority, ShutdownCoordinator, ShutdownOutcome};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let coordinator = ShutdownCoordinator::new();
/// coordinator.register("close-db", Priority::HIGH, || async { Ok::<_, std::io::Error>(()) }).unwrap();
/// assert!(coordinator.should_accept_requests());
/// let report = coordinator.shutdown().await;
/// assert_eq!(report.outcome, ShutdownOutcome::Success);
/// assert!(!coordinator.should_accept_requests());
/// assert!(coordinator.register("late", Priority::LOW, || async {}).is_err());
/// # }
/// ```
#[derive(Clone)]
pub struct ShutdownCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    config: Mutex<ShutdownConfig>,
    /// `None` once shutdown has begun: registration then fails.
    hooks: Mutex<Option<Vec<Hook>>>,
    accepting: AtomicBool,
    /// Fires when shutdown begins (readiness off).
    started: CancellationToken,
    /// Fires after the drain delay: servers stop accepting, tasks wind down.
    token: CancellationToken,
    tracker: TaskTracker,
    report: watch::Sender<Option<ShutdownReport>>,
    include_static: bool,
    signals_installed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (plain pushes and takes).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for ShutdownCoordinator {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ShutdownCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownCoordinator")
            .field("accepting", &self.should_accept_requests())
            .field("in_flight", &self.in_flight_count())
            .finish_non_exhaustive()
    }
}

impl ShutdownCoordinator {
    /// A coordinator with the default configuration that runs only the hooks registered on it.
    pub fn new() -> Self {
        Self::with_config(ShutdownConfig::default())
    }

    /// A coordinator with `config` that runs only the hooks registered on it.
    pub fn with_config(config: ShutdownConfig) -> Self {
        Self::build(config, false)
    }

    pub(super) fn build(config: ShutdownConfig, include_static: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: Mutex::new(config),
                hooks: Mutex::new(Some(Vec::new())),
                accepting: AtomicBool::new(true),
                started: CancellationToken::new(),
                token: CancellationToken::new(),
                tracker: TaskTracker::new(),
                report: watch::channel(None).0,
                include_static,
                signals_installed: AtomicBool::new(false),
            }),
        }
    }

    /// The process-wide coordinator; it also runs every `#[shutdown_hook]` function.
    pub fn global() -> &'static ShutdownCoordinator {
        &super::GLOBAL
    }

    /// Replaces the configuration; fails once shutdown has begun.
    pub fn configure(&self, config: ShutdownConfig) -> Result<(), ShutdownError> {
        let hooks = lock(&self.inner.hooks);
        if hooks.is_none() {
            return Err(ShutdownError::AlreadyStarted);
        }
        *lock(&self.inner.config) = config;
        Ok(())
    }

    /// The current configuration.
    pub fn config(&self) -> ShutdownConfig {
        lock(&self.inner.config).clone()
    }

    /// Registers a hook run at shutdown under the default per-hook timeout.
    ///
    /// `f` returns a future whose output is `()` or `Result<(), E>`; an error or a panic is
    /// reported and makes the outcome a failure, without stopping the other hooks. Fails with
    /// [`ShutdownError::AlreadyStarted`] once shutdown has begun.
    pub fn register<F, Fut, R>(
        &self,
        name: impl Into<String>,
        priority: impl Into<Priority>,
        f: F,
    ) -> Result<(), ShutdownError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoHookResult,
    {
        self.push(Hook::new(name.into(), priority.into(), None, f))
    }

    /// Like [`register`](Self::register), with this hook's own timeout: greater than zero (like
    /// the configuration's `hook_timeout`; [`ShutdownError::InvalidConfig`] otherwise), and
    /// `Duration::MAX` for none.
    pub fn register_with_timeout<F, Fut, R>(
        &self,
        name: impl Into<String>,
        priority: impl Into<Priority>,
        timeout: Duration,
        f: F,
    ) -> Result<(), ShutdownError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoHookResult,
    {
        if timeout.is_zero() {
            // A zero timeout would cut the hook before it ever ran.
            return Err(ShutdownError::InvalidConfig(ConfigError::new(
                "timeout",
                "must be greater than zero",
            )));
        }
        self.push(Hook::new(name.into(), priority.into(), Some(timeout), f))
    }

    fn push(&self, hook: Hook) -> Result<(), ShutdownError> {
        match lock(&self.inner.hooks).as_mut() {
            Some(hooks) => {
                hooks.push(hook);
                Ok(())
            }
            None => Err(ShutdownError::AlreadyStarted),
        }
    }

    /// `true` until shutdown begins; readiness endpoints answer 503 after that. One atomic load.
    pub fn should_accept_requests(&self) -> bool {
        self.inner.accepting.load(Ordering::Acquire)
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        !self.should_accept_requests()
    }

    /// Whether shutdown has finished (a report is available).
    pub fn is_finished(&self) -> bool {
        self.inner.report.borrow().is_some()
    }

    /// A token cancelled when tasks should stop: after the drain delay once shutdown begins.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.inner.token.clone()
    }

    /// Resolves as soon as shutdown begins (before the drain delay).
    pub fn started(&self) -> WaitForCancellationFutureOwned {
        self.inner.started.clone().cancelled_owned()
    }

    /// A future for `axum::serve(..).with_graceful_shutdown(..)` (or any server's close signal):
    /// resolves when the server should stop accepting connections, i.e. after the drain delay.
    ///
    /// Register the server's join handle as a [`Priority::CRITICAL`] hook (see
    /// [`server_close_hook`](super::server_close_hook)) so the hooks run after it has closed.
    pub fn server_close_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.token.clone().cancelled_owned()
    }

    /// Marks one unit of in-flight work until the guard drops; shutdown waits for all of them
    /// (bounded by the drain timeout) before it runs the hooks.
    pub fn in_flight(&self) -> InFlightGuard {
        InFlightGuard {
            _token: self.inner.tracker.token(),
        }
    }

    /// Tracks `future` as in-flight work while it is alive.
    pub fn track<F: Future>(&self, future: F) -> TrackedFuture<F> {
        self.inner.tracker.track_future(future)
    }

    /// Spawns `future` on the current tokio runtime, tracked as in-flight work.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.tracker.spawn(future)
    }

    /// The number of in-flight guards, tracked futures and tasks alive now.
    pub fn in_flight_count(&self) -> usize {
        self.inner.tracker.len()
    }

    /// The report, once shutdown has finished.
    pub fn report(&self) -> Option<ShutdownReport> {
        self.inner.report.borrow().clone()
    }

    pub(super) fn signals_installed(&self) -> &AtomicBool {
        &self.inner.signals_installed
    }

    /// Begins shutdown, if it has not begun, and waits for it to finish.
    ///
    /// Every caller gets the same report. The work runs on a spawned task when a tokio runtime is
    /// available, so dropping this future does not abandon the shutdown.
    pub async fn shutdown(&self) -> ShutdownReport {
        if let Some(hooks) = self.begin_hooks() {
            let this = self.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(async move { this.run(hooks).await });
                }
                Err(_) => this.run(hooks).await,
            }
        }
        self.wait().await
    }

    /// Waits for a shutdown begun elsewhere (a signal, another task) to finish.
    pub async fn wait(&self) -> ShutdownReport {
        let mut rx = self.inner.report.subscribe();
        loop {
            if let Some(report) = rx.borrow_and_update().clone() {
                return report;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `inner`, which `self` keeps alive: unreachable in practice.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Flips readiness and takes the hooks; `None` when shutdown had already begun.
    fn begin_hooks(&self) -> Option<Vec<Hook>> {
        let hooks = lock(&self.inner.hooks).take()?;
        self.inner.accepting.store(false, Ordering::Release);
        self.inner.started.cancel();
        Some(hooks)
    }

    async fn run(self, mut hooks: Vec<Hook>) {
        let config = self.config();
        let start = Instant::now();
        // Whatever ends this task (a panic, its runtime dropping it), waiters get a report.
        let _fallback = FallbackReport {
            inner: &self.inner,
            start,
        };
        if self.inner.include_static {
            hooks.extend(
                inventory::iter::<StaticShutdownHook>
                    .into_iter()
                    .map(Hook::from_static),
            );
        }
        // Counted after the `#[shutdown_hook]` functions joined the registered hooks.
        tracing::info!(hooks = hooks.len(), "shutdown started");
        // `None`: a timeout too long to be a deadline (`Duration::MAX`) means no deadline.
        let deadline = deadline_after(start, config.total_timeout);

        // Keep serving during the drain delay so load balancers see readiness turn off first.
        sleep_until(earliest(
            deadline,
            deadline_after(start, config.drain_delay),
        ))
        .await;
        self.inner.token.cancel();

        self.inner.tracker.close();
        let drain_deadline = earliest(
            deadline,
            deadline_after(Instant::now(), config.drain_timeout),
        );
        let drained = run_until(drain_deadline, self.inner.tracker.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                in_flight = self.inner.tracker.len(),
                "in-flight work did not drain in time"
            );
        }

        // Stable sort: equal priorities keep registration order in the report.
        hooks.sort_by_key(|h| std::cmp::Reverse(h.priority));
        let mut reports = Vec::with_capacity(hooks.len());
        let mut total_expired = deadline.is_some_and(|d| Instant::now() >= d);
        let mut iter = hooks.into_iter().peekable();
        while let Some(first) = iter.next() {
            let priority = first.priority;
            let mut tier = vec![first];
            while let Some(hook) = iter.next_if(|h| h.priority == priority) {
                tier.push(hook);
            }
            if total_expired {
                reports.extend(tier.into_iter().map(|h| abandoned(h, Duration::ZERO)));
                continue;
            }
            total_expired = run_tier(tier, &config, deadline, &mut reports).await;
        }

        let outcome = if total_expired {
            ShutdownOutcome::TimedOut
        } else if reports.iter().any(|r| match r.status {
            HookStatus::Failed(_) | HookStatus::Panicked(_) => true,
            HookStatus::TimedOut(_) => config.hook_timeout_is_failure,
            HookStatus::Completed | HookStatus::Abandoned => false,
        }) {
            ShutdownOutcome::Failure
        } else {
            ShutdownOutcome::Success
        };
        let report = ShutdownReport {
            outcome,
            hooks: reports,
            drained,
            elapsed: start.elapsed(),
        };
        tracing::info!(
            ?outcome,
            exit_code = outcome.exit_code(),
            elapsed = ?report.elapsed,
            "shutdown finished"
        );
        self.inner.report.send_replace(Some(report));
    }
}

/// The earlier of two optional deadlines, `None` meaning never.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Publishes a failure report when the shutdown task ends without having published one (it
/// panicked, or the runtime dropped it), so `shutdown()` and `wait()` never hang on it.
struct FallbackReport<'a> {
    inner: &'a Inner,
    start: Instant,
}

impl Drop for FallbackReport<'_> {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        self.inner.report.send_if_modified(|report| {
            if report.is_some() {
                return false;
            }
            tracing::error!(
                ?elapsed,
                "shutdown task ended before its report (panic or runtime shutdown)"
            );
            *report = Some(ShutdownReport {
                outcome: ShutdownOutcome::Failure,
                hooks: Vec::new(),
                drained: false,
                elapsed,
            });
            true
        });
    }
}

fn abandoned(hook: Hook, elapsed: Duration) -> HookReport {
    HookReport {
        name: hook.name,
        priority: hook.priority,
        status: HookStatus::Abandoned,
        elapsed,
    }
}

/// A hook of a running tier: name, priority and, once it ends, its status and run time.
type Slot = (String, Priority, Option<(HookStatus, Duration)>);

/// Runs one tier concurrently; returns whether the total deadline expired.
async fn run_tier(
    tier: Vec<Hook>,
    config: &ShutdownConfig,
    deadline: Option<Instant>,
    reports: &mut Vec<HookReport>,
) -> bool {
    let tier_start = Instant::now();
    let mut slots: Vec<Slot> = Vec::new();
    let mut aborts = Vec::with_capacity(tier.len());
    let mut running = FuturesUnordered::new();
    for (index, hook) in tier.into_iter().enumerate() {
        let per_hook = hook.timeout.unwrap_or(config.hook_timeout);
        let run = hook.run;
        // The factory runs inside the task too, so a panic there is caught like any other.
        let handle = tokio::spawn(async move { run().await });
        aborts.push(handle.abort_handle());
        slots.push((hook.name, hook.priority, None));
        running.push(async move {
            let started = Instant::now();
            let status = match run_until(deadline_after(started, per_hook), handle).await {
                Ok(Ok(Ok(()))) => HookStatus::Completed,
                Ok(Ok(Err(e))) => HookStatus::Failed(e.to_string()),
                Ok(Err(join)) if join.is_panic() => {
                    HookStatus::Panicked(panic_message(join.into_panic()))
                }
                Ok(Err(_)) => HookStatus::Failed("task cancelled".to_owned()),
                Err(_) => HookStatus::TimedOut(per_hook),
            };
            (index, status, started.elapsed())
        });
    }

    let mut expired = false;
    loop {
        match run_until(deadline, running.next()).await {
            Ok(Some((index, status, elapsed))) => {
                if matches!(status, HookStatus::TimedOut(_)) {
                    aborts[index].abort();
                }
                log_hook(&slots[index].0, &status, elapsed);
                slots[index].2 = Some((status, elapsed));
            }
            Ok(None) => break,
            Err(_) => {
                expired = true;
                aborts.iter().for_each(|a| a.abort());
                break;
            }
        }
    }
    let cut_at = tier_start.elapsed();
    for (name, priority, result) in slots {
        let (status, elapsed) = result.unwrap_or_else(|| {
            tracing::warn!(hook = %name, "shutdown hook abandoned at the total timeout");
            (HookStatus::Abandoned, cut_at)
        });
        reports.push(HookReport {
            name,
            priority,
            status,
            elapsed,
        });
    }
    expired
}

fn log_hook(name: &str, status: &HookStatus, elapsed: Duration) {
    if status.is_completed() {
        tracing::info!(hook = %name, ?elapsed, "shutdown hook completed");
    } else {
        tracing::warn!(hook = %name, ?elapsed, %status, "shutdown hook did not complete");
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "non-string panic payload".to_owned(),
        },
    }
}

/// One unit of in-flight work; shutdown waits for it to drop (see
/// [`ShutdownCoordinator::in_flight`]).
#[derive(Debug)]
#[must_use = "the work counts as in flight only while the guard is alive"]
pub struct InFlightGuard {
    _token: TaskTrackerToken,
}
