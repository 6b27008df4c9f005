//! The seam between the facade ([`Queue`](super::Queue), [`Worker`](super::Worker)) and a
//! backend (BullMQ on Redis, or in memory). The facade owns every decision a user can see —
//! payload types, retry vs. fail, delays, timeouts, metrics, tracing — and a backend only stores
//! and moves jobs, so both backends behave the same by construction.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::QueueError;
use super::options::JobOptions;

/// A boxed, sendable future.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A job on its way into a queue.
#[derive(Debug, Clone)]
pub(crate) struct NewJob {
    pub name: String,
    pub data: serde_json::Value,
    pub opts: JobOptions,
}

/// One attempt of a job, handed by a backend to the facade's processor.
#[derive(Debug, Clone)]
pub(crate) struct JobRun {
    pub id: String,
    pub name: String,
    pub data: serde_json::Value,
    /// Attempts that already ended (0 on the first attempt).
    pub attempts_made: u32,
    /// Attempts the job may take in all (at least 1).
    pub max_attempts: u32,
    /// When the job was added, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The delay it was added with.
    pub delay: Duration,
    /// The per-attempt timeout it was added with, if any.
    pub timeout: Option<Duration>,
    /// Fires when the worker gives up on the attempt (close timeout); handlers may watch it.
    pub cancel: CancellationToken,
}

/// What the facade decided about one attempt; the backend carries it out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Done: store `result` as the return value.
    Completed(serde_json::Value),
    /// Failed, try again after `delay` (the decision already checked the attempts left).
    Retry { reason: String, delay: Duration },
    /// Failed for good (not retryable, or out of attempts).
    Fail { reason: String },
}

/// The processor a backend calls for each attempt: the facade's dispatch to the handlers.
pub(crate) type Processor = Arc<dyn Fn(JobRun) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Ready to run (prioritized jobs included).
    Waiting,
    /// Being processed.
    Active,
    /// Waiting for its delay (or a retry's backoff) to pass.
    Delayed,
    /// Finished successfully.
    Completed,
    /// Failed for good.
    Failed,
    /// Removed, or never added.
    Unknown,
}

impl JobState {
    /// The state's name as the metrics label it: `waiting`, `active`, `delayed`, `completed`,
    /// `failed`, `unknown`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Active => "active",
            Self::Delayed => "delayed",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

/// How many jobs a queue holds in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Ready to run (BullMQ's `wait` + `prioritized`; `paused` while the queue is paused).
    pub waiting: u64,
    /// Being processed.
    pub active: u64,
    /// Delayed (by the producer or by a retry's backoff).
    pub delayed: u64,
    /// Completed and still retained.
    pub completed: u64,
    /// Failed and still retained.
    pub failed: u64,
}

/// What a queue knows about one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// The job's name (which handler runs it).
    pub name: String,
    /// Its state.
    pub state: JobState,
    /// Its payload, as JSON.
    pub data: serde_json::Value,
    /// Attempts that ended (failed or completed).
    pub attempts_made: u32,
    /// The handler's return value, once completed.
    pub result: Option<serde_json::Value>,
    /// Why its last failed attempt failed; cleared when the job completes (BullMQ's rule, on
    /// both backends).
    pub failed_reason: Option<String>,
    /// The priority number it was stored with (0 = not prioritized).
    pub priority: u32,
    /// When it was added, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

/// Worker settings a backend applies.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSettings {
    pub concurrency: usize,
    /// Queue-wide rate limit: at most `max` jobs per `per`.
    pub rate_limit: Option<(u64, Duration)>,
    /// How long a job's lock lasts before another worker may take it over (BullMQ's
    /// `lockDuration`; renewed while the job runs).
    pub lock_duration: Duration,
    /// How often stalled jobs are looked for.
    pub stalled_interval: Duration,
    /// How often a job may stall before it fails.
    pub max_stalled_count: u32,
}

/// A queue's storage: add, count, inspect.
pub(crate) trait QueueBackend: Send + Sync + 'static {
    /// Adds one job; returns its id (the existing one when the id was taken).
    fn add(&self, job: NewJob) -> BoxFuture<'_, Result<String, QueueError>>;
    /// Adds jobs in one go (one round trip on Redis).
    fn add_bulk(&self, jobs: Vec<NewJob>) -> BoxFuture<'_, Result<Vec<String>, QueueError>>;
    /// Counts per state.
    fn counts(&self) -> BoxFuture<'_, Result<JobCounts, QueueError>>;
    /// When the oldest waiting job became ready (ms since the epoch), if any job waits.
    fn oldest_waiting_ms(&self) -> BoxFuture<'_, Result<Option<u64>, QueueError>>;
    /// One job.
    fn job(&self, id: &str) -> BoxFuture<'_, Result<Option<JobInfo>, QueueError>>;
    /// Stops every worker of the queue from taking jobs (queue-wide).
    fn pause(&self) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Undoes [`pause`](Self::pause).
    fn resume(&self) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Starts a worker on this queue.
    fn worker(
        &self,
        processor: Processor,
        settings: WorkerSettings,
    ) -> BoxFuture<'_, Result<Box<dyn WorkerBackend>, QueueError>>;
    /// Closes connections.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// A running worker.
pub(crate) trait WorkerBackend: Send + Sync + 'static {
    /// Stops taking jobs (in flight ones finish).
    fn pause(&self);
    /// Takes jobs again.
    fn resume(&self);
    /// Jobs running now.
    fn in_flight(&self) -> usize;
    /// Stops taking jobs and waits up to `timeout` for in flight ones; a job still running then
    /// is left active (its lock lapses and another worker takes it over).
    fn close(&self, timeout: Duration) -> BoxFuture<'_, Result<(), QueueError>>;
}
