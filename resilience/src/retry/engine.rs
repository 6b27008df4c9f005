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
use std::task::{Context, Poll};
use std::time::Duration;

use metrics::SharedString;
use pin_project_lite::pin_project;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, Sleep};

use super::classify::Retryable;
use super::error::{AttemptFailure, RetryError};
use super::policy::{DeadlineStart, RetryPolicy};
use crate::metrics::lazy::{NamedHistogram, OutcomeCounters, UNNAMED};
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
pub trait CutLike: Copy {
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

/// The `outcome` labels of [`RETRY_ATTEMPTS_TOTAL`], by index.
const OUTCOMES: [&str; 6] = [
    "success",
    "retry",
    "exhausted",
    "deadline",
    "not_retryable",
    "cancelled",
];
const SUCCESS: usize = 0;
const RETRY: usize = 1;
const EXHAUSTED: usize = 2;
const DEADLINE: usize = 3;
const NOT_RETRYABLE: usize = 4;
const CANCELLED: usize = 5;

/// The metric handles of one policy name, each registered on first use (see
/// `crate::metrics`).
pub(crate) struct RetryMetrics {
    outcomes: OutcomeCounters<6>,
    attempts: NamedHistogram,
}

impl RetryMetrics {
    /// The handles of the policy `name`.
    pub(crate) fn new(name: SharedString) -> Self {
        Self {
            attempts: NamedHistogram::new(RETRY_ATTEMPTS_COUNT, name.clone()),
            outcomes: OutcomeCounters::new(RETRY_ATTEMPTS_TOTAL, name, &OUTCOMES),
        }
    }

    const fn unnamed() -> Self {
        Self {
            outcomes: OutcomeCounters::new_static(RETRY_ATTEMPTS_TOTAL, UNNAMED, &OUTCOMES),
            attempts: NamedHistogram::new_static(RETRY_ATTEMPTS_COUNT, UNNAMED),
        }
    }

    /// The policy's name, as the metrics' `name` label carries it.
    pub(crate) fn name(&self) -> &str {
        self.outcomes.name()
    }
}

/// Shared by every policy built without a name.
static UNNAMED_METRICS: RetryMetrics = RetryMetrics::unnamed();

#[inline]
fn retry_metrics(policy: &RetryPolicy) -> &RetryMetrics {
    policy.metrics().unwrap_or(&UNNAMED_METRICS)
}

#[inline]
fn record_success(policy: &RetryPolicy, attempts: u32) {
    let m = retry_metrics(policy);
    m.outcomes.increment(SUCCESS);
    m.attempts.get().record(f64::from(attempts));
}

#[cold]
fn record_stop<E, X>(policy: &RetryPolicy, stop: &Stop<E, X>) {
    let m = retry_metrics(policy);
    let (index, outcome) = match stop {
        Stop::NotRetryable { .. } => (NOT_RETRYABLE, stop.outcome()),
        Stop::Exhausted { .. } => (EXHAUSTED, stop.outcome()),
        Stop::Deadline { .. } => (DEADLINE, stop.outcome()),
        Stop::Cancelled { .. } => (CANCELLED, stop.outcome()),
    };
    m.outcomes.increment(index);
    m.attempts.get().record(f64::from(stop.attempts()));
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
    retry_metrics(policy).outcomes.increment(RETRY);
    tracing::debug!(
        target: "resilience::retry",
        attempt,
        max_attempts = policy.max_attempts,
        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        timed_out,
        "attempt failed; retrying"
    );
}

/// What may cut the async loop's attempts: the per-attempt timeout and the total deadline
/// ([`Timed`]), or nothing ([`Untimed`]).
pub(crate) trait Mode {
    type Cut: CutLike;
    /// Whether attempts may be cut (a timer is armed only then).
    const CUTS: bool;
    /// The cut as this mode reports it (`None` where nothing may cut).
    fn cut(cut: Cut) -> Option<Self::Cut>;
}

/// Attempts are cut by the per-attempt timeout and the total deadline.
pub(crate) struct Timed;

impl Mode for Timed {
    type Cut = Cut;
    const CUTS: bool = true;
    fn cut(cut: Cut) -> Option<Cut> {
        Some(cut)
    }
}

/// Attempts always run to completion (`RetryPolicy::run`, the tower layer).
pub(crate) struct Untimed;

impl Mode for Untimed {
    type Cut = Infallible;
    const CUTS: bool = false;
    fn cut(_: Cut) -> Option<Infallible> {
        None
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

/// The rest of a sequence after its first attempt failed (or was cut), boxed by
/// [`RetryFuture`]: everything but the first-try success lives here. `deadline` is the
/// sequence's deadline as the first attempt left it.
pub(crate) async fn rest<P, M, F, Fut, T, E>(
    policy: P,
    mut f: F,
    mut failure: Failure<E, M::Cut>,
    deadline: Deadline<Instant>,
) -> Result<T, Stop<E, M::Cut>>
where
    P: Borrow<RetryPolicy>,
    M: Mode,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Retryable + 'static,
{
    let policy = policy.borrow();
    let mut seq = Sequence::new(policy, deadline);
    loop {
        let (delay, current) = seq.judge(failure, |e| classify(policy, e), Instant::now)?;
        if !seq.wait(delay).await {
            return Err(seq.cancelled(current));
        }
        seq.resume(current);
        failure = match seq.attempt::<M, _>(f()).await {
            Ok(Ok(v)) => {
                seq.succeeded();
                return Ok(v);
            }
            Ok(Err(e)) => Failure::Error(e),
            Err(x) => Failure::Cut(x),
        };
    }
}

pin_project! {
    /// The future of a retried operation. Hand-written rather than an `async fn` so the common
    /// case — a first attempt ready on its first poll — is one poll of the operation's future
    /// in a small state: the policy is stored once (an `async fn` keeps its argument and its
    /// binding, 304 bytes for an owned policy), no clock is read and no timer armed (that waits
    /// for the first `Pending`, see [`watch_pending`]), and the rest of the sequence is boxed
    /// and only built when the first attempt fails or is cut.
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct RetryFuture<P, M, O, F, Fut, S, Mk>
    where
        M: Mode,
    {
        parts: Option<(P, F)>,
        mk: Mk,
        #[pin]
        first: First<Fut>,
        // The first attempt's clock, apart from `first` so that its enum stays a plain one
        // (a niche-encoded discriminant costs instructions on every state check).
        deadline: Deadline<Instant>,
        // The first attempt's timer, then the rest of the sequence: one field, so that a
        // first-try success drops one empty slot (two made the compiler call both drops out of
        // line). Apart from `first`, so the first-try path never touches the rest's type.
        later: Later<S, M::Cut>,
        report: PhantomData<fn() -> O>,
    }
}

/// What follows the first poll: nothing yet, the first attempt's timer, or the rest.
pub(crate) enum Later<S, X> {
    Empty,
    Timer(Pin<Box<Timer<X>>>),
    Rest(Pin<Box<S>>),
}

impl<S, X: Copy> Later<S, X> {
    /// [`watch_pending`] with the timer kept in this slot.
    #[inline(never)]
    fn watch_pending<M: Mode<Cut = X>>(
        &mut self,
        policy: &RetryPolicy,
        deadline: &mut Deadline<Instant>,
        cx: &mut Context<'_>,
    ) -> Poll<X> {
        let mut timer = match self {
            Later::Empty => None,
            Later::Timer(_) => match std::mem::replace(self, Later::Empty) {
                Later::Timer(timer) => Some(timer),
                Later::Empty | Later::Rest(_) => None,
            },
            // Not while the first attempt runs: the rest starts after it.
            Later::Rest(_) => return Poll::Pending,
        };
        let poll = watch_pending::<M>(policy, deadline, &mut timer, cx);
        if let (Poll::Pending, Some(timer)) = (&poll, timer) {
            *self = Later::Timer(timer);
        }
        poll
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

impl<P, M: Mode, O, F, Fut, S, Mk> RetryFuture<P, M, O, F, Fut, S, Mk> {
    pub(crate) fn new(policy: P, f: F, mk: Mk) -> Self {
        Self {
            parts: Some((policy, f)),
            mk,
            first: First::Start,
            deadline: Deadline::Unstarted,
            later: Later::Empty,
            report: PhantomData,
        }
    }
}

impl<P, M, O, F, Fut, S, Mk, T, E> Future for RetryFuture<P, M, O, F, Fut, S, Mk>
where
    P: Borrow<RetryPolicy>,
    M: Mode,
    O: Outcome<E, M::Cut>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    S: Future<Output = Result<T, Stop<E, M::Cut>>>,
    Mk: Fn(P, F, Failure<E, M::Cut>, Deadline<Instant>) -> S,
{
    type Output = Result<T, O::Err>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Later::Rest(rest) = this.later {
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
                    let fut = f();
                    this.first.set(First::Running { fut });
                }
                FirstProj::Running { fut } => {
                    let failure = match fut.poll(cx) {
                        Poll::Ready(Ok(v)) => {
                            if let Some((policy, _)) = this.parts.as_ref() {
                                record_success((*policy).borrow(), 1);
                            }
                            this.first.set(First::Over);
                            return Poll::Ready(Ok(v));
                        }
                        Poll::Ready(Err(e)) => Failure::Error(e),
                        Poll::Pending => {
                            let Some((policy, _)) = this.parts.as_ref() else {
                                panic!("RetryFuture polled after completion");
                            };
                            match this.later.watch_pending::<M>(
                                (*policy).borrow(),
                                this.deadline,
                                cx,
                            ) {
                                Poll::Pending => return Poll::Pending,
                                Poll::Ready(cut) => Failure::Cut(cut),
                            }
                        }
                    };
                    let deadline = *this.deadline;
                    // Drops the first attempt (cut or over) and its timer before the rest starts.
                    this.first.set(First::Over);
                    let Some((policy, f)) = this.parts.take() else {
                        panic!("RetryFuture polled after completion");
                    };
                    *this.later = Later::Rest(boxed_rest(this.mk, policy, f, failure, deadline));
                }
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
fn boxed_rest<P, F, S, Mk, E, X, I>(
    mk: &Mk,
    policy: P,
    f: F,
    failure: Failure<E, X>,
    deadline: Deadline<I>,
) -> Pin<Box<S>>
where
    Mk: Fn(P, F, Failure<E, X>, Deadline<I>) -> S,
{
    Box::pin(mk(policy, f, failure, deadline))
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
    RetryFuture::<P, M, O, F, Fut, _, _>::new(policy, f, rest::<P, M, F, Fut, T, E>)
}

/// The total deadline of one sequence, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline<I> {
    /// Not started yet: it starts when the first attempt is first seen running (its first
    /// `Pending`, or before it for a blocking loop) under [`DeadlineStart::FirstAttempt`], and
    /// at the first failure otherwise.
    Unstarted,
    /// There is none (no total timeout).
    Never,
    /// The instant the sequence must end by.
    At(I),
}

impl<I: Moment> Deadline<I> {
    /// Starts an unstarted deadline at `now` (read only then, and only with a total timeout);
    /// returns the deadline.
    #[inline]
    pub(crate) fn start(&mut self, policy: &RetryPolicy, now: impl FnOnce() -> I) -> Option<I> {
        if let Deadline::Unstarted = self {
            *self = match policy.total_timeout {
                // An instant past the clock's range is as good as none (the builder already
                // turns totals of decades into none).
                Some(total) => now()
                    .checked_add(total)
                    .map_or(Deadline::Never, Deadline::At),
                None => Deadline::Never,
            };
        }
        self.at()
    }

    /// Starts the deadline now if the policy counts it from the first attempt and it has not
    /// started yet (the clock is read only then).
    #[inline]
    pub(crate) fn start_with_attempt(&mut self, policy: &RetryPolicy, now: impl FnOnce() -> I) {
        if let Deadline::Unstarted = self
            && policy.deadline_start == DeadlineStart::FirstAttempt
            && policy.total_timeout.is_some()
        {
            self.start(policy, now);
        }
    }

    /// The deadline, if started and finite.
    pub(crate) fn at(self) -> Option<I> {
        match self {
            Deadline::At(at) => Some(at),
            Deadline::Unstarted | Deadline::Never => None,
        }
    }
}

pin_project! {
    /// The timer cutting one attempt at its per-attempt timeout or the total deadline.
    pub(crate) struct Timer<X> {
        #[pin]
        sleep: Sleep,
        cut: X,
    }
}

/// After an attempt's poll returned `Pending` — the one place every async loop reads the clock
/// for an attempt. On the first `Pending` it starts the sequence's deadline (if the policy
/// counts it from the first attempt) and, where `M` cuts attempts, arms one timer at the earlier
/// of the per-attempt timeout and the deadline; then it polls that timer: `Ready` with the cut
/// when it fired.
///
/// Why the first `Pending` and not the attempt's start: an attempt ready on its first poll needs
/// no deadline, and skipping the clock read (~29 ns for `Instant::now()`, ~12 ns for the TSC
/// here) and the timer keeps the first-try path at a few nanoseconds. The time is tokio's (the
/// timers' own clock, so paused-clock tests are exact); what the first poll spent blocking its
/// thread before returning `Pending` is not counted (an async operation should not block).
#[inline(never)]
pub(crate) fn watch_pending<M: Mode>(
    policy: &RetryPolicy,
    deadline: &mut Deadline<Instant>,
    timer: &mut Option<Pin<Box<Timer<M::Cut>>>>,
    cx: &mut Context<'_>,
) -> Poll<M::Cut> {
    // Until a timer is armed this runs on each `Pending`; after the first it finds nothing to
    // do without reading the clock (the deadline has started or never will for this attempt,
    // and a per-attempt timeout would have armed the timer).
    if timer.is_none() {
        *timer = arm::<M>(policy, deadline);
    }
    match timer {
        Some(timer) => {
            let timer = timer.as_mut().project();
            match timer.sleep.poll(cx) {
                Poll::Ready(()) => Poll::Ready(*timer.cut),
                Poll::Pending => Poll::Pending,
            }
        }
        None => Poll::Pending,
    }
}

/// At an attempt's first `Pending`: starts the deadline if it counts from the first attempt,
/// and returns the timer for the earlier of the per-attempt timeout and the deadline, if `M`
/// cuts attempts and either applies.
fn arm<M: Mode>(
    policy: &RetryPolicy,
    deadline: &mut Deadline<Instant>,
) -> Option<Pin<Box<Timer<M::Cut>>>> {
    let mut now = None;
    let mut read = || *now.get_or_insert_with(Instant::now);
    deadline.start_with_attempt(policy, &mut read);
    if !M::CUTS {
        return None;
    }
    let per = policy
        .attempt_timeout
        .and_then(|d| read().checked_add(d).map(|at| (at, Cut::Attempt(d))));
    let total = deadline
        .at()
        .map(|at| (at, Cut::Deadline(policy.total_timeout.unwrap_or_default())));
    let (at, cut) = match (per, total) {
        (Some(per), Some(total)) => {
            if per.0 < total.0 {
                per
            } else {
                total
            }
        }
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => return None,
    };
    let cut = M::cut(cut)?;
    Some(Box::pin(Timer {
        sleep: tokio::time::sleep_until(at),
        cut,
    }))
}

pin_project! {
    /// One attempt of a sequence under its clock (see [`watch_pending`]): `Err` with the cut
    /// when a timer ended it.
    pub(crate) struct Attempt<'s, M, Fut>
    where
        M: Mode,
    {
        #[pin]
        fut: Fut,
        policy: &'s RetryPolicy,
        deadline: &'s mut Deadline<Instant>,
        timer: Option<Pin<Box<Timer<M::Cut>>>>,
    }
}

impl<M: Mode, Fut: Future> Future for Attempt<'_, M, Fut> {
    type Output = Result<Fut::Output, M::Cut>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.fut.poll(cx) {
            Poll::Ready(v) => Poll::Ready(Ok(v)),
            Poll::Pending => {
                watch_pending::<M>(this.policy, this.deadline, this.timer, cx).map(Err)
            }
        }
    }
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
    fn checked_add(self, d: Duration) -> Option<Self>;
}

impl Moment for Instant {
    fn checked_add(self, d: Duration) -> Option<Self> {
        Instant::checked_add(&self, d)
    }
}

impl Moment for std::time::Instant {
    fn checked_add(self, d: Duration) -> Option<Self> {
        std::time::Instant::checked_add(&self, d)
    }
}

/// One retried sequence: which attempt runs, its deadline, the jitter generator and the error
/// before the current one. Every loop — async, blocking, and the code `#[retry]` generates —
/// runs its attempts through it ([`attempt`](Self::attempt) or
/// [`before_blocking_attempt`](Self::before_blocking_attempt), which start the deadline) and
/// asks it the same two questions: after a failure, wait how long or stop how
/// ([`judge`](Self::judge)); and after the wait, [`resume`](Self::resume).
pub(crate) struct Sequence<'p, E, I> {
    policy: &'p RetryPolicy,
    attempts: u32,
    deadline: Deadline<I>,
    rng: Option<SmallRng>,
    /// The most recent error before the current failure (kept when an attempt is cut).
    prev: Option<E>,
}

impl<'p, E: 'static, I: Moment> Sequence<'p, E, I> {
    /// A sequence whose first attempt runs now (`Deadline::Unstarted`) or has run.
    #[inline]
    pub(crate) fn new(policy: &'p RetryPolicy, deadline: Deadline<I>) -> Self {
        Self {
            policy,
            attempts: 1,
            deadline,
            rng: None,
            prev: None,
        }
    }

    pub(crate) fn policy(&self) -> &'p RetryPolicy {
        self.policy
    }

    /// The attempt running (1-based).
    pub(crate) fn attempt_number(&self) -> u32 {
        self.attempts
    }

    /// Before an attempt of a blocking loop, which cannot see it running: starts the deadline
    /// now if it counts from the first attempt (reads the clock only then, once).
    #[inline]
    pub(crate) fn before_blocking_attempt(&mut self, now: impl FnOnce() -> I) {
        self.deadline.start_with_attempt(self.policy, now);
    }

    /// Records a success of the current attempt.
    #[inline]
    pub(crate) fn succeeded(&self) {
        record_success(self.policy, self.attempts);
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
        if let Some(total) = policy.total_timeout
            && self.deadline != Deadline::Never
        {
            let now = now();
            // Not started yet (DeadlineStart::FirstFailure, or a first attempt that failed on its
            // first poll): it counts from here.
            // A wait that would reach the deadline is not started: no time would be left.
            if let Some(dl) = self.deadline.start(policy, || now)
                && now.checked_add(delay).is_none_or(|end| end >= dl)
            {
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

impl<E: 'static> Sequence<'_, E, Instant> {
    /// Runs one attempt under the sequence's clock: the deadline starts at the first attempt's
    /// first `Pending` (if it counts from the first attempt), and where `M` cuts attempts a timer
    /// ends the attempt at its timeout or the deadline.
    #[inline]
    pub(crate) fn attempt<M: Mode, Fut: Future>(&mut self, fut: Fut) -> Attempt<'_, M, Fut> {
        Attempt {
            fut,
            policy: self.policy,
            deadline: &mut self.deadline,
            timer: None,
        }
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
    let mut seq = Sequence::new(policy, Deadline::Unstarted);
    loop {
        seq.before_blocking_attempt(|| clock.now());
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
