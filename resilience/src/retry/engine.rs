//! The retry loops (async and blocking) and their shared bookkeeping.
//!
//! Both loops are generic over what may cut an attempt short: `Cut` where timeouts apply,
//! `Infallible` where they cannot (`RetryPolicy::run`, the blocking loop). In the latter the
//! type system knows every stop carries an error of the caller's type, so `run` returns `E`
//! without a conversion and without an unreachable branch.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use metrics::{Counter, Histogram};
use pin_project_lite::pin_project;
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
pub enum Cut {
    /// The per-attempt timeout (its value).
    Attempt(Duration),
    /// The total deadline (the policy's `total_timeout`).
    Deadline(Duration),
}

/// What may cut an attempt: [`Cut`], or `Infallible` where nothing can.
pub trait CutLike {
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
    pub(crate) fn timeout(self) -> TimeoutError {
        match self {
            Cut::Attempt(after) | Cut::Deadline(after) => TimeoutError { after },
        }
    }
}

/// The failure a sequence stopped on: an error, or a cut with the most recent error before it.
pub enum Last<E, X> {
    Error(E),
    Cut(X, Option<E>),
}

/// How a sequence stopped.
pub enum Stop<E, X> {
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

/// How the boxed rest of a sequence begins: with a timed first attempt, or after the first
/// attempt's failure.
pub(crate) enum Begin<E, X> {
    Timed,
    After(Failure<E, X>),
}

/// The rest of a sequence, boxed by [`RetryFuture`] when the first attempt needs timers or has
/// failed: everything but the first-try success lives here.
pub(crate) async fn rest<P, M, F, Fut, T, E>(
    policy: P,
    mut f: F,
    begin: Begin<E, M::Cut>,
) -> Result<T, Stop<E, M::Cut>>
where
    P: Borrow<RetryPolicy>,
    M: Mode,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Retryable + 'static,
{
    let policy = policy.borrow();
    let (failure, deadline) = match begin {
        Begin::After(failure) => (failure, None),
        Begin::Timed => {
            let deadline = first_attempt_deadline(policy, Instant::now);
            let failure = match M::attempt(policy, f(), deadline).await {
                Ok(Ok(v)) => {
                    record_success(1);
                    return Ok(v);
                }
                Ok(Err(e)) => Failure::Error(e),
                Err(x) => Failure::Cut(x),
            };
            (failure, deadline)
        }
    };
    retry_after_failure::<M, _, _, _, _>(policy, f, failure, deadline).await
}

pin_project! {
    /// The future of a retried operation. Hand-written rather than an `async fn` so the common
    /// case — an untimed first attempt that succeeds — is one poll of the operation's future in
    /// a small state: the policy is stored once (an `async fn` keeps its argument and its
    /// binding, 304 bytes for an owned policy), and the rest of the sequence is boxed and only
    /// built when a timer or a failure needs it.
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct RetryFuture<P, O, F, Fut, S, Mk> {
        parts: Option<(P, F)>,
        mk: Mk,
        #[pin]
        first: First<Fut>,
        // Apart from `first`, so the first-try path never touches (or drops) the rest's type.
        rest: Option<Pin<Box<S>>>,
        report: PhantomData<fn() -> O>,
    }
}

pin_project! {
    #[project = FirstProj]
    enum First<Fut> {
        Start,
        Running { #[pin] fut: Fut },
        Over,
    }
}

impl<P, O, F, Fut, S, Mk> RetryFuture<P, O, F, Fut, S, Mk> {
    pub(crate) fn new(policy: P, f: F, mk: Mk) -> Self {
        Self {
            parts: Some((policy, f)),
            mk,
            first: First::Start,
            rest: None,
            report: PhantomData,
        }
    }
}

impl<P, O, F, Fut, S, Mk, T, E, X> Future for RetryFuture<P, O, F, Fut, S, Mk>
where
    P: Borrow<RetryPolicy>,
    O: Outcome<E, X>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    S: Future<Output = Result<T, Stop<E, X>>>,
    Mk: Fn(P, F, Begin<E, X>) -> S,
{
    type Output = Result<T, O::Err>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(rest) = this.rest.as_mut() {
                return poll_rest::<_, O, _, _, _>(rest, cx);
            }
            match this.first.as_mut().project() {
                FirstProj::Start => {
                    let Some((policy, f)) = this.parts.as_mut() else {
                        panic!("RetryFuture polled after completion");
                    };
                    let policy = (*policy).borrow();
                    if let Some(token) = &policy.cancel
                        && token.is_cancelled()
                        && let Some(err) = O::cancelled_before_start()
                    {
                        this.first.set(First::Over);
                        this.parts.take();
                        return Poll::Ready(Err(err));
                    }
                    if policy.first_attempt_timed() {
                        this.first.set(First::Over);
                        let Some((policy, f)) = this.parts.take() else {
                            panic!("RetryFuture polled after completion");
                        };
                        *this.rest = Some(boxed_rest(this.mk, policy, f, Begin::Timed));
                    } else {
                        let fut = f();
                        this.first.set(First::Running { fut });
                    }
                }
                FirstProj::Running { fut } => match fut.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(v)) => {
                        record_success(1);
                        this.first.set(First::Over);
                        return Poll::Ready(Ok(v));
                    }
                    Poll::Ready(Err(e)) => {
                        this.first.set(First::Over);
                        let Some((policy, f)) = this.parts.take() else {
                            panic!("RetryFuture polled after completion");
                        };
                        let begin = Begin::After(Failure::Error(e));
                        *this.rest = Some(boxed_rest(this.mk, policy, f, begin));
                    }
                },
                FirstProj::Over => panic!("RetryFuture polled after completion"),
            }
        }
    }
}

/// Polls the rest of the sequence and reports how it stopped (the sequence recorded it):
/// out of line, like [`boxed_rest`].
#[inline(never)]
fn poll_rest<S, O, T, E, X>(fut: &mut Pin<Box<S>>, cx: &mut Context<'_>) -> Poll<Result<T, O::Err>>
where
    S: Future<Output = Result<T, Stop<E, X>>>,
    O: Outcome<E, X>,
{
    fut.as_mut().poll(cx).map(|result| result.map_err(O::stop))
}

/// Builds and boxes the rest of the sequence: out of line, so the first-try path of
/// [`RetryFuture::poll`] stays small enough to inline into the caller.
#[cold]
#[inline(never)]
fn boxed_rest<P, F, S, Mk, E, X>(mk: &Mk, policy: P, f: F, begin: Begin<E, X>) -> Pin<Box<S>>
where
    Mk: Fn(P, F, Begin<E, X>) -> S,
{
    Box::pin(mk(policy, f, begin))
}

/// The async retry loop for `retry`, `RetryPolicy::retry`, `run` and `run_with_timeouts`, with
/// the policy owned (`RetryPolicy`) or borrowed (`&RetryPolicy`).
pub(crate) fn run_async<P, M, O, F, Fut, T, E>(
    policy: P,
    f: F,
) -> impl Future<Output = Result<T, O::Err>>
where
    P: Borrow<RetryPolicy>,
    M: Mode,
    O: Outcome<E, M::Cut>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Retryable + 'static,
{
    RetryFuture::<P, O, F, Fut, _, _>::new(policy, f, rest::<P, M, F, Fut, T, E>)
}

/// What ended an attempt other than success.
pub enum Failure<E, X> {
    Error(E),
    Cut(X),
}

/// How a failed attempt's error is judged: stop, or retry (after the error's own hint, if any).
pub enum Verdict {
    Stop,
    Retry(Option<Duration>),
}

/// The engine's classification: the policy's `retry_if` for `E`, else [`Retryable`], and the
/// error's `Retry-After` hint.
pub(crate) fn classify<E: Retryable + 'static>(policy: &RetryPolicy, e: &E) -> Verdict {
    if policy.is_retryable(e) {
        Verdict::Retry(e.retry_after())
    } else {
        Verdict::Stop
    }
}

/// A point in time for the deadline: tokio's (async loops, paused in tests) or std's (blocking).
pub trait Moment: Copy + Ord {
    fn now() -> Self;
    fn checked_add(self, d: Duration) -> Option<Self>;
}

impl Moment for Instant {
    fn now() -> Self {
        Instant::now()
    }
    fn checked_add(self, d: Duration) -> Option<Self> {
        Instant::checked_add(&self, d)
    }
}

impl Moment for std::time::Instant {
    fn now() -> Self {
        std::time::Instant::now()
    }
    fn checked_add(self, d: Duration) -> Option<Self> {
        std::time::Instant::checked_add(&self, d)
    }
}

/// The deadline when the policy counts it from the first attempt (reads the clock only then);
/// otherwise it starts at the first failure, in [`Sequence::judge`].
fn first_attempt_deadline<I: Moment>(policy: &RetryPolicy, now: impl FnOnce() -> I) -> Option<I> {
    match (policy.total_timeout, policy.deadline_start) {
        (Some(total), DeadlineStart::FirstAttempt) => now().checked_add(total),
        _ => None,
    }
}

/// One retried sequence: which attempt runs, the deadline once known, the jitter generator and
/// the error before the current one. Every loop — async, blocking, and the code `#[retry]`
/// generates — asks it the same two questions: after a failure, wait how long or stop how
/// ([`judge`](Self::judge)); and after the wait, [`resume`](Self::resume).
pub(crate) struct Sequence<'p, E, I> {
    policy: &'p RetryPolicy,
    attempts: u32,
    deadline: Option<I>,
    rng: Option<SmallRng>,
    /// The most recent error before the current failure (kept when an attempt is cut).
    prev: Option<E>,
}

impl<'p, E: 'static, I: Moment> Sequence<'p, E, I> {
    /// A sequence whose first attempt runs now; `deadline` when it is already known.
    #[inline]
    pub(crate) fn new(policy: &'p RetryPolicy, deadline: Option<I>) -> Self {
        Self {
            policy,
            attempts: 1,
            deadline,
            rng: None,
            prev: None,
        }
    }

    /// A sequence for a caller without a deadline of its own: starts it now when the policy
    /// counts the deadline from the first attempt (reads the clock only then).
    #[inline]
    pub(crate) fn starting_now(policy: &'p RetryPolicy) -> Self {
        Self::new(policy, first_attempt_deadline(policy, I::now))
    }

    pub(crate) fn policy(&self) -> &'p RetryPolicy {
        self.policy
    }

    /// The attempt running (1-based).
    pub(crate) fn attempt(&self) -> u32 {
        self.attempts
    }

    /// The deadline, once known.
    pub(crate) fn deadline(&self) -> Option<I> {
        self.deadline
    }

    /// Records a success of the current attempt.
    #[inline]
    pub(crate) fn succeeded(&self) {
        record_success(self.attempts);
    }

    /// After a failed attempt: the wait before the next one, with the failure a later stop
    /// reports (recorded and told to `on_retry`), or how the sequence stops (recorded).
    pub(crate) fn judge<X: CutLike>(
        &mut self,
        failure: Failure<E, X>,
        verdict: impl FnOnce(&E) -> Verdict,
        now: impl FnOnce() -> I,
    ) -> Result<(Duration, Last<E, X>), Stop<E, X>> {
        let result = self.decide(failure, verdict, now);
        match &result {
            Ok((delay, current)) => {
                let view = match current {
                    Last::Error(e) => AttemptFailure::Error(e),
                    Last::Cut(x, _) => AttemptFailure::Timeout(x.cut().timeout()),
                };
                record_retry(self.policy, self.attempts, *delay, view.error().is_none());
                self.policy.notify(self.attempts, *delay, view);
            }
            Err(stop) => record_stop(self.policy, stop),
        }
        result
    }

    fn decide<X: CutLike>(
        &mut self,
        failure: Failure<E, X>,
        verdict: impl FnOnce(&E) -> Verdict,
        now: impl FnOnce() -> I,
    ) -> Result<(Duration, Last<E, X>), Stop<E, X>> {
        let policy = self.policy;
        let attempts = self.attempts;
        let (hint, current) = match failure {
            Failure::Error(e) => {
                let Verdict::Retry(hint) = verdict(&e) else {
                    return Err(Stop::NotRetryable { attempts, error: e });
                };
                if attempts >= policy.max_attempts {
                    return Err(Stop::Exhausted {
                        attempts,
                        last: Last::Error(e),
                    });
                }
                (hint, Last::Error(e))
            }
            Failure::Cut(x) => {
                let cut = x.cut();
                let last = Last::Cut(x, self.prev.take());
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
        let delay = match hint {
            Some(hint) => hint,
            None => policy.delay(attempts, self.draw()),
        };
        if let Some(total) = policy.total_timeout {
            let now = now();
            // Lazily started deadline (DeadlineStart::FirstFailure): counts from here.
            let dl = *self
                .deadline
                .get_or_insert_with(|| now.checked_add(total).unwrap_or(now));
            // A wait that would reach the deadline is not started: no time would be left.
            if now.checked_add(delay).is_none_or(|end| end >= dl) {
                return Err(Stop::Deadline {
                    attempts,
                    total,
                    last: current,
                });
            }
        }
        Ok((delay, current))
    }

    /// The jitter draw in `[0, 1)`: the policy's seeded generator (made on first use), else
    /// the thread's.
    fn draw(&mut self) -> f64 {
        let policy = self.policy;
        if policy.jitter <= 0.0 {
            return 0.0;
        }
        match policy.seed {
            Some(seed) => self
                .rng
                .get_or_insert_with(|| SmallRng::seed_from_u64(seed))
                .random(),
            None => rand::rng().random(),
        }
    }

    /// The wait was cut by the policy's cancellation token (recorded).
    pub(crate) fn cancelled<X>(&self, current: Last<E, X>) -> Stop<E, X> {
        let stop = Stop::Cancelled {
            attempts: self.attempts,
            last: current,
        };
        record_stop(self.policy, &stop);
        stop
    }

    /// After the wait: the next attempt begins.
    pub(crate) fn resume<X>(&mut self, current: Last<E, X>) {
        self.prev = match current {
            Last::Error(e) => Some(e),
            Last::Cut(_, p) => p,
        };
        self.attempts += 1;
    }

    /// Waits `delay` unless the policy's token is cancelled first: `false` when cancelled.
    pub(crate) async fn wait(&self, delay: Duration) -> bool {
        match &self.policy.cancel {
            Some(token) => {
                tokio::select! {
                    biased;
                    () = token.cancelled() => false,
                    () = sleep(delay) => true,
                }
            }
            None => {
                sleep(delay).await;
                true
            }
        }
    }

    /// [`wait`](Self::wait) for a thread: the token is seen before and after the sleep.
    pub(crate) fn wait_blocking<C: BlockingClock + ?Sized>(
        &self,
        delay: Duration,
        clock: &C,
    ) -> bool {
        let cancelled = || {
            self.policy
                .cancel
                .as_ref()
                .is_some_and(|t| t.is_cancelled())
        };
        if cancelled() {
            return false;
        }
        if !delay.is_zero() {
            clock.sleep(delay);
        }
        !cancelled()
    }
}

async fn retry_after_failure<M, F, Fut, T, E>(
    policy: &RetryPolicy,
    mut f: F,
    mut failure: Failure<E, M::Cut>,
    deadline: Option<Instant>,
) -> Result<T, Stop<E, M::Cut>>
where
    M: Mode,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Retryable + 'static,
{
    let mut seq = Sequence::new(policy, deadline);
    loop {
        let (delay, current) = seq.judge(failure, |e| classify(policy, e), Instant::now)?;
        if !seq.wait(delay).await {
            return Err(seq.cancelled(current));
        }
        seq.resume(current);
        failure = match M::attempt(policy, f(), seq.deadline()).await {
            Ok(Ok(v)) => {
                seq.succeeded();
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
    let mut seq = Sequence::new(policy, first_attempt_deadline(policy, || clock.now()));
    loop {
        let e = match f() {
            Ok(v) => {
                seq.succeeded();
                return Ok(v);
            }
            Err(e) => e,
        };
        let failure = Failure::<_, Infallible>::Error(e);
        let (delay, current) = seq.judge(failure, |e| classify(policy, e), || clock.now())?;
        if !seq.wait_blocking(delay, clock) {
            return Err(seq.cancelled(current));
        }
        seq.resume(current);
    }
}
