//! The `HealthCheck` trait, what a check returns, and closures as checks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// The health of one check or of a whole registry, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthStatus {
    /// Working and fast.
    Healthy,
    /// Working, but slow or with an optional dependency down.
    Degraded,
    /// Not working: a required check failed, timed out or was too slow.
    Unhealthy,
}

impl HealthStatus {
    /// `"healthy"`, `"degraded"` or `"unhealthy"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run of a check found: a status and an optional message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// The check's own verdict (latency may still degrade it).
    pub status: HealthStatus,
    /// Why, when not healthy (an error message, "breaker open", ...).
    pub message: Option<String>,
}

impl CheckOutcome {
    /// Healthy, no message.
    pub fn healthy() -> Self {
        Self {
            status: HealthStatus::Healthy,
            message: None,
        }
    }

    /// Degraded, with the reason.
    pub fn degraded(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Degraded,
            message: Some(message.into()),
        }
    }

    /// Unhealthy, with the reason.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Unhealthy,
            message: Some(message.into()),
        }
    }
}

/// Values a check closure may return: `()` (healthy), `bool`, `Result<T, E: Display>` (an error
/// is unhealthy with its message), a [`HealthStatus`] or a [`CheckOutcome`].
pub trait IntoCheckOutcome {
    /// The outcome this value stands for.
    fn into_check_outcome(self) -> CheckOutcome;
}

impl IntoCheckOutcome for CheckOutcome {
    fn into_check_outcome(self) -> CheckOutcome {
        self
    }
}

impl IntoCheckOutcome for () {
    fn into_check_outcome(self) -> CheckOutcome {
        CheckOutcome::healthy()
    }
}

impl IntoCheckOutcome for bool {
    fn into_check_outcome(self) -> CheckOutcome {
        if self {
            CheckOutcome::healthy()
        } else {
            CheckOutcome::unhealthy("check returned false")
        }
    }
}

impl IntoCheckOutcome for HealthStatus {
    fn into_check_outcome(self) -> CheckOutcome {
        CheckOutcome {
            status: self,
            message: None,
        }
    }
}

impl<T, E: fmt::Display> IntoCheckOutcome for Result<T, E> {
    fn into_check_outcome(self) -> CheckOutcome {
        match self {
            Ok(_) => CheckOutcome::healthy(),
            Err(e) => CheckOutcome::unhealthy(e.to_string()),
        }
    }
}

/// A probe of one dependency. Implement it with `async fn check(&self) -> CheckOutcome`, or use
/// [`check_fn`] for a closure.
///
/// The registry measures each run's latency, cuts it at its timeout and turns slowness into
/// degraded / unhealthy, so a check only says whether the dependency works.
pub trait HealthCheck: Send + Sync + 'static {
    /// The check's name, unique within a registry (`"redis"`, `"database"`, ...).
    fn name(&self) -> &str;

    /// Probes the dependency once.
    fn check(&self) -> impl Future<Output = CheckOutcome> + Send;

    /// Whether a failure makes the service unhealthy (the default) or only degraded; used by
    /// [`HealthRegistry::add`](super::HealthRegistry::add).
    fn requirement(&self) -> super::Requirement {
        super::Requirement::Required
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe face of [`HealthCheck`], so a registry can hold any mix of checks.
pub(crate) trait DynHealthCheck: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn check_boxed(&self) -> BoxFuture<'_, CheckOutcome>;
}

impl<C: HealthCheck> DynHealthCheck for C {
    fn name(&self) -> &str {
        HealthCheck::name(self)
    }

    fn check_boxed(&self) -> BoxFuture<'_, CheckOutcome> {
        Box::pin(self.check())
    }
}

/// A check from a name and a closure returning a future of anything [`IntoCheckOutcome`].
///
/// ```
/// use resilience::health::{check_fn, HealthRegistry, HealthStatus};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let registry = HealthRegistry::new();
/// registry.required(check_fn("always-up", || async { Ok::<_, std::io::Error>(()) }));
/// assert_eq!(registry.check().await.status, HealthStatus::Healthy);
/// # }
/// ```
pub fn check_fn<F, Fut, R>(name: impl Into<String>, f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
    R: IntoCheckOutcome,
{
    FnCheck {
        name: name.into(),
        f,
    }
}

/// A [`HealthCheck`] made by [`check_fn`].
pub struct FnCheck<F> {
    name: String,
    f: F,
}

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCheck").field("name", &self.name).finish()
    }
}

impl<F, Fut, R> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
    R: IntoCheckOutcome,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> CheckOutcome {
        (self.f)().await.into_check_outcome()
    }
}
