//! A health check on a queue's backlog and on the age of its oldest waiting job.

use std::time::Duration;

use super::queue::Queue;
use crate::health::{CheckOutcome, HealthCheck, Requirement};

/// Thresholds for [`JobQueueHealth`]: a backlog or an oldest waiting job past the `degraded`
/// values makes the check degraded, past the `unhealthy` values unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogThresholds {
    /// Waiting jobs from which the queue is degraded (default 1 000).
    pub degraded_backlog: u64,
    /// Waiting jobs from which the queue is unhealthy (default 10 000).
    pub unhealthy_backlog: u64,
    /// Age of the oldest waiting job from which the queue is degraded (default 1 min).
    pub degraded_age: Duration,
    /// Age of the oldest waiting job from which the queue is unhealthy (default 5 min).
    pub unhealthy_age: Duration,
}

impl Default for BacklogThresholds {
    fn default() -> Self {
        Self {
            degraded_backlog: 1_000,
            unhealthy_backlog: 10_000,
            degraded_age: Duration::from_secs(60),
            unhealthy_age: Duration::from_secs(300),
        }
    }
}

/// A [`HealthCheck`] named `jobs:<queue>`: reads the counts (setting the `job_queue_jobs`
/// gauges) and the oldest waiting job's age, and compares them with [`BacklogThresholds`]. A
/// backend that cannot be read is unhealthy; a queue on the in-memory fallback is degraded.
///
/// ```
/// use resilience::health::{HealthRegistry, HealthStatus};
/// use resilience::jobs::{JobQueueHealth, MemoryBroker, Queue};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let queue = Queue::in_memory("emails", &MemoryBroker::new()).unwrap();
/// let registry = HealthRegistry::new();
/// registry.add(JobQueueHealth::new(&queue));
/// assert_eq!(registry.check().await.status, HealthStatus::Healthy);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct JobQueueHealth {
    name: String,
    queue: Queue,
    thresholds: BacklogThresholds,
    requirement: Requirement,
}

impl JobQueueHealth {
    /// A check on `queue` with the default thresholds, required.
    pub fn new(queue: &Queue) -> Self {
        Self {
            name: format!("jobs:{}", queue.name()),
            queue: queue.clone(),
            thresholds: BacklogThresholds::default(),
            requirement: Requirement::Required,
        }
    }

    /// Other thresholds.
    pub fn thresholds(mut self, thresholds: BacklogThresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Whether a failure makes the service unhealthy or only degraded.
    pub fn requirement(mut self, requirement: Requirement) -> Self {
        self.requirement = requirement;
        self
    }
}

impl HealthCheck for JobQueueHealth {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> CheckOutcome {
        let counts = match self.queue.record_counts().await {
            Ok(c) => c,
            Err(e) => return CheckOutcome::unhealthy(e.to_string()),
        };
        let age = match self.queue.oldest_waiting_age().await {
            Ok(a) => a.unwrap_or_default(),
            Err(e) => return CheckOutcome::unhealthy(e.to_string()),
        };
        let t = &self.thresholds;
        let summary = format!("{} waiting, oldest {:?}", counts.waiting, age);
        if counts.waiting >= t.unhealthy_backlog || age >= t.unhealthy_age {
            CheckOutcome::unhealthy(summary)
        } else if counts.waiting >= t.degraded_backlog || age >= t.degraded_age {
            CheckOutcome::degraded(summary)
        } else if self.queue.backend_kind() == super::BackendKind::MemoryFallback {
            CheckOutcome::degraded("Redis unreachable: jobs are held in process memory")
        } else {
            CheckOutcome::healthy()
        }
    }

    fn requirement(&self) -> Requirement {
        self.requirement
    }
}
