//! The in-memory backend: BullMQ's semantics in this process, for development, tests and the
//! quickstart. Jobs are lost when the process exits.
//!
//! What it does as BullMQ does: generated ids are increasing integers (from 1), a given id that
//! exists keeps the one job; level 0 (no priority) is served first, then lower numbers, FIFO
//! within a level and `lifo` jobs first in theirs; delays and retry backoffs run on the tokio
//! clock (so a paused test clock drives them); a finished job's retention trims its list by
//! count and age; the queue-wide rate limit counts jobs per fixed window (BullMQ's limiter);
//! pause and resume are queue-wide.
//!
//! What differs, because one process holds everything:
//! - No locks lapse and no stalled-job checker runs (`lock_duration`, `stalled_interval`,
//!   `max_stalled_count` are ignored). A worker whose close runs out of time gives its running
//!   jobs back to waiting at once (first in their level, no attempt counted) and drops their
//!   attempts after firing [`JobContext::cancellation`](super::JobContext::cancellation) —
//!   nothing else would ever take them over.
//! - Delayed jobs are promoted when someone looks (a worker, `counts`, `job`); an idle worker
//!   sleeps on one timer per queue, set for the earliest delayed job, and never polls.
//! - The queue-wide rate limit is the last one a worker of the queue asked for.

mod levels;
mod queue;
mod store;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::backend::QueueBackend;
use queue::{MemoryQueue, QueueShared};

/// Holds in-memory queues by name; a [`Queue`](super::Queue) and the
/// [`Worker`](super::Worker)s built from it share the broker's queue of that name. Clones
/// share the queues.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    queues: Arc<Mutex<HashMap<String, Arc<QueueShared>>>>,
}

impl fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queues = self.queues.lock().map_or(0, |q| q.len());
        f.debug_struct("MemoryBroker")
            .field("queues", &queues)
            .finish()
    }
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide broker.
    pub fn global() -> &'static MemoryBroker {
        static GLOBAL: OnceLock<MemoryBroker> = OnceLock::new();
        GLOBAL.get_or_init(MemoryBroker::new)
    }

    pub(crate) fn backend(&self, name: &str) -> Arc<dyn QueueBackend> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = queues
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(QueueShared::new()))
            .clone();
        Arc::new(MemoryQueue(shared))
    }
}
