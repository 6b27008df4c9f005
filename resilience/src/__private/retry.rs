//! `#[retry]`: the policy cell and the per-attempt steps.

use std::ops::ControlFlow;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Histogram};
use tokio::time::Instant;

use super::{Outcome, rejected_at_runtime};
use crate::retry::{Backoff, DeadlineStart, RetryPolicy, RetryPreset};

/// Where a `#[retry]` function's policy comes from.
pub enum RetrySource {
    /// `#[retry]`: `RetryPolicy::default()`.
    Default,
    /// `#[retry(preset = "...")]`.
    Preset(RetryPreset),
    /// `#[retry(max_attempts = ..., ...)]`: the default policy with these numbers changed.
    Custom(RetrySpec),
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
    policy: OnceLock<RetryPolicy>,
}

impl RetryCell {
    pub const fn new(source: RetrySource) -> Self {
        Self {
            source,
            policy: OnceLock::new(),
        }
    }

    #[inline]
    pub fn get(&self) -> &RetryPolicy {
        self.policy.get_or_init(|| build_policy(&self.source))
    }
}

#[cold]
fn build_policy(source: &RetrySource) -> RetryPolicy {
    let spec = match source {
        RetrySource::Default => return RetryPolicy::default(),
        RetrySource::Preset(preset) => return RetryPolicy::from(*preset),
        RetrySource::Custom(spec) => spec,
    };
    let mut builder = RetryPolicy::builder();
    if let Some(n) = spec.max_attempts {
        builder = builder.max_attempts(n);
    }
    if let Some(ms) = spec.initial_delay_ms {
        builder = builder.initial_delay(Duration::from_millis(ms));
    }
    if let Some(ms) = spec.max_delay_ms {
        builder = builder.max_delay(Duration::from_millis(ms));
    }
    if let Some(backoff) = spec.backoff {
        builder = builder.backoff(backoff);
    }
    if let Some(ms) = spec.total_timeout_ms {
        builder = builder.total_timeout(Duration::from_millis(ms));
    }
    match builder.build() {
        Ok(policy) => policy,
        Err(error) => rejected_at_runtime("#[retry]", &error),
    }
}

/// Retry every error (the default of `#[retry]` without `retry_if`).
#[inline(always)]
pub fn retry_every_error<E>(_: &E) -> bool {
    true
}

/// The state of one `#[retry]` call: which attempt runs, and the deadline once it is known.
pub struct RetryLoop {
    policy: &'static RetryPolicy,
    attempt: u32,
    deadline: Option<Instant>,
}

impl RetryLoop {
    #[inline]
    pub fn new(policy: &'static RetryPolicy) -> Self {
        let deadline = match (policy.total_timeout(), policy.deadline_start()) {
            (Some(total), DeadlineStart::FirstAttempt) => Some(Instant::now() + total),
            _ => None,
        };
        Self {
            policy,
            attempt: 1,
            deadline,
        }
    }

    /// After a failed attempt: the wait before the next one, or `None` to give up (attempts
    /// exhausted, error not retryable, or the wait would reach the deadline). Metrics and events
    /// follow the retry engine's (`retry_attempts_total{outcome}`, `retry_attempts_count`).
    fn next_delay<E>(&mut self, error: &E, retry_if: impl FnOnce(&E) -> bool) -> Option<Duration> {
        let policy = self.policy;
        let attempts = self.attempt;
        let m = retry_metrics();
        let stop = if !retry_if(error) {
            Some((&m.not_retryable, "not_retryable"))
        } else if attempts >= policy.max_attempts() {
            Some((&m.exhausted, "exhausted"))
        } else {
            None
        };
        let delay = policy.delay(attempts, jitter_draw(policy));
        let stop = stop.or_else(|| {
            let total = policy.total_timeout()?;
            let now = Instant::now();
            let deadline = *self.deadline.get_or_insert(now + total);
            (now + delay >= deadline).then_some((&m.deadline, "deadline"))
        });
        if let Some((counter, outcome)) = stop {
            counter.increment(1);
            m.attempts.record(f64::from(attempts));
            tracing::debug!(
                target: "resilience::retry",
                outcome,
                attempts,
                max_attempts = policy.max_attempts(),
                "giving up"
            );
            return None;
        }
        m.retry.increment(1);
        tracing::debug!(
            target: "resilience::retry",
            attempt = attempts,
            max_attempts = policy.max_attempts(),
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "attempt failed; retrying"
        );
        self.attempt += 1;
        Some(delay)
    }

    #[inline]
    fn succeeded(&self) {
        let m = retry_metrics();
        m.success.increment(1);
        m.attempts.record(f64::from(self.attempt));
    }
}

/// The jitter draw in `[0, 1)` (none without jitter).
fn jitter_draw(policy: &RetryPolicy) -> f64 {
    if policy.jitter() <= 0.0 {
        0.0
    } else {
        rand::random::<f64>()
    }
}

/// Metric handles, resolved once per process (the same series as the retry engine's).
struct RetryMetrics {
    success: Counter,
    retry: Counter,
    exhausted: Counter,
    deadline: Counter,
    not_retryable: Counter,
    attempts: Histogram,
}

fn retry_metrics() -> &'static RetryMetrics {
    use crate::metrics::{RETRY_ATTEMPTS_COUNT, RETRY_ATTEMPTS_TOTAL};
    static METRICS: OnceLock<RetryMetrics> = OnceLock::new();
    METRICS.get_or_init(|| RetryMetrics {
        success: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "success"),
        retry: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "retry"),
        exhausted: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "exhausted"),
        deadline: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "deadline"),
        not_retryable: metrics::counter!(RETRY_ATTEMPTS_TOTAL, "outcome" => "not_retryable"),
        attempts: metrics::histogram!(RETRY_ATTEMPTS_COUNT),
    })
}

/// The decision shared by [`retry_step`] and [`retry_step_blocking`]: `Break` with the result to
/// return, or `Continue` with the wait before the next attempt.
#[inline]
fn retry_decision<R, P>(state: &mut RetryLoop, outcome: R, retry_if: P) -> ControlFlow<R, Duration>
where
    R: Outcome,
    P: FnOnce(&R::Err) -> bool,
{
    let error = match outcome.into_result() {
        Ok(value) => {
            state.succeeded();
            return ControlFlow::Break(R::from_result(Ok(value)));
        }
        Err(error) => error,
    };
    match state.next_delay(&error, retry_if) {
        Some(delay) => ControlFlow::Continue(delay),
        None => ControlFlow::Break(R::from_result(Err(error))),
    }
}

/// After an attempt of an async `#[retry]` function: `Break` with the result to return, or
/// `Continue` after the wait, for the next attempt.
#[inline]
pub async fn retry_step<R, P>(state: &mut RetryLoop, outcome: R, retry_if: P) -> ControlFlow<R>
where
    R: Outcome,
    P: FnOnce(&R::Err) -> bool,
{
    match retry_decision(state, outcome, retry_if) {
        ControlFlow::Break(result) => ControlFlow::Break(result),
        ControlFlow::Continue(delay) => {
            tokio::time::sleep(delay).await;
            ControlFlow::Continue(())
        }
    }
}

/// [`retry_step`] for a sync function: waits with `std::thread::sleep`.
#[inline]
pub fn retry_step_blocking<R, P>(state: &mut RetryLoop, outcome: R, retry_if: P) -> ControlFlow<R>
where
    R: Outcome,
    P: FnOnce(&R::Err) -> bool,
{
    match retry_decision(state, outcome, retry_if) {
        ControlFlow::Break(result) => ControlFlow::Break(result),
        ControlFlow::Continue(delay) => {
            std::thread::sleep(delay);
            ControlFlow::Continue(())
        }
    }
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
