//! One in-memory queue: its state, the notification idle worker slots wait on, and the
//! [`QueueBackend`] over them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::store::State;
use super::worker;
use crate::jobs::backend::{
    BoxFuture, JobCounts, JobInfo, NewJob, Processor, QueueBackend, WorkerBackend, WorkerSettings,
};
use crate::jobs::error::QueueError;

/// What a queue's producers and workers share.
#[derive(Debug)]
pub(super) struct QueueShared {
    state: Mutex<State>,
    /// Idle worker slots wait here; woken one at a time when a job is left for them.
    pub(super) notify: Notify,
    ids: AtomicU64,
}

impl QueueShared {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            ids: AtomicU64::new(0),
        }
    }

    /// The state; a panic elsewhere cannot leave it half-written (no method panics), so a
    /// poisoned lock is taken as is.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh id for a worker or a slot.
    pub(super) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs a read under the lock. Reads promote due delayed jobs, so idle slots are woken
    /// when that left work for them.
    fn inspect<T>(&self, read: impl FnOnce(&mut State, Instant) -> T) -> T {
        let now = Instant::now();
        let (value, wake) = {
            let mut state = self.lock();
            let value = read(&mut state, now);
            (value, state.should_wake(now))
        };
        if wake {
            self.notify.notify_one();
        }
        value
    }

    fn add_all(&self, jobs: Vec<NewJob>) -> Vec<String> {
        let now = Instant::now();
        let now_ms = now_ms();
        let (ids, wake) = {
            let mut state = self.lock();
            let ids: Vec<String> = jobs
                .into_iter()
                .map(|job| state.add(job, now, now_ms))
                .collect();
            (ids, state.should_wake(now))
        };
        if wake {
            // Several jobs: every idle slot looks (a slot not yet waiting looks by itself).
            self.notify.notify_waiters();
        }
        ids
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A queue's backend handle; clones share the queue.
#[derive(Debug, Clone)]
pub(super) struct MemoryQueue(pub(super) Arc<QueueShared>);

impl QueueBackend for MemoryQueue {
    fn add(&self, job: NewJob) -> BoxFuture<'_, Result<String, QueueError>> {
        let now = Instant::now();
        let (id, wake) = {
            let mut state = self.0.lock();
            let id = state.add(job, now, now_ms());
            (id, state.should_wake(now))
        };
        if wake {
            self.0.notify.notify_one();
        }
        Box::pin(std::future::ready(Ok(id)))
    }

    fn add_bulk(&self, jobs: Vec<NewJob>) -> BoxFuture<'_, Result<Vec<String>, QueueError>> {
        Box::pin(std::future::ready(Ok(self.0.add_all(jobs))))
    }

    fn counts(&self) -> BoxFuture<'_, Result<JobCounts, QueueError>> {
        let counts = self.0.inspect(|state, now| state.counts(now));
        Box::pin(std::future::ready(Ok(counts)))
    }

    fn oldest_waiting_ms(&self) -> BoxFuture<'_, Result<Option<u64>, QueueError>> {
        let oldest = self.0.inspect(|state, now| state.oldest_waiting_ms(now));
        Box::pin(std::future::ready(Ok(oldest)))
    }

    fn job(&self, id: &str) -> BoxFuture<'_, Result<Option<JobInfo>, QueueError>> {
        let info = self.0.inspect(|state, now| state.info(id, now));
        Box::pin(std::future::ready(Ok(info)))
    }

    fn pause(&self) -> BoxFuture<'_, Result<(), QueueError>> {
        self.0.lock().set_paused(true);
        Box::pin(std::future::ready(Ok(())))
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), QueueError>> {
        if self.0.lock().set_paused(false) {
            self.0.notify.notify_waiters();
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn worker(
        &self,
        processor: Processor,
        settings: WorkerSettings,
    ) -> BoxFuture<'_, Result<Box<dyn WorkerBackend>, QueueError>> {
        let started = worker::start(self.0.clone(), processor, &settings)
            .map(|w| Box::new(w) as Box<dyn WorkerBackend>);
        Box::pin(std::future::ready(started))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        // Nothing to release: the jobs stay in the broker for the queue's other handles.
        Box::pin(std::future::ready(()))
    }
}
