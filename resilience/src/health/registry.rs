//! The registry: runs every check concurrently, each under a timeout, and aggregates.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use futures_util::future::join_all;
use tokio::time::Instant;

use super::check::DynHealthCheck;
use super::{CheckOutcome, HealthCheck, HealthStatus};
use crate::ConfigError;

/// Whether a failing check makes the whole service unhealthy or only degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Requirement {
    /// A failure makes the service unhealthy.
    Required,
    /// A failure only degrades the service.
    Optional,
}

/// Latency thresholds and the default per-check timeout of a [`HealthRegistry`].
///
/// Defaults: below 100 ms healthy, 100 ms to 500 ms degraded, above 500 ms unhealthy; a check is
/// cut after 2 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    degraded_after: Duration,
    unhealthy_after: Duration,
    check_timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            degraded_after: Duration::from_millis(100),
            unhealthy_after: Duration::from_millis(500),
            check_timeout: Duration::from_secs(2),
        }
    }
}

impl HealthConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> HealthConfigBuilder {
        HealthConfigBuilder(Self::default())
    }

    /// Latency from which a check counts as degraded (default 100 ms).
    pub fn degraded_after(&self) -> Duration {
        self.degraded_after
    }

    /// Latency above which a check counts as unhealthy (default 500 ms).
    pub fn unhealthy_after(&self) -> Duration {
        self.unhealthy_after
    }

    /// Default time after which a check is cut and reported unhealthy (default 2 s).
    pub fn check_timeout(&self) -> Duration {
        self.check_timeout
    }

    /// The status a successful check gets for taking `latency`.
    pub fn status_for_latency(&self, latency: Duration) -> HealthStatus {
        grade_latency(latency, self.degraded_after, self.unhealthy_after)
    }
}

/// The one latency rule of the crate's health checks: degraded from `degraded_after`, unhealthy
/// past `unhealthy_after`.
pub(crate) fn grade_latency(
    latency: Duration,
    degraded_after: Duration,
    unhealthy_after: Duration,
) -> HealthStatus {
    if latency > unhealthy_after {
        HealthStatus::Unhealthy
    } else if latency >= degraded_after {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    }
}

/// Builds a [`HealthConfig`]; [`build`](Self::build) rejects thresholds out of order and a zero
/// timeout.
#[derive(Debug, Clone, Copy)]
pub struct HealthConfigBuilder(HealthConfig);

impl HealthConfigBuilder {
    /// Latency from which a check counts as degraded.
    pub fn degraded_after(mut self, d: Duration) -> Self {
        self.0.degraded_after = d;
        self
    }

    /// Latency above which a check counts as unhealthy.
    pub fn unhealthy_after(mut self, d: Duration) -> Self {
        self.0.unhealthy_after = d;
        self
    }

    /// Default per-check timeout.
    pub fn check_timeout(mut self, d: Duration) -> Self {
        self.0.check_timeout = d;
        self
    }

    /// The validated configuration.
    pub fn build(self) -> Result<HealthConfig, ConfigError> {
        let c = self.0;
        if c.degraded_after.is_zero() {
            return Err(ConfigError::new(
                "degraded_after",
                "must be greater than zero",
            ));
        }
        if c.unhealthy_after < c.degraded_after {
            return Err(ConfigError::new(
                "unhealthy_after",
                "must not be below degraded_after",
            ));
        }
        if c.check_timeout.is_zero() {
            return Err(ConfigError::new(
                "check_timeout",
                "must be greater than zero",
            ));
        }
        Ok(c)
    }
}

/// One check's line in a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// Whether it was registered as required.
    pub required: bool,
    /// Its status: the worse of its own verdict and its latency's.
    pub status: HealthStatus,
    /// How long it took (its timeout when it was cut).
    pub latency: Duration,
    /// Why it is not healthy, when it is not, with credentials masked
    /// ([`redact_secrets`](super::redact_secrets)).
    pub message: Option<String>,
    /// Whether it was cut at its timeout.
    pub timed_out: bool,
}

/// The result of running every check of a registry once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Healthy when every check is; unhealthy when a required one is; degraded otherwise.
    pub status: HealthStatus,
    /// Each check's result, in registration order.
    pub checks: Vec<CheckReport>,
    /// Wall time of the whole run (checks run concurrently).
    pub duration: Duration,
    /// When the run started.
    pub timestamp: SystemTime,
}

impl HealthReport {
    /// The result of the check named `name`.
    pub fn check(&self, name: &str) -> Option<&CheckReport> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Whether the service should receive traffic: not unhealthy.
    pub fn is_ready(&self) -> bool {
        self.status != HealthStatus::Unhealthy
    }
}

struct Entry {
    check: Arc<dyn DynHealthCheck>,
    requirement: Requirement,
    timeout: Option<Duration>,
}

/// A set of named checks, run concurrently by [`check`](Self::check) and aggregated: a failing
/// (or too slow) required check makes the report unhealthy, an optional one only degrades it.
///
/// Registering a check under a name already present replaces the old one.
pub struct HealthRegistry {
    config: HealthConfig,
    entries: RwLock<Vec<Entry>>,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("config", &self.config)
            .field("checks", &self.names())
            .finish()
    }
}

static GLOBAL: LazyLock<Arc<HealthRegistry>> = LazyLock::new(|| Arc::new(HealthRegistry::new()));

impl HealthRegistry {
    /// The process-wide registry, with the default thresholds: where
    /// [`protect`](crate::protect::protect) registers dependencies unless told otherwise. Serve
    /// it by cloning the `Arc` (e.g. into the router's `ServiceEndpoints::new`).
    ///
    /// ```
    /// use resilience::health::{HealthRegistry, HealthStatus, check_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// HealthRegistry::global().optional(check_fn("cache-docs", || async { true }));
    /// let report = HealthRegistry::global().check().await;
    /// assert_eq!(report.check("cache-docs").unwrap().status, HealthStatus::Healthy);
    /// # }
    /// ```
    pub fn global() -> &'static Arc<HealthRegistry> {
        &GLOBAL
    }

    /// An empty registry with the default thresholds.
    pub fn new() -> Self {
        Self::with_config(HealthConfig::default())
    }

    /// An empty registry with `config`.
    pub fn with_config(config: HealthConfig) -> Self {
        Self {
            config,
            entries: RwLock::new(Vec::new()),
        }
    }

    /// The thresholds in use.
    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Adds a check as its [`HealthCheck::requirement`] says (required unless it says otherwise).
    pub fn add(&self, check: impl HealthCheck) -> &Self {
        let requirement = check.requirement();
        self.register(check, requirement, None)
    }

    /// Adds a check whose failure makes the service unhealthy.
    pub fn required(&self, check: impl HealthCheck) -> &Self {
        self.register(check, Requirement::Required, None)
    }

    /// Adds a check whose failure only degrades the service.
    pub fn optional(&self, check: impl HealthCheck) -> &Self {
        self.register(check, Requirement::Optional, None)
    }

    /// Adds a check; `timeout` overrides the registry's default per-check timeout.
    pub fn register(
        &self,
        check: impl HealthCheck,
        requirement: Requirement,
        timeout: Option<Duration>,
    ) -> &Self {
        let entry = Entry {
            check: Arc::new(check),
            requirement,
            timeout,
        };
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        match entries
            .iter_mut()
            .find(|e| e.check.name() == entry.check.name())
        {
            Some(existing) => *existing = entry,
            None => entries.push(entry),
        }
        self
    }

    /// Removes the check named `name`; returns whether there was one.
    pub fn remove(&self, name: &str) -> bool {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let before = entries.len();
        entries.retain(|e| e.check.name() != name);
        entries.len() != before
    }

    /// The names of the registered checks, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|e| e.check.name().to_owned())
            .collect()
    }

    /// Runs every check concurrently, each cut at its timeout, and aggregates the results.
    /// A check that panics is reported unhealthy.
    pub async fn check(&self) -> HealthReport {
        let snapshot: Vec<(Arc<dyn DynHealthCheck>, Requirement, Duration)> = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|e| {
                (
                    e.check.clone(),
                    e.requirement,
                    e.timeout.unwrap_or(self.config.check_timeout),
                )
            })
            .collect();
        let timestamp = SystemTime::now();
        let started = Instant::now();
        let config = self.config;
        let checks = join_all(snapshot.into_iter().map(
            |(check, requirement, timeout)| async move {
                run_one(&*check, requirement, timeout, &config).await
            },
        ))
        .await;
        let status = aggregate(&checks);
        HealthReport {
            status,
            checks,
            duration: started.elapsed(),
            timestamp,
        }
    }
}

async fn run_one(
    check: &dyn DynHealthCheck,
    requirement: Requirement,
    timeout: Duration,
    config: &HealthConfig,
) -> CheckReport {
    let started = Instant::now();
    let run = AssertUnwindSafe(check.check_boxed()).catch_unwind();
    // The crate's deadline rule: a timeout too long to represent means none.
    let deadline = crate::timeout::deadline_after(started, timeout);
    let (outcome, timed_out) = match crate::timeout::run_until(deadline, run).await {
        Ok(Ok(outcome)) => (outcome, false),
        Ok(Err(_)) => (CheckOutcome::unhealthy("check panicked"), false),
        Err(_) => (
            CheckOutcome::unhealthy(format!("timed out after {timeout:?}")),
            true,
        ),
    };
    let latency = started.elapsed();
    let by_latency = config.status_for_latency(latency);
    let status = outcome.status.max(by_latency);
    let message = match outcome.message {
        // The one place messages enter a report: mask credentials here, so no reader of the
        // report (body, log, Debug) can leak them.
        Some(m) => Some(match super::redact_secrets(&m) {
            std::borrow::Cow::Borrowed(_) => m,
            std::borrow::Cow::Owned(masked) => masked,
        }),
        None if by_latency > HealthStatus::Healthy => Some(format!("slow: {latency:?}")),
        None => None,
    };
    CheckReport {
        name: check.name().to_owned(),
        required: requirement == Requirement::Required,
        status,
        latency,
        message,
        timed_out,
    }
}

/// Required checks count fully; optional ones at most degrade.
fn aggregate(checks: &[CheckReport]) -> HealthStatus {
    checks
        .iter()
        .map(|c| {
            if c.required {
                c.status
            } else {
                c.status.min(HealthStatus::Degraded)
            }
        })
        .max()
        .unwrap_or(HealthStatus::Healthy)
}
