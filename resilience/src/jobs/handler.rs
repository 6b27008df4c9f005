//! Handlers: typed functions registered per job name, erased to one JSON-in / JSON-out shape,
//! and the dispatch that runs them — payload decoding, timeout, panic capture, the retry decision,
//! metrics and a tracing span per job. Both backends call this same dispatch.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use metrics::{Counter, Histogram, SharedString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::backend::{BoxFuture, JobRun, Outcome, Processor};
use super::error::JobError;
use super::options::MAX_DELAY;
use crate::metrics::lazy::LazyHandle;
use crate::metrics::{
    JOB_QUEUE_PROCESSED_TOTAL, JOB_QUEUE_PROCESSING_DURATION_SECONDS,
    JOB_QUEUE_WAIT_DURATION_SECONDS,
};
use crate::retry::{RetryPolicy, Retryable};
use crate::timeout::{deadline_after, run_until};

/// What a handler learns about the attempt it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    id: String,
    name: Arc<str>,
    queue: Arc<str>,
    attempt: u32,
    max_attempts: u32,
    timestamp_ms: u64,
    cancel: CancellationToken,
}

impl JobContext {
    /// The job's id: use it as an idempotency key where a handler must not act twice (delivery
    /// is at least once).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// This attempt, 1-based.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Attempts the job may take in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// When the job was added.
    pub fn added_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.timestamp_ms)
    }

    /// Fires when the worker gives up on this attempt (its timeout, or a close that ran out of
    /// time): a handler doing long work can stop early.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// Why a handler's attempt failed, classified while the error's type was still known.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub error: JobError,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

type Erased = Arc<
    dyn Fn(
            serde_json::Value,
            JobContext,
            RetryPolicy,
        ) -> BoxFuture<'static, Result<serde_json::Value, Failure>>
        + Send
        + Sync,
>;

/// A function that runs jobs of one name, with its retry policy and timeout.
///
/// The payload is deserialised from JSON into `T` (a payload that does not fit fails the job at
/// once with [`JobError::Payload`]); the `Ok` value is stored as the job's return value; an
/// `Err` is classified by the policy's `retry_if` or by [`Retryable`], and its
/// [`Retryable::retry_after`] hint replaces the backoff delay.
///
/// ```
/// use resilience::jobs::Handler;
/// use resilience::retry::RetryPreset;
///
/// #[derive(serde::Deserialize)]
/// struct Welcome { user: u64 }
///
/// let handler = Handler::new("welcome", |w: Welcome| async move {
///     Ok::<_, std::io::Error>(w.user)
/// })
/// .retry(RetryPreset::Patient);
/// assert_eq!(handler.name(), "welcome");
/// ```
#[derive(Clone)]
pub struct Handler {
    pub(crate) name: Arc<str>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
    run: Erased,
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("name", &self.name)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Handler {
    /// A handler for jobs named `name` that takes the payload.
    pub fn new<T, R, E, F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        E: Retryable + fmt::Display + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        Self::with_context(name, move |payload: T, _ctx: JobContext| f(payload))
    }

    /// A handler for jobs named `name` that takes the payload and the [`JobContext`].
    pub fn with_context<T, R, E, F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        E: Retryable + fmt::Display + Send + 'static,
        F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        let run: Erased = Arc::new(move |data, ctx, policy| {
            let payload = match serde_json::from_value::<T>(data) {
                Ok(p) => p,
                Err(e) => {
                    let failure = Failure {
                        error: JobError::Payload(e.to_string()),
                        retryable: false,
                        retry_after: None,
                    };
                    return Box::pin(std::future::ready(Err(failure)));
                }
            };
            let fut = f(payload, ctx);
            Box::pin(async move {
                match fut.await {
                    Ok(value) => serde_json::to_value(value).map_err(|e| Failure {
                        error: JobError::Handler(format!(
                            "the return value could not be serialised: {e}"
                        )),
                        retryable: false,
                        retry_after: None,
                    }),
                    Err(e) => Err(Failure {
                        retryable: policy.is_retryable(&e),
                        retry_after: e.retry_after(),
                        error: JobError::Handler(e.to_string()),
                    }),
                }
            })
        });
        Self {
            name: Arc::from(name.into()),
            retry: None,
            timeout: None,
            run,
        }
    }

    /// The retry policy that decides delays and retryability (default: the worker's, which
    /// defaults to the `standard` preset). Attempts come from the job itself.
    pub fn retry(mut self, policy: impl Into<RetryPolicy>) -> Self {
        self.retry = Some(policy.into());
        self
    }

    /// Cut each attempt after `timeout`, unless the job carries its own.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The job name this handler runs.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The retry decision for a failed attempt: fail at once when the error is not retryable or the
/// job has no attempt left; otherwise wait the error's `Retry-After` hint or the policy's delay.
/// A hint longer than the policy's whole total timeout fails the job (the wait would outlast the
/// budget the policy gives the sequence).
pub(crate) fn decide(
    failure: Failure,
    attempts_made: u32,
    max_attempts: u32,
    policy: &RetryPolicy,
    random: f64,
) -> Outcome {
    let reason = failure.error.to_string();
    let attempt = attempts_made.saturating_add(1);
    if !failure.retryable || attempt >= max_attempts {
        return Outcome::Fail { reason };
    }
    let delay = match failure.retry_after {
        Some(hint) => {
            if policy.total_timeout().is_some_and(|total| hint > total) {
                return Outcome::Fail {
                    reason: format!(
                        "{reason} (its retry-after hint {hint:?} exceeds the policy's total timeout)"
                    ),
                };
            }
            hint
        }
        None => policy.delay(attempt, random),
    }
    .min(MAX_DELAY);
    Outcome::Retry { reason, delay }
}

/// Metric handles for one queue, each registered on its first use (a fresh worker exports no
/// zero-valued outcome or empty histogram).
struct QueueMetrics {
    queue: SharedString,
    processed: [LazyHandle<Counter>; 3],
    wait: LazyHandle<Histogram>,
}

/// The `outcome` labels of [`JOB_QUEUE_PROCESSED_TOTAL`], by index.
const PROCESSED: [&str; 3] = ["completed", "retried", "failed"];
const COMPLETED: usize = 0;
const RETRIED: usize = 1;
const FAILED: usize = 2;

impl QueueMetrics {
    fn new(queue: &str) -> Self {
        Self {
            queue: SharedString::from(queue.to_owned()),
            processed: std::array::from_fn(|_| LazyHandle::new()),
            wait: LazyHandle::new(),
        }
    }

    fn processed(&self, i: usize) {
        let outcome = PROCESSED[i];
        self.processed[i]
            .get(|| {
                metrics::counter!(JOB_QUEUE_PROCESSED_TOTAL, "queue" => self.queue.clone(), "outcome" => outcome)
            })
            .increment(1);
    }

    fn wait(&self) -> &Histogram {
        self.wait.get(
            || metrics::histogram!(JOB_QUEUE_WAIT_DURATION_SECONDS, "queue" => self.queue.clone()),
        )
    }
}

struct Entry {
    handler: Handler,
    policy: RetryPolicy,
    duration: LazyHandle<Histogram>,
}

impl Entry {
    fn duration(&self, queue: &Arc<str>) -> &Histogram {
        self.duration.get(|| {
            metrics::histogram!(
                JOB_QUEUE_PROCESSING_DURATION_SECONDS,
                "queue" => queue.to_string(),
                "name" => self.handler.name.to_string()
            )
        })
    }
}

/// Builds the processor a backend calls: one dispatch over the worker's handlers.
pub(crate) fn dispatcher(
    queue: &str,
    handlers: Vec<Handler>,
    default_policy: RetryPolicy,
) -> Processor {
    let queue: Arc<str> = Arc::from(queue);
    let table: HashMap<Arc<str>, Entry> = handlers
        .into_iter()
        .map(|h| {
            let policy = h.retry.clone().unwrap_or_else(|| default_policy.clone());
            (
                h.name.clone(),
                Entry {
                    handler: h,
                    policy,
                    duration: LazyHandle::new(),
                },
            )
        })
        .collect();
    let shared = Arc::new((queue.clone(), table, QueueMetrics::new(&queue)));
    Arc::new(move |run: JobRun| {
        let shared = shared.clone();
        Box::pin(async move {
            let (queue, table, m) = &*shared;
            dispatch(queue, table, m, run).await
        })
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn dispatch(
    queue: &Arc<str>,
    table: &HashMap<Arc<str>, Entry>,
    m: &QueueMetrics,
    run: JobRun,
) -> Outcome {
    // Taken apart so the id, payload and token move into the attempt instead of being copied.
    let JobRun {
        id,
        name,
        data,
        attempts_made,
        max_attempts,
        timestamp_ms,
        delay,
        timeout: job_timeout,
        cancel: run_cancel,
    } = run;
    let Some(entry) = table.get(name.as_str()) else {
        m.processed(FAILED);
        tracing::warn!(queue = %queue, job = %name, id = %id, "no handler for this job name");
        return Outcome::Fail {
            reason: JobError::NoHandler(name).to_string(),
        };
    };
    if attempts_made == 0 {
        // Queue wait: from when the job became ready (added + its delay) to its first start.
        let ready =
            timestamp_ms.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        m.wait()
            .record(now_ms().saturating_sub(ready) as f64 / 1000.0);
    }
    let span = tracing::info_span!(
        "job",
        queue = %queue,
        name = %name,
        id = %id,
        attempt = attempts_made + 1,
        max_attempts = max_attempts,
    );
    let timeout = job_timeout
        .or(entry.handler.timeout)
        .or_else(|| entry.policy.attempt_timeout());
    // Only a timeout cancels the attempt's token on its own, so only then does it need a child
    // token of the run's (each clone or child costs a lock on the token).
    let (cancel, on_timeout) = match timeout {
        Some(_) => {
            let child = run_cancel.child_token();
            (child.clone(), Some(child))
        }
        None => (run_cancel, None),
    };
    let ctx = JobContext {
        id,
        name: entry.handler.name.clone(),
        queue: queue.clone(),
        attempt: attempts_made + 1,
        max_attempts,
        timestamp_ms,
        cancel,
    };
    let started = tokio::time::Instant::now();
    let attempt = (entry.handler.run)(data, ctx, entry.policy.clone());
    let deadline = timeout.and_then(|t| deadline_after(started, t));
    let result = run_until(deadline, AssertUnwindSafe(attempt).catch_unwind())
        .instrument(span.clone())
        .await;
    entry
        .duration(queue)
        .record(started.elapsed().as_secs_f64());
    let failure = match result {
        Ok(Ok(Ok(value))) => {
            m.processed(COMPLETED);
            span.in_scope(|| tracing::debug!("job completed"));
            return Outcome::Completed(value);
        }
        Ok(Ok(Err(failure))) => failure,
        Ok(Err(panic)) => Failure {
            error: JobError::Panicked(panic_message(&*panic)),
            retryable: true,
            retry_after: None,
        },
        Err(()) => {
            if let Some(token) = &on_timeout {
                token.cancel();
            }
            Failure {
                error: JobError::Timeout(timeout.unwrap_or_default()),
                retryable: true,
                retry_after: None,
            }
        }
    };
    let outcome = decide(
        failure,
        attempts_made,
        max_attempts,
        &entry.policy,
        rand::random::<f64>(),
    );
    span.in_scope(|| match &outcome {
        Outcome::Retry { reason, delay } => {
            m.processed(RETRIED);
            tracing::info!(%reason, ?delay, "job attempt failed, will retry");
        }
        Outcome::Fail { reason } => {
            m.processed(FAILED);
            tracing::warn!(%reason, "job failed");
        }
        Outcome::Completed(_) => {}
    });
    outcome
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPreset;

    fn failure(retryable: bool, retry_after: Option<Duration>) -> Failure {
        Failure {
            error: JobError::Handler("boom".into()),
            retryable,
            retry_after,
        }
    }

    #[test]
    fn not_retryable_fails_at_once() {
        let p = RetryPreset::Patient.policy();
        assert_eq!(
            decide(failure(false, None), 0, 5, &p, 0.5),
            Outcome::Fail {
                reason: "boom".into()
            }
        );
    }

    #[test]
    fn last_attempt_fails_and_earlier_ones_wait_the_policy_delay() {
        let p = RetryPolicy::builder()
            .max_attempts(3)
            .backoff(crate::retry::Backoff::Exponential)
            .initial_delay(Duration::from_millis(100))
            .build()
            .unwrap();
        assert_eq!(
            decide(failure(true, None), 0, 3, &p, 0.0),
            Outcome::Retry {
                reason: "boom".into(),
                delay: Duration::from_millis(100)
            }
        );
        assert_eq!(
            decide(failure(true, None), 1, 3, &p, 0.0),
            Outcome::Retry {
                reason: "boom".into(),
                delay: Duration::from_millis(200)
            }
        );
        assert!(matches!(
            decide(failure(true, None), 2, 3, &p, 0.0),
            Outcome::Fail { .. }
        ));
        // A job with one attempt (or a corrupt zero) never retries.
        assert!(matches!(
            decide(failure(true, None), 0, 1, &p, 0.0),
            Outcome::Fail { .. }
        ));
        assert!(matches!(
            decide(failure(true, None), 0, 0, &p, 0.0),
            Outcome::Fail { .. }
        ));
    }

    #[test]
    fn retry_after_replaces_the_delay_within_the_total_timeout() {
        let p = RetryPreset::Standard.policy(); // 30 s total
        assert_eq!(
            decide(failure(true, Some(Duration::from_secs(7))), 0, 3, &p, 0.9),
            Outcome::Retry {
                reason: "boom".into(),
                delay: Duration::from_secs(7)
            }
        );
        assert!(matches!(
            decide(failure(true, Some(Duration::from_secs(31))), 0, 3, &p, 0.9),
            Outcome::Fail { .. }
        ));
    }

    #[test]
    fn delays_are_capped_at_max_delay() {
        let p = RetryPolicy::builder()
            .max_attempts(3)
            .no_total_timeout()
            .build()
            .unwrap();
        let forever = Some(Duration::from_secs(u64::MAX));
        assert_eq!(
            decide(failure(true, forever), 0, 3, &p, 0.5),
            Outcome::Retry {
                reason: "boom".into(),
                delay: MAX_DELAY
            }
        );
    }
}
