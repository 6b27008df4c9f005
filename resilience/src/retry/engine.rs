//! The retry loops (async and blocking) and their shared bookkeeping.
//!
//! Both loops are generic over what may cut an attempt short: `Cut` where timeouts apply,
//! `Infallible` where they cannot (`RetryPolicy::run`, the blocking loop). In the latter the
//! type system knows every stop carries an error of the caller's type, so `run` returns `E`
//! without a conversion and without an unreachable branch.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Histogram};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::classify::Retryable;
use super::error::{AttemptFailure, RetryError};
use super::policy::{DeadlineStart, RetryPolicy};
use crate::metrics::{RETRY_ATTEMPTS_COUNT, RETRY_ATTEMPTS_TOTAL};
use crate::timeout::TimeoutError;

/// Why an attempt was cut short.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cut {
    /// The per-attempt timeout (its value).
    Attempt(Duration),
    /// The total deadline (the policy's `total_timeout`).
    Deadline(Duration),
}

/// What may cut an attempt: [`Cut`], or `Infallible` where nothing can.
pub(crate) trait CutLike {
    fn cut(&self) -> Cut;
}

impl CutLike for Cut {
    fn cut(&self) -> Cut {
        *self
    }
}

impl CutLike for Infallible {
    fn cut(&self) -> Cut {
        match *self {}
    }
}

impl Cut {
    fn timeout(self) -> TimeoutError {
        match self {
            Cut::Attempt(after) | Cut::Deadline(after) => TimeoutError { after },
        }
    }
}

/// The failure a sequence stopped on: an error, or a cut with the most recent error before it.
pub(crate) enum Last<E, X> {
    Error(E),
    Cut(X, Option<E>),
}

/// How a sequence stopped.
pub(crate) enum Stop<E, X> {
    NotRetryable {
        attempts: u32,
        error: E,
    },
    Exhausted {
        attempts: u32,
        last: Last<E, X>,
    },
    Deadline {
        attempts: u32,
        total: Duration,
        last: Last<E, X>,
    },
    Cancelled {
        attempts: u32,
        last: Last<E, X>,
    },
}

impl<E, X: CutLike> Stop<E, X> {
    pub(crate) fn into_retry_error(self) -> RetryError<E> {
        match self {
            Stop::NotRetryable { attempts, error } => RetryError::NotRetryable { attempts, error },
            Stop::Exhausted { attempts, last } => match last {
                Last::Error(last_error) => RetryError::Exhausted {
                    attempts,
                    last_error,
                },
                Last::Cut(x, last_error) => match x.cut() {
                    Cut::Attempt(after) => RetryError::AttemptTimeout {
                        attempts,
                        after,
                        last_error,
                    },
                    Cut::Deadline(deadline) => RetryError::Deadline {
                        attempts,
                        deadline,
                        last_error,
                    },
                },
            },
            Stop::Deadline {
                attempts,
                total,
                last,
            } => RetryError::Deadline {
                attempts,
                deadline: total,
                last_error: last.into_error(),
            },
            Stop::Cancelled { attempts, last } => RetryError::Cancelled {
                attempts,
                last_error: last.into_error(),
            },
        }
    }
}

impl<E, X> Last<E, X> {
    fn into_error(self) -> Option<E> {
        match self {
            Last::Error(e) => Some(e),
            Last::Cut(_, e) => e,
        }
    }
}

impl<E> Stop<E, Infallible> {
    /// The caller's own error: the last one an attempt returned.
    pub(crate) fn into_last_error(self) -> E {
        match self {
            Stop::NotRetryable { error, .. } => error,
            Stop::Exhausted { last, .. }
            | Stop::Deadline { last, .. }
            | Stop::Cancelled { last, .. } => match last {
                Last::Error(e) => e,
                Last::Cut(never, _) => match never {},
            },
        }
    }
}

impl<E: From<TimeoutError>> Stop<E, Cut> {
    /// The caller's own error: the last one an attempt returned, or the timeout that cut the
    /// last attempt.
    pub(crate) fn into_error_or_timeout(self) -> E {
        match self {
            Stop::NotRetryable { error, .. } => error,
            Stop::Exhausted { last, .. }
            | Stop::Deadline { last, .. }
            | Stop::Cancelled { last, .. } => match last {
                Last::Error(e) => e,
                Last::Cut(cut, _) => E::from(cut.timeout()),
            },
        }
    }
}

impl<E, X> Stop<E, X> {
    fn outcome(&self) -> &'static str {
        match self {
            Stop::NotRetryable { .. } => "not_retryable",
            Stop::Exhausted { .. } => "exhausted",
            Stop::Deadline { .. } => "deadline",
            Stop::Cancelled { .. } => "cancelled",
        }
    }
    fn attempts(&self) -> u32 {
        match self {
            Stop::NotRetryable { attempts, .. }
            | Stop::Exhausted { attempts, .. }
            | Stop::Deadline { attempts, .. }
            | Stop::Cancelled { attempts, .. } => *attempts,
        }
    }
}

/// Metric handles, resolved once per process on first use (see `crate::metrics`: install the
/// recorder before the first retried call).
struct RetryMetrics {
    success: Counter,
    retry: Counter,
    exhausted: Counter,
    deadline: Counter,
    not_retryable: Counter,
    cancelled: Counter,
    attempts: Histogram,
}

fn retry_metrics() -> &'static RetryMetrics {
    static METRICS: OnceLock<RetryMetrics> = OnceLock::new();
    METRICS.get_or_init(|| RetryMetrics {
        success: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "success"),
        retry: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "retry"),
        exhausted: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "exhausted"),
        deadline: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "deadline"),
        not_retryable: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "not_retryable"),
        cancelled: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "cancelled"),
        attempts: metrics::histogram!(RETRY_ATTEMPTS_COUNT),
    })
}

#[inline]
fn record_success(attempts: u32) {
    let m = retry_metrics();
    m.success.increment(1);
    m.attempts.record(f64::from(attempts));
}

#[cold]
fn record_stop<E, X>(policy: &RetryPolicy, stop: &Stop<E, X>) {
    let m = retry_metrics();
    let (counter, outcome) = match stop {
        Stop::NotRetryable { .. } => (&m.not_retryable, stop.outcome()),
        Stop::Exhausted { .. } => (&m.exhausted, stop.outcome()),
        Stop::Deadline { .. } => (&m.deadline, stop.outcome()),
        Stop::Cancelled { .. } => (&m.cancelled, stop.outcome()),
    };
    counter.increment(1);
    m.attempts.record(f64::from(stop.attempts()));
    match stop {
        Stop::Exhausted { .. } | Stop::Deadline { .. } => tracing::warn!(
            target: "resilience::retry",
            outcome,
            attempts = stop.attempts(),
            max_attempts = policy.max_attempts,
            "giving up"
        ),
        _ => tracing::debug!(
            target: "resilience::retry",
            outcome,
            attempts = stop.attempts(),
            max_attempts = policy.max_attempts,
            "giving up"
        ),
    }
}

#[cold]
fn record_retry(policy: &RetryPolicy, attempt: u32, delay: Duration, timed_out: bool) {
    retry_metrics().retry.increment(1);
    tracing::debug!(
        target: "resilience::retry",
        attempt,
        max_attempts = policy.max_attempts,
        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        timed_out,
        "attempt failed; retrying"
    );
}

/// The jitter draw in `[0, 1)`: the policy's seeded generator, else the thread's.
fn draw(policy: &RetryPolicy, rng: &mut Option<SmallRng>) -> f64 {
    if policy.jitter <= 0.0 {
        return 0.0;
    }
    match rng {
        Some(r) => r.random(),
        None => rand::rng().random(),
    }
}

/// How the async loop runs one attempt.
pub(crate) trait Mode {
    type Cut: CutLike;
    fn attempt<Fut: Future>(
        policy: &RetryPolicy,
        fut: Fut,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<Fut::Output, Self::Cut>>;
}

/// Attempts are cut by the per-attempt timeout and the total deadline.
pub(crate) struct Timed;

impl Mode for Timed {
    type Cut = Cut;
    async fn attempt<Fut: Future>(
        policy: &RetryPolicy,
        fut: Fut,
        deadline: Option<Instant>,
    ) -> Result<Fut::Output, Cut> {
        let per = policy.attempt_timeout.and_then(|d| {
            Instant::now()
                .checked_add(d)
                .map(|at| (at, Cut::Attempt(d)))
        });
        let total = policy.total_timeout.unwrap_or_default();
        let limit = match (per, deadline) {
            (Some((at, cut)), Some(dl)) if at < dl => Some((at, cut)),
            (_, Some(dl)) => Some((dl, Cut::Deadline(total))),
            (per, None) => per,
        };
        match limit {
            None => Ok(fut.await),
            Some((at, cut)) => tokio::time::timeout_at(at, fut).await.map_err(|_| cut),
        }
    }
}

/// Attempts always run to completion (`RetryPolicy::run`).
pub(crate) struct Untimed;

impl Mode for Untimed {
    type Cut = Infallible;
    async fn attempt<Fut: Future>(
        _: &RetryPolicy,
        fut: Fut,
        _: Option<Instant>,
    ) -> Result<Fut::Output, Infallible> {
        Ok(fut.await)
    }
}

/// How a stopped sequence is reported to the caller.
pub(crate) trait Outcome<E, X> {
    type Err;
    fn stop(stop: Stop<E, X>) -> Self::Err;
    /// What to return when the token is already cancelled before the first attempt; `None`
    /// runs the first attempt anyway (when there would be no error of the caller's to return).
    fn cancelled_before_start() -> Option<Self::Err>;
}

/// Reports a [`RetryError`].
pub(crate) struct ToRetryError;

impl<E, X: CutLike> Outcome<E, X> for ToRetryError {
    type Err = RetryError<E>;
    fn stop(stop: Stop<E, X>) -> RetryError<E> {
        stop.into_retry_error()
    }
    fn cancelled_before_start() -> Option<RetryError<E>> {
        Some(RetryError::Cancelled {
            attempts: 0,
            last_error: None,
        })
    }
}

/// Reports the last error the operation returned (nothing can cut an attempt).
pub(crate) struct ToLastError;

impl<E> Outcome<E, Infallible> for ToLastError {
    type Err = E;
    fn stop(stop: Stop<E, Infallible>) -> E {
        stop.into_last_error()
    }
    fn cancelled_before_start() -> Option<E> {
        None
    }
}

/// Reports the last error, or `E::from(TimeoutError)` when the last attempt was cut.
pub(crate) struct ToErrorOrTimeout;

impl<E: From<TimeoutError>> Outcome<E, Cut> for ToErrorOrTimeout {
    type Err = E;
    fn stop(stop: Stop<E, Cut>) -> E {
        stop.into_error_or_timeout()
    }
    fn cancelled_before_start() -> Option<E> {
        None
    }
}

/// The async retry loop: one state machine from the caller's `.await` to the operation's
/// future, with the policy owned (`RetryPolicy`) or borrowed (`&RetryPolicy`).
pub(crate) async fn run_async<P, M, O, F, Fut, T, E>(policy: P, mut f: F) -> Result<T, O::Err>
where
    P: Borrow<RetryPolicy>,
    M: Mode,
    O: Outcome<E, M::Cut>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Retryable + 'static,
{
    let policy = policy.borrow();
    if let Some(token) = &policy.cancel
        && token.is_cancelled()
        && let Some(err) = O::cancelled_before_start()
    {
        return Err(err);
    }
    // Hot path: unless something times the first attempt, it is a plain await — no clock read,
    // no timer, no allocation. The timed first attempt and the rest of the sequence (timers,
    // select, bookkeeping) are boxed: inline, they would make this future several times larger
    // and every call slower to set up and move, for a box that only calls with timers (which
    // read the clock anyway) or failures pay.
    let mut deadline = None;
    let first = if policy.first_attempt_timed() {
        if policy.deadline_start == DeadlineStart::FirstAttempt {
            deadline = policy
                .total_timeout
                .and_then(|t| Instant::now().checked_add(t));
        }
        Box::pin(M::attempt(policy, f(), deadline)).await
    } else {
        Ok(f().await)
    };
    let failure = match first {
        Ok(Ok(v)) => {
            record_success(1);
            return Ok(v);
        }
        Ok(Err(e)) => Failure::Error(e),
        Err(cut) => Failure::Cut(cut),
    };
    let result = Box::pin(retry_after_failure::<M, _, _, _, _>(
        policy, f, failure, deadline,
    ))
    .await;
    result.map_err(|stop| {
        record_stop(policy, &stop);
        O::stop(stop)
    })
}

enum Failure<E, X> {
    Error(E),
    Cut(X),
}

async fn retry_after_failure<M, F, Fut, T, E>(
    policy: &RetryPolicy,
    mut f: F,
    mut failure: Failure<E, M::Cut>,
    mut deadline: Option<Instant>,
) -> Result<T, Stop<E, M::Cut>>
where
    M: Mode,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Retryable + 'static,
{
    let mut attempts = 1u32;
    // The most recent error before the current failure (kept when an attempt is cut).
    let mut prev: Option<E> = None;
    let mut rng = policy.seed.map(SmallRng::seed_from_u64);
    loop {
        // Judge the failure; `current` is what a stop from here on reports.
        let (retry_after, current) = match failure {
            Failure::Error(e) => {
                if !policy.is_retryable(&e) {
                    return Err(Stop::NotRetryable { attempts, error: e });
                }
                if attempts >= policy.max_attempts {
                    return Err(Stop::Exhausted {
                        attempts,
                        last: Last::Error(e),
                    });
                }
                (e.retry_after(), Last::Error(e))
            }
            Failure::Cut(x) => {
                let cut = x.cut();
                let last = Last::Cut(x, prev.take());
                if let Cut::Deadline(total) = cut {
                    return Err(Stop::Deadline {
                        attempts,
                        total,
                        last,
                    });
                }
                if attempts >= policy.max_attempts {
                    return Err(Stop::Exhausted { attempts, last });
                }
                (None, last)
            }
        };

        let delay = match retry_after {
            Some(hint) => hint,
            None => policy.delay(attempts, draw(policy, &mut rng)),
        };
        if let Some(total) = policy.total_timeout {
            let now = Instant::now();
            // Lazily started deadline (DeadlineStart::FirstFailure): counts from here.
            let dl = *deadline.get_or_insert_with(|| now.checked_add(total).unwrap_or(now));
            // A wait that would reach the deadline is not started: no time would be left.
            if now.checked_add(delay).is_none_or(|end| end >= dl) {
                return Err(Stop::Deadline {
                    attempts,
                    total,
                    last: current,
                });
            }
        }

        let view = match &current {
            Last::Error(e) => AttemptFailure::Error(e),
            Last::Cut(x, _) => AttemptFailure::Timeout(x.cut().timeout()),
        };
        record_retry(policy, attempts, delay, view.error().is_none());
        policy.notify(attempts, delay, view);

        match &policy.cancel {
            Some(token) => {
                tokio::select! {
                    biased;
                    () = token.cancelled() => {
                        return Err(Stop::Cancelled { attempts, last: current });
                    }
                    () = sleep(delay) => {}
                }
            }
            None => sleep(delay).await,
        }
        prev = match current {
            Last::Error(e) => Some(e),
            Last::Cut(_, p) => p,
        };

        attempts += 1;
        failure = match M::attempt(policy, f(), deadline).await {
            Ok(Ok(v)) => {
                record_success(attempts);
                return Ok(v);
            }
            Ok(Err(e)) => Failure::Error(e),
            Err(x) => Failure::Cut(x),
        };
    }
}

async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Time for the blocking loop: a real clock and `thread::sleep` by default, injectable in tests.
pub trait BlockingClock {
    /// The current instant.
    fn now(&self) -> std::time::Instant;
    /// Blocks the thread for `d`.
    fn sleep(&self, d: Duration);
}

/// The real clock: `Instant::now()` and `std::thread::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl BlockingClock for SystemClock {
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// The blocking retry loop. Attempts are never cut (a blocking call cannot be interrupted).
pub(crate) fn run_blocking<F, T, E, C>(
    policy: &RetryPolicy,
    mut f: F,
    clock: &C,
) -> Result<T, Stop<E, Infallible>>
where
    F: FnMut() -> Result<T, E>,
    E: Retryable + 'static,
    C: BlockingClock + ?Sized,
{
    let mut deadline = if policy.deadline_start == DeadlineStart::FirstAttempt {
        policy
            .total_timeout
            .and_then(|t| clock.now().checked_add(t))
    } else {
        None
    };
    let mut attempts = 1u32;
    let mut rng = policy.seed.map(SmallRng::seed_from_u64);
    let stop = loop {
        let e = match f() {
            Ok(v) => {
                record_success(attempts);
                return Ok(v);
            }
            Err(e) => e,
        };
        if !policy.is_retryable(&e) {
            break Stop::NotRetryable { attempts, error: e };
        }
        if attempts >= policy.max_attempts {
            break Stop::Exhausted {
                attempts,
                last: Last::Error(e),
            };
        }
        let delay = match e.retry_after() {
            Some(hint) => hint,
            None => policy.delay(attempts, draw(policy, &mut rng)),
        };
        if let Some(total) = policy.total_timeout {
            let now = clock.now();
            let dl = *deadline.get_or_insert_with(|| now.checked_add(total).unwrap_or(now));
            if now.checked_add(delay).is_none_or(|end| end >= dl) {
                break Stop::Deadline {
                    attempts,
                    total,
                    last: Last::Error(e),
                };
            }
        }
        record_retry(policy, attempts, delay, false);
        policy.notify(attempts, delay, AttemptFailure::Error(&e));
        let cancelled = || policy.cancel.as_ref().is_some_and(|t| t.is_cancelled());
        if cancelled() {
            break Stop::Cancelled {
                attempts,
                last: Last::Error(e),
            };
        }
        if !delay.is_zero() {
            clock.sleep(delay);
        }
        if cancelled() {
            break Stop::Cancelled {
                attempts,
                last: Last::Error(e),
            };
        }
        attempts += 1;
    };
    record_stop(policy, &stop);
    Err(stop)
}
