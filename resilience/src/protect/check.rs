//! The health check a protected dependency registers: its probe and its breaker's state.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::circuit_breaker::{CircuitBreaker, CircuitState};
use crate::health::{CheckOutcome, HealthCheck, HealthStatus, Requirement};

/// A probe with the client already bound: one boxed future per health run (not a hot path).
pub(crate) type Probe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = CheckOutcome> + Send>> + Send + Sync>;

/// The check [`protect`](super::protect) registers under the dependency's name. The probe runs
/// beside the breaker, never through it (a health run neither trips nor closes it), and the
/// breaker's state is folded in:
///
/// | breaker                                | probe fails | probe passes | no probe  |
/// |----------------------------------------|-------------|--------------|-----------|
/// | closed, disabled                       | unhealthy   | healthy      | healthy   |
/// | half-open, or open past its reset time | unhealthy   | degraded     | degraded  |
/// | open, forced open                      | unhealthy   | degraded     | unhealthy |
///
/// So an open breaker takes a required dependency's service out of rotation only while nothing
/// says the dependency is back: a passing probe, or the reset timeout running out (which lets
/// the next call try it), makes it degraded — still ready.
pub struct DependencyCheck {
    name: Arc<str>,
    breaker: Arc<CircuitBreaker>,
    probe: Option<Probe>,
    requirement: Requirement,
}

impl DependencyCheck {
    pub(crate) fn new(
        name: Arc<str>,
        breaker: Arc<CircuitBreaker>,
        probe: Option<Probe>,
        requirement: Requirement,
    ) -> Self {
        Self {
            name,
            breaker,
            probe,
            requirement,
        }
    }
}

impl fmt::Debug for DependencyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DependencyCheck")
            .field("name", &self.name)
            .field("breaker", &self.breaker.name())
            .field("probe", &self.probe.is_some())
            .field("requirement", &self.requirement)
            .finish()
    }
}

/// Where the breaker stands, for the health report.
enum Breaker {
    Closed,
    Recovering,
    Open(Option<Duration>),
}

fn breaker_view(breaker: &CircuitBreaker) -> Breaker {
    match breaker.state() {
        CircuitState::Closed | CircuitState::Disabled => Breaker::Closed,
        CircuitState::HalfOpen => Breaker::Recovering,
        CircuitState::ForcedOpen => Breaker::Open(None),
        CircuitState::Open => match breaker.snapshot().retry_after {
            Some(d) if d.is_zero() => Breaker::Recovering,
            retry_after => Breaker::Open(retry_after),
        },
    }
}

impl HealthCheck for DependencyCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn requirement(&self) -> Requirement {
        self.requirement
    }

    async fn check(&self) -> CheckOutcome {
        let probe = match &self.probe {
            Some(probe) => Some(probe().await),
            None => None,
        };
        if let Some(p) = &probe
            && p.status == HealthStatus::Unhealthy
        {
            return p.clone();
        }
        let probe_ok = probe.is_some();
        match breaker_view(&self.breaker) {
            Breaker::Closed => probe.unwrap_or_else(CheckOutcome::healthy),
            Breaker::Recovering => CheckOutcome::degraded("circuit breaker half-open: recovering"),
            Breaker::Open(retry_after) => {
                let when = match retry_after {
                    Some(d) => format!("; trial call in {} ms", d.as_millis()),
                    None => " (forced)".to_owned(),
                };
                if probe_ok {
                    CheckOutcome::degraded(format!("circuit breaker open{when}; probe passes"))
                } else {
                    CheckOutcome::unhealthy(format!("circuit breaker open{when}"))
                }
            }
        }
    }
}
