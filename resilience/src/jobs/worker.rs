//! The consumer's face: a worker runs a queue's jobs through registered handlers.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::backend::{WorkerBackend, WorkerSettings};
use super::error::QueueError;
use super::handler::{Handler, dispatcher};
use super::queue::Queue;
use super::registry::registered_handlers;
use crate::ConfigError;
use crate::retry::{RetryPolicy, Retryable};
use crate::shutdown::{Priority, ShutdownCoordinator};

/// What a shutdown hook adds to the worker's close timeout, for letting go of the jobs still
/// running when that timeout ends.
const GIVE_UP_MARGIN: Duration = Duration::from_secs(2);

/// Builds a [`Worker`]; see [`Worker::builder`].
#[must_use = "a worker builder does nothing until `start` is called"]
pub struct WorkerBuilder {
    queue: Queue,
    handlers: Vec<Handler>,
    default_retry: RetryPolicy,
    settings: WorkerSettings,
    shutdown: Option<ShutdownCoordinator>,
    shutdown_priority: Priority,
    shutdown_timeout: Option<Duration>,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("queue", &self.queue)
            .field("handlers", &self.handlers.len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// Adds a handler (replacing one of the same name).
    pub fn handler(mut self, handler: Handler) -> Self {
        self.handlers.retain(|h| h.name != handler.name);
        self.handlers.push(handler);
        self
    }

    /// Adds a handler for jobs named `name`: `f` takes the payload.
    pub fn handle<T, R, E, F, Fut>(self, name: impl Into<String>, f: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        E: Retryable + fmt::Display + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        self.handler(Handler::new(name, f))
    }

    /// Adds every `#[job(queue = "...")]` handler declared for this worker's queue.
    pub fn registered(mut self) -> Self {
        for h in registered_handlers(&self.queue.name) {
            self = self.handler(h);
        }
        self
    }

    /// Jobs run at once by this worker (default 1, BullMQ's).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.settings.concurrency = n;
        self
    }

    /// Queue-wide rate limit: at most `max` jobs start per `per`, across every worker of the
    /// queue (BullMQ's limiter on Redis).
    pub fn rate_limit(mut self, max: u64, per: Duration) -> Self {
        self.settings.rate_limit = Some((max, per));
        self
    }

    /// The retry policy for handlers that have none (default: the `standard` preset).
    pub fn retry(mut self, policy: impl Into<RetryPolicy>) -> Self {
        self.default_retry = policy.into();
        self
    }

    /// How long a running job stays locked to this worker without a renewal (default 30 s;
    /// renewed at half of it while the job runs). After a crash, the job is taken over by
    /// another worker once this lapses.
    pub fn lock_duration(mut self, d: Duration) -> Self {
        self.settings.lock_duration = d;
        self
    }

    /// How often stalled jobs (whose worker died) are looked for (default 30 s).
    pub fn stalled_interval(mut self, d: Duration) -> Self {
        self.settings.stalled_interval = d;
        self
    }

    /// How often a job may stall before it fails rather than run again (default 1).
    pub fn max_stalled_count(mut self, n: u32) -> Self {
        self.settings.max_stalled_count = n;
        self
    }

    /// Registers the worker's close with `coordinator` instead of the global one.
    pub fn shutdown(mut self, coordinator: &ShutdownCoordinator) -> Self {
        self.shutdown = Some(coordinator.clone());
        self
    }

    /// The shutdown hook's priority (default high, 75: workers stop before the connections
    /// they use close).
    pub fn shutdown_priority(mut self, priority: impl Into<Priority>) -> Self {
        self.shutdown_priority = priority.into();
        self
    }

    /// How long in flight jobs get at shutdown (default: the coordinator's hook timeout).
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = Some(d);
        self
    }

    fn validate(&self) -> Result<(), QueueError> {
        if self.handlers.is_empty() {
            return Err(QueueError::NoHandler {
                queue: self.queue.name.to_string(),
            });
        }
        let s = &self.settings;
        if s.concurrency == 0 {
            return Err(ConfigError::new("concurrency", "must be at least 1").into());
        }
        if let Some((max, per)) = s.rate_limit
            && (max == 0 || per < Duration::from_millis(1))
        {
            return Err(ConfigError::new("rate_limit", "needs max ≥ 1 per ≥ 1 ms").into());
        }
        if s.lock_duration < Duration::from_millis(100) {
            return Err(ConfigError::new("lock_duration", "must be at least 100 ms").into());
        }
        if s.stalled_interval < Duration::from_millis(100) {
            return Err(ConfigError::new("stalled_interval", "must be at least 100 ms").into());
        }
        if self.shutdown_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new("shutdown_timeout", "must be greater than zero").into());
        }
        Ok(())
    }

    /// Starts the worker and registers its close as a shutdown hook.
    pub async fn start(self) -> Result<Worker, QueueError> {
        self.validate()?;
        let processor = dispatcher(&self.queue.name, self.handlers, self.default_retry);
        let backend = self.queue.backend.worker(processor, self.settings).await?;
        let worker = Worker {
            inner: Arc::new(WorkerInner {
                queue: self.queue.name.clone(),
                backend,
                closed: AtomicBool::new(false),
            }),
        };
        let coordinator = self
            .shutdown
            .unwrap_or_else(|| ShutdownCoordinator::global().clone());
        let timeout = self
            .shutdown_timeout
            .unwrap_or_else(|| coordinator.config().hook_timeout());
        let hook = worker.clone();
        // The hook outlives the close's own timeout by a margin: when in flight jobs run past
        // it, close still has to let them go (stop renewing their locks) — cut by the
        // coordinator at the same instant, it could leave them locked while the process lives.
        let registered = coordinator.register_with_timeout(
            format!("jobs:{}", self.queue.name),
            self.shutdown_priority,
            timeout.saturating_add(GIVE_UP_MARGIN),
            move || async move { hook.close(timeout).await },
        );
        if registered.is_err() {
            // Shutdown already began: a worker started now must not run.
            let _ = worker.close(Duration::from_millis(1)).await;
            return Err(QueueError::Closed);
        }
        Ok(worker)
    }
}

/// Runs a queue's jobs: fetches them (up to `concurrency` at once), dispatches each to the
/// handler for its name, and records the outcome — completed, retried after the policy's
/// delay, or failed. Cheap to clone. Closing it (or the shutdown hook it registers) stops
/// fetching and lets in flight jobs finish; what does not finish in time stays active until its
/// lock lapses, then another worker takes it over — never lost.
///
/// ```
/// use std::time::Duration;
/// use resilience::jobs::{JobOptions, MemoryBroker, Queue, Worker};
/// use resilience::shutdown::ShutdownCoordinator;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), resilience::jobs::QueueError> {
/// let broker = MemoryBroker::new();
/// let queue = Queue::in_memory("emails", &broker)?;
/// let worker = Worker::builder(&queue)
///     .handle("welcome", |user: u64| async move { Ok::<_, std::io::Error>(user * 2) })
///     .shutdown(&ShutdownCoordinator::new())
///     .start()
///     .await?;
/// let id = queue.add("welcome", &21u64, JobOptions::new()).await?;
/// # for _ in 0..1000 { if queue.counts().await?.completed == 1 { break } tokio::task::yield_now().await; tokio::time::sleep(Duration::from_millis(1)).await; }
/// worker.close(Duration::from_secs(5)).await?;
/// assert_eq!(queue.job(&id).await?.unwrap().result, Some(serde_json::json!(42)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Worker {
    inner: Arc<WorkerInner>,
}

struct WorkerInner {
    queue: Arc<str>,
    backend: Box<dyn WorkerBackend>,
    closed: AtomicBool,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.inner.queue)
            .field("in_flight", &self.in_flight())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Worker {
    /// A builder for a worker on `queue`: add handlers, then [`start`](WorkerBuilder::start).
    pub fn builder(queue: &Queue) -> WorkerBuilder {
        WorkerBuilder {
            queue: queue.clone(),
            handlers: Vec::new(),
            default_retry: RetryPolicy::default(),
            settings: WorkerSettings {
                concurrency: 1,
                rate_limit: None,
                lock_duration: Duration::from_secs(30),
                stalled_interval: Duration::from_secs(30),
                max_stalled_count: 1,
            },
            shutdown: None,
            shutdown_priority: Priority::HIGH,
            shutdown_timeout: None,
        }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// Stops taking jobs; in flight ones finish.
    pub fn pause(&self) {
        self.inner.backend.pause();
    }

    /// Takes jobs again.
    pub fn resume(&self) {
        self.inner.backend.resume();
    }

    /// Jobs running now.
    pub fn in_flight(&self) -> usize {
        self.inner.backend.in_flight()
    }

    /// Stops taking jobs and waits up to `timeout` for in flight ones. Jobs still running then
    /// are left active: their lock lapses and another worker runs them again
    /// ([`QueueError::CloseTimeout`] says how many); in memory they go back to waiting at once
    /// (see [`memory`](super::memory)). Closing twice is a no-op.
    pub async fn close(&self, timeout: Duration) -> Result<(), QueueError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.backend.close(timeout).await
    }
}
