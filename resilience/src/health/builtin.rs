//! Built-in checks for the toolkit's own parts.

use crate::shutdown::ShutdownCoordinator;

use super::{CheckOutcome, HealthCheck};

/// Unhealthy once shutdown has begun, so readiness turns off with it. Name: `"shutdown"`.
#[derive(Debug, Clone)]
pub struct ShutdownCheck {
    coordinator: ShutdownCoordinator,
}

impl ShutdownCheck {
    /// Watches `coordinator`.
    pub fn new(coordinator: ShutdownCoordinator) -> Self {
        Self { coordinator }
    }

    /// Watches the global coordinator.
    pub fn global() -> Self {
        Self::new(ShutdownCoordinator::global().clone())
    }
}

impl HealthCheck for ShutdownCheck {
    fn name(&self) -> &str {
        "shutdown"
    }

    async fn check(&self) -> CheckOutcome {
        if self.coordinator.should_accept_requests() {
            CheckOutcome::healthy()
        } else {
            CheckOutcome::unhealthy("shutting down")
        }
    }
}
