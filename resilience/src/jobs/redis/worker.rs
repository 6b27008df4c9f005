//! The worker side on bullmq: a `bullmq::Worker` whose processor runs our dispatch and turns
//! its [`Outcome`] into what bullmq does next.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bullmq::options::WorkerOptions;
use bullmq::types::BackoffStrategy;
use bullmq::{Job, RateLimiterOptions};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::backend::{BoxFuture, JobRun, Outcome, Processor, WorkerBackend, WorkerSettings};
use super::super::error::QueueError;
use super::backoff;
use super::config::RedisJobsConfig;
use super::connect::{master_addr, queue_error, within};
use crate::timeout::{deadline_after, run_until};

/// How long an idle worker's blocking `BZPOPMIN` waits for a job's marker before it asks
/// again. A marker arrives with every job added, so this bounds only how often an idle worker
/// wakes (and how soon a silently dead connection is noticed: this + 1 s).
pub(crate) const DRAIN_DELAY: Duration = Duration::from_secs(10);

/// How long the worker waits after a failed fetch (Redis down) before it tries again
/// (bullmq's default, 15 s, would leave a worker idle that long after a blip).
const RUN_RETRY_DELAY: Duration = Duration::from_secs(1);

/// How often `close` looks whether bullmq has written the last results.
const CLOSE_POLL: Duration = Duration::from_millis(10);

struct Shared {
    processor: Processor,
    /// Set when closing begins: a job fetched after that goes back to waiting untouched.
    stopping: AtomicBool,
    /// Fired when `close` runs out of time: attempts still running are given up.
    abandon: CancellationToken,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// Counts an attempt in flight while it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A running bullmq worker.
pub(crate) struct RedisWorker {
    worker: Arc<bullmq::Worker>,
    shared: Arc<Shared>,
    closed: AtomicBool,
}

impl RedisWorker {
    /// Starts a worker on `bull_name` (re-asking the sentinels for the master, if any), within
    /// the connect timeout.
    pub(crate) async fn start(
        config: &RedisJobsConfig,
        bull_name: &str,
        processor: Processor,
        s: WorkerSettings,
    ) -> Result<Self, QueueError> {
        let addr = master_addr(config).await?;
        let conn = config
            .bullmq_connection(addr.as_ref().map(|(h, p)| (h.as_str(), *p)))
            .map_err(queue_error)?;
        let mut opts = WorkerOptions::new()
            .connection(conn)
            .prefix(config.prefix.clone())
            .concurrency(s.concurrency)
            .lock_duration(s.lock_duration)
            .stalled_interval(s.stalled_interval)
            .max_stalled_count(s.max_stalled_count)
            .drain_delay(DRAIN_DELAY)
            .run_retry_delay(RUN_RETRY_DELAY)
            .backoff_strategy(backoff::strategy());
        if let Some((max, per)) = s.rate_limit {
            opts = opts.limiter(RateLimiterOptions::new(max, per));
        }
        let shared = Arc::new(Shared {
            processor,
            stopping: AtomicBool::new(false),
            abandon: CancellationToken::new(),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let for_bull = shared.clone();
        let worker = within(
            config.redis.connect_timeout,
            "start worker",
            bullmq::Worker::with_options(
                bull_name,
                move |job: Job, _token| run(for_bull.clone(), job),
                opts,
            ),
        )
        .await?;
        Ok(Self {
            worker: Arc::new(worker),
            shared,
            closed: AtomicBool::new(false),
        })
    }

    /// Waits until no attempt runs, or `deadline` (none: no limit); whether none runs.
    async fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.in_flight.load(Ordering::Acquire) == 0 {
                return true;
            }
            if run_until(deadline, notified).await.is_err() {
                return self.shared.in_flight.load(Ordering::Acquire) == 0;
            }
        }
    }
}

/// One attempt: our dispatch, then bullmq's instruction for the outcome.
async fn run(shared: Arc<Shared>, job: Job) -> Result<serde_json::Value, bullmq::Error> {
    if shared.stopping.load(Ordering::Acquire) {
        // Fetched after close began (the fetch was under way): bullmq moves a job that reports
        // a rate limit back to waiting, untouched, for another worker.
        return Err(bullmq::Error::RateLimited { delay_ms: 0 });
    }
    let _counted = InFlight::enter(&shared);
    // The worker-wide token itself (a clone is one Arc increment; a child token would take the
    // parent's lock twice per job): dispatch derives a child only when it has a timeout to fire.
    let run = job_run(&job, shared.abandon.clone());
    let attempt = run.attempts_made.saturating_add(1);
    let outcome = tokio::select! {
        biased;
        () = shared.abandon.cancelled() => {
            // Close ran out of time: the job stays active; its lock lapses and another
            // worker's stalled check moves it back to waiting. `Delayed` makes bullmq leave it.
            backoff::clear();
            return Err(bullmq::Error::Delayed);
        }
        outcome = (shared.processor)(run) => outcome,
    };
    match outcome {
        Outcome::Completed(value) => {
            backoff::clear();
            Ok(value)
        }
        Outcome::Fail { reason } => {
            backoff::clear();
            Err(bullmq::Error::Unrecoverable(reason))
        }
        Outcome::Retry { reason, delay } => {
            // bullmq asks the backoff hook in this same poll (see `backoff`).
            backoff::hand_over(attempt, &reason, delay);
            Err(bullmq::Error::ProcessingError(reason))
        }
    }
}

/// The facade's view of a bullmq job.
fn job_run(job: &Job, cancel: CancellationToken) -> JobRun {
    let opts = job.opts();
    let timeout = match &opts.backoff {
        Some(BackoffStrategy::Custom(t)) => backoff::timeout_of(t),
        _ => None,
    };
    JobRun {
        id: job.id().to_owned(),
        name: job.name().to_owned(),
        data: job.data().clone(),
        attempts_made: job.attempts_made(),
        // A job added without attempts (a Node producer's default) gets one.
        max_attempts: opts.attempts.unwrap_or(0).max(1),
        timestamp_ms: job.timestamp(),
        delay: Duration::from_millis(job.delay()),
        timeout,
        cancel,
    }
}

impl WorkerBackend for RedisWorker {
    fn pause(&self) {
        self.worker.pause();
    }

    fn resume(&self) {
        if !self.shared.stopping.load(Ordering::Acquire) {
            self.worker.resume();
        }
    }

    fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    fn close(&self, timeout: Duration) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            if self.closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            let deadline = deadline_after(Instant::now(), timeout);
            self.shared.stopping.store(true, Ordering::Release);
            // Stops fetching, and chaining the next job onto a finished one.
            self.worker.pause();
            let result = if self.wait_idle(deadline).await {
                // Our processors returned; let bullmq write their results (bounded).
                while self.worker.active_count().await > 0
                    && deadline.is_none_or(|at| Instant::now() < at)
                {
                    tokio::time::sleep(CLOSE_POLL).await;
                }
                Ok(())
            } else {
                let in_flight = self.shared.in_flight.load(Ordering::Acquire);
                tracing::warn!(
                    in_flight,
                    ?timeout,
                    "job worker close timed out; the jobs still running stay active until their \
                     lock lapses and another worker takes them over"
                );
                self.shared.abandon.cancel();
                Err(QueueError::CloseTimeout { in_flight, timeout })
            };
            // Nothing is left to wait for: bullmq's close with no time stops its fetch loop,
            // lock renewal and stalled checks at once (its fetch loop may sit in a blocking
            // read for up to the drain delay otherwise).
            let _ = self.worker.close(0).await;
            result
        })
    }
}

impl Drop for RedisWorker {
    fn drop(&mut self) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        // Dropped without close: bullmq's tasks would run on; stop them.
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.abandon.cancel();
        self.worker.pause();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let worker = self.worker.clone();
            rt.spawn(async move {
                let _ = worker.close(0).await;
            });
        }
    }
}
