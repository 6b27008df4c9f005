//! The producer's face: a named queue on a backend.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::backend::{JobCounts, JobInfo, NewJob, QueueBackend};
use super::error::QueueError;
use super::memory::MemoryBroker;
use super::options::JobOptions;
use crate::ConfigError;
use crate::metrics::JOB_QUEUE_JOBS;

/// A named job queue: producers [`add`](Self::add) jobs, [`Worker`](super::Worker)s run them.
/// Cheap to clone (one `Arc`); clones share the connection.
///
/// ```
/// use resilience::jobs::{JobOptions, JobPriority, MemoryBroker, Queue};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), resilience::jobs::QueueError> {
/// let broker = MemoryBroker::new();
/// let queue = Queue::in_memory("emails", &broker)?;
/// let id = queue.add("welcome", &serde_json::json!({ "user": 42 }), JobOptions::new().priority(JobPriority::High)).await?;
/// assert_eq!(queue.counts().await?.waiting, 1);
/// assert_eq!(queue.job(&id).await?.unwrap().priority, 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Queue {
    pub(crate) name: Arc<str>,
    pub(crate) backend: Arc<dyn QueueBackend>,
    pub(crate) kind: BackendKind,
}

/// Which backend a queue lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// In this process only: lost when it exits.
    Memory,
    /// BullMQ on Redis (bullmq-official), shared with Node BullMQ processes.
    Redis,
    /// Redis was asked for but unreachable, and the queue was built with the in-memory fallback
    /// (an explicit opt-in): jobs live in this process only until it exits.
    MemoryFallback,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("backend", &self.kind)
            .finish()
    }
}

/// Checks a queue name: non-empty, at most 200 bytes, no `:` (BullMQ's separator), no braces
/// (the Cluster hash tag is ours to add), no whitespace or control characters.
pub(crate) fn validate_queue_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 200 {
        return Err(ConfigError::new("queue", "must be 1 to 200 bytes"));
    }
    if name
        .chars()
        .any(|c| matches!(c, ':' | '{' | '}') || c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::new(
            "queue",
            "must not contain `:`, braces, whitespace or control characters",
        ));
    }
    Ok(())
}

pub(crate) fn validate_job_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ConfigError::new(
            "name",
            "a job name must be 1 to 200 bytes without control characters",
        ));
    }
    Ok(())
}

impl Queue {
    /// A queue in `broker`'s memory: for development, tests and the quickstart. Jobs are lost
    /// when the process exits.
    pub fn in_memory(name: &str, broker: &MemoryBroker) -> Result<Self, QueueError> {
        validate_queue_name(name)?;
        Ok(Self {
            name: Arc::from(name),
            backend: broker.backend(name),
            kind: BackendKind::Memory,
        })
    }

    /// A queue on Redis (BullMQ through bullmq-official), shared with Node BullMQ processes:
    /// [`connect`](Self::connect) with the defaults for `config` (one server, BullMQ prefix from
    /// the key prefix, no fallback). An unreachable server is [`QueueError::Unavailable`]
    /// within the config's connect timeout; see [`redis`](super::redis) for keys and limits.
    #[cfg(feature = "redis")]
    pub async fn redis(name: &str, config: &crate::redis::RedisConfig) -> Result<Self, QueueError> {
        let config = super::redis::RedisJobsConfig::builder(config.clone()).build()?;
        Self::connect(name, config).await
    }

    /// A queue on Redis as `config` says: one server, a Cluster or a Sentinel master, the BullMQ
    /// prefix, and the opt-in memory fallback ([`BackendKind::MemoryFallback`]).
    #[cfg(feature = "redis")]
    pub async fn connect(
        name: &str,
        config: super::redis::RedisJobsConfig,
    ) -> Result<Self, QueueError> {
        validate_queue_name(name)?;
        super::redis::open(name, config).await
    }

    /// A queue in the process-wide [`MemoryBroker::global`].
    pub fn memory(name: &str) -> Result<Self, QueueError> {
        Self::in_memory(name, MemoryBroker::global())
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the queue's jobs live.
    pub fn backend_kind(&self) -> BackendKind {
        self.kind
    }

    /// Adds a job named `name` (the handler that runs it) with a JSON-serialisable payload;
    /// returns its id. With [`JobOptions::job_id`], adding an id that exists keeps the one job
    /// and returns its id.
    pub async fn add<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
        opts: JobOptions,
    ) -> Result<String, QueueError> {
        let job = Self::new_job(name, payload, opts)?;
        self.backend.add(job).await
    }

    /// Adds many jobs in one go (one round trip on Redis); returns their ids in order. Nothing is
    /// added when one of them is invalid.
    pub async fn add_bulk<N, T, I>(&self, jobs: I) -> Result<Vec<String>, QueueError>
    where
        N: AsRef<str>,
        T: Serialize,
        I: IntoIterator<Item = (N, T, JobOptions)>,
    {
        let jobs = jobs
            .into_iter()
            .map(|(name, payload, opts)| Self::new_job(name.as_ref(), &payload, opts))
            .collect::<Result<Vec<_>, _>>()?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.backend.add_bulk(jobs).await
    }

    fn new_job<T: Serialize + ?Sized>(
        name: &str,
        payload: &T,
        opts: JobOptions,
    ) -> Result<NewJob, QueueError> {
        validate_job_name(name)?;
        opts.validate()?;
        let data =
            serde_json::to_value(payload).map_err(|e| QueueError::Serialize(e.to_string()))?;
        Ok(NewJob {
            name: name.to_owned(),
            data,
            opts,
        })
    }

    /// Jobs per state.
    pub async fn counts(&self) -> Result<JobCounts, QueueError> {
        self.backend.counts().await
    }

    /// One job, if the queue still holds it.
    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>, QueueError> {
        self.backend.job(id).await
    }

    /// How long the oldest waiting job has been ready, if any job waits.
    pub async fn oldest_waiting_age(&self) -> Result<Option<Duration>, QueueError> {
        let Some(ready_ms) = self.backend.oldest_waiting_ms().await? else {
            return Ok(None);
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Ok(Some(Duration::from_millis(now_ms.saturating_sub(ready_ms))))
    }

    /// Stops every worker of this queue, in every process, from taking jobs.
    pub async fn pause(&self) -> Result<(), QueueError> {
        self.backend.pause().await
    }

    /// Undoes [`pause`](Self::pause).
    pub async fn resume(&self) -> Result<(), QueueError> {
        self.backend.resume().await
    }

    /// Reads the counts and sets the `job_queue_jobs{queue,state}` gauges; returns the counts.
    pub async fn record_counts(&self) -> Result<JobCounts, QueueError> {
        let counts = self.counts().await?;
        let q = self.name.to_string();
        for (state, n) in [
            ("waiting", counts.waiting),
            ("active", counts.active),
            ("delayed", counts.delayed),
            ("completed", counts.completed),
            ("failed", counts.failed),
        ] {
            metrics::gauge!(JOB_QUEUE_JOBS, "queue" => q.clone(), "state" => state).set(n as f64);
        }
        Ok(counts)
    }

    /// Closes the queue's connections (workers have their own).
    pub async fn close(&self) {
        self.backend.close().await;
    }
}
