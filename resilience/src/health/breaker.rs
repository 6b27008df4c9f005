//! Circuit breakers as a health check: an open breaker degrades.

use std::sync::Arc;

use crate::circuit_breaker::{BreakerRegistry, CircuitBreaker, CircuitState};

use super::{CheckOutcome, HealthCheck, Requirement};

enum Source {
    One(Arc<CircuitBreaker>),
    Registry(&'static BreakerRegistry),
}

/// Degraded while a watched breaker is open, forced open or half-open (recovering); healthy
/// otherwise. Optional by default ([`HealthRegistry::add`](super::HealthRegistry::add)): register
/// it with `required` only if an open breaker should take the service out of rotation.
pub struct BreakerCheck {
    name: String,
    source: Source,
}

impl std::fmt::Debug for BreakerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerCheck")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl BreakerCheck {
    /// Watches one breaker; the check is named `circuit_breaker:<breaker name>`.
    pub fn new(breaker: Arc<CircuitBreaker>) -> Self {
        Self {
            name: format!("circuit_breaker:{}", breaker.name()),
            source: Source::One(breaker),
        }
    }

    /// Watches every breaker of `registry` (including ones created later); named
    /// `circuit_breakers`.
    pub fn registry(registry: &'static BreakerRegistry) -> Self {
        Self {
            name: "circuit_breakers".to_owned(),
            source: Source::Registry(registry),
        }
    }

    /// Watches every breaker of the global registry.
    pub fn global() -> Self {
        Self::registry(BreakerRegistry::global())
    }
}

fn unavailable(state: CircuitState) -> bool {
    matches!(
        state,
        CircuitState::Open | CircuitState::ForcedOpen | CircuitState::HalfOpen
    )
}

impl HealthCheck for BreakerCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn requirement(&self) -> Requirement {
        Requirement::Optional
    }

    async fn check(&self) -> CheckOutcome {
        let not_closed: Vec<String> = match &self.source {
            Source::One(breaker) => {
                let state = breaker.state();
                if unavailable(state) {
                    vec![format!("{} {state}", breaker.name())]
                } else {
                    Vec::new()
                }
            }
            Source::Registry(registry) => registry
                .snapshots()
                .into_iter()
                .filter(|s| unavailable(s.state))
                .map(|s| format!("{} {}", s.name, s.state))
                .collect(),
        };
        if not_closed.is_empty() {
            CheckOutcome::healthy()
        } else {
            CheckOutcome::degraded(not_closed.join(", "))
        }
    }
}
