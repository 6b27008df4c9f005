//! An in-memory worker: `concurrency` slot tasks, each taking one job at a time straight from
//! the queue's state (recording the previous job's outcome under the same lock), running it
//! through the facade's processor, and waiting on the queue's notification when idle.

use std::future::pending;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::levels::Key;
use super::queue::QueueShared;
use super::store::{Done, Slot, Step};
use crate::ConfigError;
use crate::jobs::backend::{BoxFuture, JobRun, Processor, WorkerBackend, WorkerSettings};
use crate::jobs::error::QueueError;

/// More slots than this is a configuration mistake, not a workload (each is a task).
const MAX_CONCURRENCY: usize = 65_536;

/// A sleeping slot looks again at least this often, however far its timer is.
const MAX_SLEEP: Duration = Duration::from_secs(24 * 3600);

struct WorkerShared {
    queue: Arc<QueueShared>,
    id: u64,
    processor: Processor,
    /// Given to every attempt; fires when a close runs out of time.
    cancel: CancellationToken,
    paused: AtomicBool,
    closing: AtomicBool,
    /// Wakes slots on pause, resume and close.
    control: Notify,
    in_flight: AtomicUsize,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A running in-memory worker.
pub(super) struct MemoryWorker(Arc<WorkerShared>);

/// Starts `settings.concurrency` slot tasks on the current tokio runtime.
pub(super) fn start(
    queue: Arc<QueueShared>,
    processor: Processor,
    settings: &WorkerSettings,
) -> Result<MemoryWorker, QueueError> {
    if settings.concurrency > MAX_CONCURRENCY {
        return Err(ConfigError::new(
            "concurrency",
            "the in-memory backend runs at most 65536 jobs at once per worker",
        )
        .into());
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        QueueError::Backend("an in-memory worker must start inside a tokio runtime".into())
    })?;
    if let Some(rate) = settings.rate_limit {
        queue.lock().rate = Some(rate);
    }
    let shared = Arc::new(WorkerShared {
        id: queue.next_id(),
        queue,
        processor,
        cancel: CancellationToken::new(),
        paused: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        control: Notify::new(),
        in_flight: AtomicUsize::new(0),
        tasks: Mutex::new(Vec::new()),
    });
    let tasks: Vec<JoinHandle<()>> = (0..settings.concurrency)
        .map(|_| {
            let slot = Slot {
                id: shared.queue.next_id(),
                worker: shared.id,
                // A child per slot: cloning it per job touches no count shared across threads.
                cancel: shared.cancel.child_token(),
                idle: false,
            };
            runtime.spawn(run_slot(SlotTask {
                worker: shared.clone(),
                slot,
                done: None,
            }))
        })
        .collect();
    *shared.tasks.lock().unwrap_or_else(PoisonError::into_inner) = tasks;
    Ok(MemoryWorker(shared))
}

/// One slot's task state. Dropping it (the loop ended, the task was aborted, or its runtime
/// shut down) records a pending outcome and takes the slot out of the idle count and the
/// timer, waking another slot when one is needed.
struct SlotTask {
    worker: Arc<WorkerShared>,
    slot: Slot,
    done: Option<Done>,
}

impl Drop for SlotTask {
    fn drop(&mut self) {
        let queue = &self.worker.queue;
        let now = Instant::now();
        let wake = {
            let mut state = queue.lock();
            state.park(&mut self.slot, self.done.take(), now)
        };
        if wake {
            queue.notify.notify_one();
        }
    }
}

impl SlotTask {
    /// Records the last outcome and takes the next job, or parks the slot as idle.
    fn step(&mut self) -> Step {
        let queue = &self.worker.queue;
        let (step, wake) = queue
            .lock()
            .step(&mut self.slot, self.done.take(), Instant::now());
        if wake {
            queue.notify.notify_one();
        }
        step
    }

    async fn run(&mut self, run: JobRun, key: Key, token: u64) {
        let w = &self.worker;
        w.in_flight.fetch_add(1, Ordering::Relaxed);
        // A no-op handler never yields: give the scheduler its turn now and then.
        tokio::task::consume_budget().await;
        let outcome = (w.processor)(run).await;
        // Saturating: a close that ran out of time has already zeroed the count.
        let _ = w
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.done = Some(Done {
            key,
            token,
            outcome,
        });
    }

    fn stopping(&self) -> bool {
        let w = &self.worker;
        w.closing.load(Ordering::Acquire) || w.paused.load(Ordering::Acquire)
    }
}

async fn run_slot(mut task: SlotTask) {
    let w = task.worker.clone();
    loop {
        if w.closing.load(Ordering::Acquire) {
            return; // the drop records the last outcome
        }
        if w.paused.load(Ordering::Acquire) {
            let wake = w
                .queue
                .lock()
                .park(&mut task.slot, task.done.take(), Instant::now());
            if wake {
                w.queue.notify.notify_one();
            }
            let mut resumed = pin!(w.control.notified());
            resumed.as_mut().enable();
            if task.stopping() && !w.closing.load(Ordering::Acquire) {
                resumed.await;
            }
            continue;
        }
        if let Step::Run(run, key, token) = task.step() {
            task.run(run, key, token).await;
            continue;
        }
        // Nothing to take. Register for wake-ups, then look again: whatever changed between
        // the two looks is seen by the second one or announced to the registration.
        let mut notified = pin!(w.queue.notify.notified());
        notified.as_mut().enable();
        let mut control = pin!(w.control.notified());
        control.as_mut().enable();
        if task.stopping() {
            continue;
        }
        match task.step() {
            Step::Run(run, key, token) => task.run(run, key, token).await,
            Step::Wait(timer) => {
                let sleep = async {
                    match timer {
                        Some(at) => {
                            tokio::time::sleep_until(at.min(Instant::now() + MAX_SLEEP)).await
                        }
                        None => pending().await,
                    }
                };
                tokio::select! {
                    () = notified => {}
                    () = control => {}
                    () = sleep => {}
                }
            }
        }
    }
}

impl WorkerBackend for MemoryWorker {
    fn pause(&self) {
        self.0.paused.store(true, Ordering::Release);
        self.0.control.notify_waiters();
    }

    fn resume(&self) {
        self.0.paused.store(false, Ordering::Release);
        self.0.control.notify_waiters();
    }

    fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::Relaxed)
    }

    /// Stops the slots and waits up to `timeout` for the jobs they run. Jobs still running
    /// then are given back to waiting at once (first in their level) and their attempts are
    /// cancelled and dropped: in memory no lock lapses and no other process would take them
    /// over, so they would otherwise stay active for good. They run again on the next worker
    /// of the queue, without counting an attempt.
    fn close(&self, timeout: Duration) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let w = &self.0;
            w.closing.store(true, Ordering::Release);
            w.control.notify_waiters();
            let mut tasks =
                std::mem::take(&mut *w.tasks.lock().unwrap_or_else(PoisonError::into_inner));
            if tokio::time::timeout(timeout, join_all(tasks.iter_mut()))
                .await
                .is_ok()
            {
                return Ok(());
            }
            let (released, wake) = {
                let mut state = w.queue.lock();
                let released = state.release_worker(w.id);
                (released, state.should_wake(Instant::now()))
            };
            w.cancel.cancel();
            for task in &tasks {
                task.abort();
            }
            w.in_flight.store(0, Ordering::Relaxed);
            if wake {
                w.queue.notify.notify_waiters();
            }
            if released == 0 {
                return Ok(());
            }
            Err(QueueError::CloseTimeout {
                in_flight: released,
                timeout,
            })
        })
    }
}
