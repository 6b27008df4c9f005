//! Retry engine: backoff strategies, policies and presets, deadlines, error classification.
//!
//! ```
//! use resilience::retry::{retry, RetryPreset, RetryError};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let mut calls = 0;
//! let result = retry(
//!     || {
//!         calls += 1;
//!         let n = calls;
//!         async move {
//!             if n < 2 {
//!                 Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
//!             } else {
//!                 Ok("pong")
//!             }
//!         }
//!     },
//!     RetryPreset::Quick,
//! )
//! .await;
//! assert_eq!(result.unwrap(), "pong");
//! # }
//! ```
//!
//! # The sequence
//! An operation (a closure returning a future, called once per attempt) is tried up to
//! `max_attempts` times. After a failure the error is classified — the policy's
//! [`retry_if`](RetryPolicyBuilder::retry_if) predicate if it has one for the error type, else
//! [`Retryable::is_retryable`] — and a non-retryable error ends the sequence at once. Otherwise
//! the engine waits: the error's [`Retryable::retry_after`] hint if it has one (it overrides the
//! backoff and is not capped by `max_delay`, only by the deadline), else the [`Backoff`] delay,
//! which never exceeds `max_delay`. `on_retry` observers, a `tracing` debug event and the
//! `retry_attempts_total{outcome="retry"}` counter see every wait.
//!
//! # Deadlines and timeouts
//! - `total_timeout` bounds the sequence: a wait that would reach the deadline is not started
//!   (the sequence ends with [`RetryError::Deadline`]), and an attempt still running at the
//!   deadline is cut. By default ([`DeadlineStart::FirstAttempt`]) the deadline counts from the
//!   first attempt, so a first attempt that hangs ends at the deadline. Its clock starts at the
//!   attempt's first `Pending`: an operation ready on its first poll reads no clock and arms no
//!   timer, and what a first poll spends blocking its thread is not counted (the blocking loop
//!   reads the clock before the first attempt instead). [`DeadlineStart::FirstFailure`] (opt-in)
//!   counts from the first failure, leaving the first attempt to `attempt_timeout`.
//!   `Duration::MAX` (anything from 30 years up) means no deadline.
//! - `attempt_timeout` cuts each attempt; a cut attempt counts as a retryable failure.
//! - Cancellation ([`RetryPolicyBuilder::cancellation`]) ends a wait at once; no further attempt
//!   starts; a running attempt is not interrupted.
//!
//! # Entry points
//! | call | returns | attempts cut by timeouts |
//! |------|---------|--------------------------|
//! | [`retry(f, policy)`](retry), [`RetryPolicy::retry`] | `Result<T, RetryError<E>>` | yes |
//! | [`RetryPolicy::run`] | `Result<T, E>` | no |
//! | [`RetryPolicy::run_with_timeouts`] | `Result<T, E>`, `E: From<TimeoutError>` | yes |
//! | [`retry_blocking`], [`RetryPolicy::retry_blocking`] | `Result<T, RetryError<E>>` | no |
//!
//! `run` and `run_with_timeouts` are for code that returns the operation's own error type `E`;
//! the `#[retry]` attribute follows the same rules (`run`'s, or `run_with_timeouts`' when it is
//! given `attempt_timeout_ms`), driving the same sequence from its own loop. The rules:
//! - Exhausted, not retryable, deadline, cancelled: the last error an attempt returned.
//! - `run` never cuts an attempt, so it needs no conversion: `attempt_timeout` is not applied
//!   and the total deadline only stops waits from starting. A cancelled token ends the sequence
//!   at the next wait; the first attempt always runs (there is no error of yours to return
//!   before it).
//! - `run_with_timeouts` applies both timeouts; when the last attempt was cut it returns
//!   `E::from(TimeoutError { after })`, `after` being the per-attempt or total timeout.
//!
//! # Cost
//! A first attempt ready on its first poll, with any policy, does not allocate, read the clock,
//! start a timer or touch an `Arc`: it is the operation's await plus two no-op metric handles
//! (real ones when a `metrics` recorder was installed before the first retried call). A first
//! attempt that returns `Pending` reads tokio's clock once and, where a limit applies to it,
//! arms one boxed timer.

mod backoff;
pub mod classify;
pub(crate) mod engine;
mod error;
mod policy;
mod preset;
mod service;

use std::future::Future;

pub use backoff::{Backoff, DEFAULT_JITTER};
pub use classify::Retryable;
pub use engine::{BlockingClock, SystemClock};
pub use error::{AttemptFailure, RetryError, RetryEvent};
pub use policy::{DeadlineStart, RetryPolicy, RetryPolicyBuilder};
pub use preset::RetryPreset;
pub use service::RetryService;
/// The token type [`RetryPolicyBuilder::cancellation`] takes (re-exported from `tokio-util`).
pub use tokio_util::sync::CancellationToken;

use crate::timeout::TimeoutError;
use engine::{Timed, ToErrorOrTimeout, ToLastError, ToRetryError, Untimed};

/// Calls `f` until it succeeds, following `policy` (a [`RetryPolicy`], a [`RetryPreset`] or
/// `RetryPolicy::default()`).
///
/// ```
/// use std::time::Duration;
/// use resilience::retry::{retry, RetryError, RetryPolicy, Backoff};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), resilience::ConfigError> {
/// let policy = RetryPolicy::builder()
///     .max_attempts(3)
///     .backoff(Backoff::Fixed)
///     .initial_delay(Duration::from_millis(10))
///     .max_delay(Duration::from_millis(10))
///     .build()?;
/// let result: Result<(), _> =
///     retry(|| async { Err(std::io::Error::from(std::io::ErrorKind::TimedOut)) }, policy).await;
/// match result {
///     Err(RetryError::Exhausted { attempts, last_error }) => {
///         assert_eq!(attempts, 3);
///         assert_eq!(last_error.kind(), std::io::ErrorKind::TimedOut);
///     }
///     other => panic!("unexpected: {other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
///
/// (A function returning the future rather than an `async fn`: the policy is converted before
/// the future is built and stored once in it.)
pub fn retry<F, Fut, T, E>(
    f: F,
    policy: impl Into<RetryPolicy>,
) -> impl Future<Output = Result<T, RetryError<E>>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Retryable + 'static,
{
    engine::run_async::<_, Timed, ToRetryError, _, _, _, _>(policy.into(), f)
}

/// The blocking form of [`retry`]: waits with `std::thread::sleep`. Attempts are never cut
/// (`attempt_timeout` does not apply), the total deadline stops waits from starting, and a
/// cancellation is seen before and after each wait.
///
/// ```
/// use resilience::retry::{retry_blocking, RetryPolicy};
///
/// let policy = RetryPolicy::builder().initial_delay(std::time::Duration::ZERO).build().unwrap();
/// let mut calls = 0;
/// let out = retry_blocking(
///     || {
///         calls += 1;
///         if calls < 3 { Err(std::io::Error::from(std::io::ErrorKind::Interrupted)) } else { Ok(calls) }
///     },
///     policy,
/// );
/// assert_eq!(out.unwrap(), 3);
/// ```
pub fn retry_blocking<F, T, E>(f: F, policy: impl Into<RetryPolicy>) -> Result<T, RetryError<E>>
where
    F: FnMut() -> Result<T, E>,
    E: Retryable + 'static,
{
    policy.into().retry_blocking(f)
}

impl RetryPolicy {
    /// [`retry`] with a borrowed policy: share one policy between tasks without cloning it.
    pub fn retry<F, Fut, T, E>(&self, f: F) -> impl Future<Output = Result<T, RetryError<E>>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Retryable + 'static,
    {
        engine::run_async::<_, Timed, ToRetryError, _, _, _, _>(self, f)
    }

    /// Retries `f` and returns its own error type: the last error on giving up. Attempts are
    /// never cut (see the [module docs](self) for the rules; use
    /// [`run_with_timeouts`](Self::run_with_timeouts) to apply `attempt_timeout`).
    pub fn run<F, Fut, T, E>(&self, f: F) -> impl Future<Output = Result<T, E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Retryable + 'static,
    {
        engine::run_async::<_, Untimed, ToLastError, _, _, _, _>(self, f)
    }

    /// Like [`run`](Self::run) with the per-attempt timeout and the total deadline cutting
    /// attempts; a cut last attempt is reported as `E::from(TimeoutError)`.
    pub fn run_with_timeouts<F, Fut, T, E>(&self, f: F) -> impl Future<Output = Result<T, E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Retryable + From<TimeoutError> + 'static,
    {
        engine::run_async::<_, Timed, ToErrorOrTimeout, _, _, _, _>(self, f)
    }

    /// [`retry_blocking`] with a borrowed policy.
    pub fn retry_blocking<F, T, E>(&self, f: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Result<T, E>,
        E: Retryable + 'static,
    {
        self.retry_blocking_with_clock(f, &SystemClock)
    }

    /// [`retry_blocking`] with an injected clock (tests, simulations).
    pub fn retry_blocking_with_clock<F, T, E, C>(&self, f: F, clock: &C) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Result<T, E>,
        E: Retryable + 'static,
        C: BlockingClock + ?Sized,
    {
        if let Some(token) = &self.cancel
            && token.is_cancelled()
        {
            return Err(RetryError::Cancelled {
                attempts: 0,
                last_error: None,
            });
        }
        engine::run_blocking(self, f, clock).map_err(engine::Stop::into_retry_error)
    }

    /// The blocking form of [`run`](Self::run): returns the last error on giving up.
    pub fn run_blocking<F, T, E>(&self, f: F) -> Result<T, E>
    where
        F: FnMut() -> Result<T, E>,
        E: Retryable + 'static,
    {
        engine::run_blocking(self, f, &SystemClock).map_err(engine::Stop::into_last_error)
    }
}
