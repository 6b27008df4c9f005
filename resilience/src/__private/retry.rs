//! `#[retry]`: the policy cell and the per-attempt steps.
//!
//! The generated code keeps the loop (so each attempt re-borrows `&self` / `&mut self` and
//! clones the arguments inline) and asks the retry engine's [`Sequence`] what to do after each
//! failure: the same classification, `Retry-After` hints, backoff, deadline, cancellation,
//! metrics and events as `retry()` / `RetryPolicy::run`.

use std::convert::Infallible;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use super::{FromTimeout, Outcome, rejected_at_runtime};
use crate::retry::RetryService;
use crate::retry::engine::{
    Attempt as EngineAttempt, Cut, CutLike, Deadline, Failure, Last, Moment, Sequence, Stop,
    SystemClock, Timed, Untimed, Verdict, classify,
};
use crate::retry::{AttemptFailure, Backoff, RetryEvent, RetryPolicy, RetryPreset, Retryable};

/// Where a `#[retry]` function's policy comes from.
pub enum RetrySource {
    /// `#[retry]`: `RetryPolicy::default()`.
    Default,
    /// `#[retry(preset = "...")]`.
    Preset(RetryPreset),
    /// `#[retry(max_attempts = ..., ...)]`: the default policy with these numbers changed.
    Custom(RetrySpec),
    /// `#[retry(service = "...")]`.
    Service(RetryService),
}

/// The numbers given to `#[retry]`; `None` keeps the default's.
pub struct RetrySpec {
    pub max_attempts: Option<u32>,
    pub initial_delay_ms: Option<u64>,
    pub max_delay_ms: Option<u64>,
    pub backoff: Option<Backoff>,
    pub total_timeout_ms: Option<u64>,
}

/// The policy of one `#[retry]` function, built on first use (a `static` in the generated body).
pub struct RetryCell {
    source: RetrySource,
    attempt_timeout_ms: Option<u64>,
    name: Option<&'static str>,
    policy: OnceLock<RetryPolicy>,
}

impl RetryCell {
    pub const fn new(source: RetrySource, attempt_timeout_ms: Option<u64>) -> Self {
        Self {
            source,
            attempt_timeout_ms,
            name: None,
            policy: OnceLock::new(),
        }
    }

    /// Names the policy (its metrics' `name` label): the function's path.
    pub const fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    #[inline]
    pub fn get(&self) -> &RetryPolicy {
        self.policy.get_or_init(|| self.build())
    }

    #[cold]
    fn build(&self) -> RetryPolicy {
        let mut builder = match &self.source {
            RetrySource::Default => RetryPolicy::builder(),
            RetrySource::Preset(preset) => preset.builder(),
            RetrySource::Service(service) => service.builder(),
            RetrySource::Custom(spec) => {
                let mut b = RetryPolicy::builder();
                if let Some(n) = spec.max_attempts {
                    b = b.max_attempts(n);
                }
                if let Some(ms) = spec.initial_delay_ms {
                    b = b.initial_delay(Duration::from_millis(ms));
                }
                if let Some(ms) = spec.max_delay_ms {
                    b = b.max_delay(Duration::from_millis(ms));
                }
                if let Some(backoff) = spec.backoff {
                    b = b.backoff(backoff);
                }
                if let Some(ms) = spec.total_timeout_ms {
                    b = b.total_timeout(Duration::from_millis(ms));
                }
                b
            }
        };
        if let Some(ms) = self.attempt_timeout_ms {
            builder = builder.attempt_timeout(Duration::from_millis(ms));
        }
        if let Some(name) = self.name {
            builder = builder.name(name);
        }
        match builder.build() {
            Ok(policy) => policy,
            Err(error) => rejected_at_runtime("#[retry]", &error),
        }
    }
}

/// The error type of a `#[retry]` function without `retry_if`: classified by [`Retryable`].
#[diagnostic::on_unimplemented(
    message = "`#[retry]` needs to know which `{Self}` errors are worth retrying",
    label = "`{Self}` does not implement `resilience::retry::Retryable`",
    note = "implement `resilience::retry::Retryable` for `{Self}` (its `retry_after` may also carry a Retry-After hint), or give `#[retry(retry_if = path::to::predicate)]` with a `fn(&{Self}) -> bool`"
)]
pub trait RetryableError: 'static {
    fn verdict(&self, policy: &RetryPolicy) -> Verdict;
}

#[diagnostic::do_not_recommend]
impl<E: Retryable + 'static> RetryableError for E {
    #[inline]
    fn verdict(&self, policy: &RetryPolicy) -> Verdict {
        classify(policy, self)
    }
}

/// The state of one `#[retry]` call: the engine's sequence over the function's error type, on
/// tokio's clock (async) or std's (sync).
pub struct RetryLoop<E, I> {
    seq: Sequence<'static, E, I>,
}

impl<E: 'static, I: Moment> RetryLoop<E, I> {
    /// The deadline starts with the first attempt (`attempt`, `timed_attempt`,
    /// `blocking_attempt`), as in the engine's own loops.
    #[inline]
    pub fn new(policy: &'static RetryPolicy) -> Self {
        Self {
            seq: Sequence::new(policy, Deadline::Unstarted),
        }
    }
}

/// The `Ok` and `Err` types of an attempt's result.
type OkOf<A> = <<A as AttemptOutcome>::R as Outcome>::Ok;
type ErrOf<A> = <<A as AttemptOutcome>::R as Outcome>::Err;
/// After a failed attempt: the wait, and the failure to report if the sequence stops later.
type Wait<A> = (Duration, Last<ErrOf<A>, <A as AttemptOutcome>::Cut>);

/// What one attempt produced: the function's result, or (with `attempt_timeout_ms`) a cut.
pub trait AttemptOutcome {
    type R: Outcome;
    type Cut: crate::retry::engine::CutLike;
    fn split(self) -> Result<OkOf<Self>, Failure<ErrOf<Self>, Self::Cut>>;
    fn give_up(stop: Stop<<Self::R as Outcome>::Err, Self::Cut>) -> Self::R;
}

/// An attempt nothing could cut.
pub struct Plain<R>(pub R);

impl<R: Outcome> AttemptOutcome for Plain<R> {
    type R = R;
    type Cut = Infallible;
    #[inline(always)]
    fn split(self) -> Result<R::Ok, Failure<R::Err, Infallible>> {
        self.0.into_result().map_err(Failure::Error)
    }
    fn give_up(stop: Stop<R::Err, Infallible>) -> R {
        R::from_result(Err(stop.into_last_error()))
    }
}

/// An attempt run under the per-attempt timeout and the total deadline.
pub struct TimedOutcome<R>(Result<R, Cut>);

impl<R> AttemptOutcome for TimedOutcome<R>
where
    R: Outcome,
    R::Err: FromTimeout,
{
    type R = R;
    type Cut = Cut;
    #[inline]
    fn split(self) -> Result<R::Ok, Failure<R::Err, Cut>> {
        match self.0 {
            Ok(outcome) => outcome.into_result().map_err(Failure::Error),
            Err(cut) => Err(Failure::Cut(cut)),
        }
    }
    fn give_up(stop: Stop<R::Err, Cut>) -> R {
        let error = match stop {
            Stop::NotRetryable { error, .. } => error,
            Stop::Exhausted { last, .. }
            | Stop::Deadline { last, .. }
            | Stop::Cancelled { last, .. } => match last {
                Last::Error(e) => e,
                Last::Cut(cut, _) => R::Err::from_timeout(cut.timeout()),
            },
        };
        R::from_result(Err(error))
    }
}

/// Runs one attempt of an async function that nothing cuts, under the sequence's clock (the
/// deadline starts at the first attempt's first `Pending`, as in `RetryPolicy::run`).
#[inline]
pub fn attempt<E, Fut>(
    state: &mut RetryLoop<E, tokio::time::Instant>,
    attempt: Fut,
) -> PlainAttempt<'_, Fut>
where
    E: 'static,
    Fut: Future,
    Fut::Output: Outcome,
{
    PlainAttempt {
        inner: state.seq.attempt::<Untimed, _>(attempt),
    }
}

pin_project! {
    /// The future of [`attempt`]: hand-written rather than an `async fn`, which would add a
    /// state machine around the engine's attempt on the attribute's first-try path.
    #[must_use = "futures do nothing unless polled"]
    pub struct PlainAttempt<'s, Fut> {
        #[pin]
        inner: EngineAttempt<'s, Untimed, Fut>,
    }
}

impl<Fut: Future> Future for PlainAttempt<'_, Fut> {
    type Output = Plain<Fut::Output>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(|outcome| match outcome {
            Ok(outcome) => Plain(outcome),
            Err(never) => match never {},
        })
    }
}

/// Runs one attempt of a sync function: the deadline starts before the first (a blocking call
/// cannot be watched while it runs).
#[inline]
pub fn blocking_attempt<E, R>(
    state: &mut RetryLoop<E, std::time::Instant>,
    attempt: impl FnOnce() -> R,
) -> Plain<R>
where
    E: 'static,
{
    state.seq.before_blocking_attempt(std::time::Instant::now);
    Plain(attempt())
}

/// Runs one attempt under the policy's per-attempt timeout and the sequence's deadline.
#[inline]
pub async fn timed_attempt<E, Fut>(
    state: &mut RetryLoop<E, tokio::time::Instant>,
    attempt: Fut,
) -> TimedOutcome<Fut::Output>
where
    E: 'static,
    Fut: Future,
    Fut::Output: Outcome,
    <Fut::Output as Outcome>::Err: FromTimeout,
{
    TimedOutcome(state.seq.attempt::<Timed, _>(attempt).await)
}

/// The decision after one attempt: `Break` with the result to return, or `Continue` with the
/// wait before the next attempt and the failure to report if the wait is cut.
#[inline]
fn decide<A, I, V, N>(
    state: &mut RetryLoop<<A::R as Outcome>::Err, I>,
    outcome: A,
    verdict: V,
    on_retry: N,
    now: impl FnOnce() -> I,
) -> ControlFlow<A::R, Wait<A>>
where
    A: AttemptOutcome,
    <A::R as Outcome>::Err: 'static,
    I: Moment,
    V: FnOnce(&<A::R as Outcome>::Err, &RetryPolicy) -> Verdict,
    N: FnOnce(&RetryEvent<'_, <A::R as Outcome>::Err>),
{
    let failure = match outcome.split() {
        Ok(value) => {
            state.seq.succeeded();
            return ControlFlow::Break(A::R::from_result(Ok(value)));
        }
        Err(failure) => failure,
    };
    let policy = state.seq.policy();
    match state.seq.judge(failure, |e| verdict(e, policy), now) {
        Ok((delay, current)) => {
            on_retry(&RetryEvent {
                attempt: state.seq.attempt_number(),
                max_attempts: policy.max_attempts(),
                delay,
                error: match &current {
                    Last::Error(e) => AttemptFailure::Error(e),
                    Last::Cut(cut, _) => AttemptFailure::Timeout(cut.cut().timeout()),
                },
            });
            ControlFlow::Continue((delay, current))
        }
        Err(stop) => ControlFlow::Break(A::give_up(stop)),
    }
}

async fn step<A, V, N>(
    state: &mut RetryLoop<<A::R as Outcome>::Err, tokio::time::Instant>,
    outcome: A,
    verdict: V,
    on_retry: N,
) -> ControlFlow<A::R>
where
    A: AttemptOutcome,
    <A::R as Outcome>::Err: 'static,
    V: FnOnce(&<A::R as Outcome>::Err, &RetryPolicy) -> Verdict,
    N: FnOnce(&RetryEvent<'_, <A::R as Outcome>::Err>),
{
    let (delay, current) = decide(state, outcome, verdict, on_retry, tokio::time::Instant::now)?;
    let waited = state.seq.wait(delay).await;
    after_wait::<A, _>(state, current, waited)
}

fn step_blocking<A, V, N>(
    state: &mut RetryLoop<<A::R as Outcome>::Err, std::time::Instant>,
    outcome: A,
    verdict: V,
    on_retry: N,
) -> ControlFlow<A::R>
where
    A: AttemptOutcome,
    <A::R as Outcome>::Err: 'static,
    V: FnOnce(&<A::R as Outcome>::Err, &RetryPolicy) -> Verdict,
    N: FnOnce(&RetryEvent<'_, <A::R as Outcome>::Err>),
{
    let (delay, current) = decide(state, outcome, verdict, on_retry, std::time::Instant::now)?;
    let waited = state.seq.wait_blocking(delay, &SystemClock);
    after_wait::<A, _>(state, current, waited)
}

/// After the wait (`waited`: not cut by the policy's cancellation): the next attempt, or the
/// sequence's end with the failure it had.
fn after_wait<A, I>(
    state: &mut RetryLoop<<A::R as Outcome>::Err, I>,
    current: Last<ErrOf<A>, A::Cut>,
    waited: bool,
) -> ControlFlow<A::R>
where
    A: AttemptOutcome,
    <A::R as Outcome>::Err: 'static,
    I: Moment,
{
    if waited {
        state.seq.resume(current);
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(A::give_up(state.seq.cancelled(current)))
    }
}

/// No `on_retry` observer (the attribute's default).
#[inline(always)]
pub fn no_observer<E>(_: &RetryEvent<'_, E>) {}

/// The error type's own classification (`Retryable`, through the policy).
#[inline]
fn by_retryable<E: RetryableError>(e: &E, policy: &RetryPolicy) -> Verdict {
    e.verdict(policy)
}

/// `retry_if`'s answer as a verdict (no `Retry-After` hint: the predicate replaces the
/// classification).
#[inline]
fn by_predicate<E>(retry_if: impl FnOnce(&E) -> bool) -> impl FnOnce(&E, &RetryPolicy) -> Verdict {
    move |e, _| {
        if retry_if(e) {
            Verdict::Retry(None)
        } else {
            Verdict::Stop
        }
    }
}

/// After an attempt of an async `#[retry]` function (errors classified by `Retryable`):
/// `Break` with the result to return, or `Continue` after the wait, for the next attempt.
#[inline]
pub async fn retry_step<A, N>(
    state: &mut RetryLoop<<A::R as Outcome>::Err, tokio::time::Instant>,
    outcome: A,
    on_retry: N,
) -> ControlFlow<A::R>
where
    A: AttemptOutcome,
    <A::R as Outcome>::Err: RetryableError,
    N: FnOnce(&RetryEvent<'_, <A::R as Outcome>::Err>),
{
    step(state, outcome, by_retryable, on_retry).await
}

/// [`retry_step`] with `retry_if`.
#[inline]
pub async fn retry_step_if<A, P, N>(
    state: &mut RetryLoop<<A::R as Outcome>::Err, tokio::time::Instant>,
    outcome: A,
    retry_if: P,
    on_retry: N,
) -> ControlFlow<A::R>
where
    A: AttemptOutcome,
    <A::R as Outcome>::Err: 'static,
    P: FnOnce(&<A::R as Outcome>::Err) -> bool,
    N: FnOnce(&RetryEvent<'_, <A::R as Outcome>::Err>),
{
    step(state, outcome, by_predicate(retry_if), on_retry).await
}

/// [`retry_step`] for a sync function: waits with `std::thread::sleep`.
#[inline]
pub fn retry_step_blocking<A, N>(
    state: &mut RetryLoop<<A::R as Outcome>::Err, std::time::Instant>,
    outcome: A,
    on_retry: N,
) -> ControlFlow<A::R>
where
    A: AttemptOutcome,
    <A::R as Outcome>::Err: RetryableError,
    N: FnOnce(&RetryEvent<'_, <A::R as Outcome>::Err>),
{
    step_blocking(state, outcome, by_retryable, on_retry)
}

/// [`retry_step_blocking`] with `retry_if`.
#[inline]
pub fn retry_step_blocking_if<A, P, N>(
    state: &mut RetryLoop<<A::R as Outcome>::Err, std::time::Instant>,
    outcome: A,
    retry_if: P,
    on_retry: N,
) -> ControlFlow<A::R>
where
    A: AttemptOutcome,
    <A::R as Outcome>::Err: 'static,
    P: FnOnce(&<A::R as Outcome>::Err) -> bool,
    N: FnOnce(&RetryEvent<'_, <A::R as Outcome>::Err>),
{
    step_blocking(state, outcome, by_predicate(retry_if), on_retry)
}

/// A `#[retry]` argument, cloned for each attempt.
#[diagnostic::on_unimplemented(
    message = "`#[retry]` clones each argument for every attempt, but `{Self}` is not `Clone`",
    label = "this argument's type is not `Clone`",
    note = "derive or implement `Clone`, take a reference (`&T`, or `&mut T`, which is re-borrowed), or share it in an `Arc`"
)]
pub trait RetryArg: Sized {
    fn clone_arg(&self) -> Self;
}

#[diagnostic::do_not_recommend]
impl<T: Clone> RetryArg for T {
    #[inline(always)]
    fn clone_arg(&self) -> Self {
        self.clone()
    }
}

/// The copy of an argument that one attempt consumes.
#[inline(always)]
pub fn clone_arg<T: RetryArg>(arg: &T) -> T {
    arg.clone_arg()
}
