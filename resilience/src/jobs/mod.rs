//! Job queues (seed 002): BullMQ's data model on Redis through the official Rust port
//! (`bullmq-official`), so Rust and Node BullMQ producers and workers share queues — wired into
//! this toolkit's retry engine, shutdown, health and metrics — plus an in-memory backend with
//! the same behaviour for development, tests and the quickstart.
//!
//! ```
//! use std::time::Duration;
//! use resilience::jobs::{JobOptions, JobPriority, MemoryBroker, Queue, Worker};
//! use resilience::retry::RetryPreset;
//! use resilience::shutdown::ShutdownCoordinator;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Welcome { user: u64 }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), resilience::jobs::QueueError> {
//! let queue = Queue::in_memory("emails", &MemoryBroker::new())?;
//! let worker = Worker::builder(&queue)
//!     .handle("welcome", |w: Welcome| async move { Ok::<_, std::io::Error>(format!("sent to {}", w.user)) })
//!     .concurrency(10)
//!     .retry(RetryPreset::Patient)
//!     .shutdown(&ShutdownCoordinator::new())
//!     .start()
//!     .await?;
//! queue.add("welcome", &Welcome { user: 7 }, JobOptions::new().priority(JobPriority::High)).await?;
//! # for _ in 0..1000 { if queue.counts().await?.completed == 1 { break } tokio::time::sleep(Duration::from_millis(1)).await; }
//! worker.close(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! # Semantics (DESIGN §5)
//! - **Priorities**: BullMQ's numbers, lower first: critical 1, high 2, normal 3 (the default
//!   here), low 4, or any number up to 2,097,151. A job added with no priority (0, a Node
//!   producer's default) is served before every prioritized job — BullMQ's rule.
//! - **Retries**: a job carries its attempt count (from [`JobOptions::retry`], default the
//!   `standard` preset's 3). When an attempt fails, the handler's [`RetryPolicy`](crate::RetryPolicy)
//!   decides: an error its `retry_if` or [`Retryable`](crate::Retryable) calls permanent fails
//!   the job at once (BullMQ's unrecoverable error); otherwise the job waits the error's
//!   `Retry-After` hint or the policy's backoff delay (through bullmq's backoff hook on Redis),
//!   until its attempts run out. A timed-out attempt, or one that panicked, is a failed,
//!   retryable attempt. A payload that does not deserialise fails its job at once.
//! - **Delivery is at least once**: a job whose worker died returns to waiting when its lock
//!   lapses (failing past `max_stalled_count`). A handler that must not act twice uses
//!   [`JobContext::id`] as an idempotency key, e.g. with the Redis create-if-absent write.
//! - **Shutdown**: a worker registers its close with the shutdown coordinator (priority high):
//!   it stops fetching, lets in flight jobs finish within the hook's timeout, and leaves the
//!   rest to other workers.

mod backend;
mod error;
mod handler;
mod health;
pub mod memory;
mod options;
mod queue;
#[cfg(feature = "redis")]
pub mod redis;
mod registry;
mod worker;

pub use backend::{JobCounts, JobInfo, JobState};
pub use error::{JobError, QueueError};
pub use handler::{Handler, JobContext};
pub use health::{BacklogThresholds, JobQueueHealth};
pub use memory::MemoryBroker;
pub use options::{JobOptions, JobPriority, MAX_DELAY, MAX_PRIORITY, Retention};
pub use queue::{BackendKind, Queue};
#[doc(hidden)]
pub use registry::JobRegistration;
pub use registry::registered_jobs;
pub use worker::{Worker, WorkerBuilder};
