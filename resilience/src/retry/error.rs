//! What a retried operation returns when it gives up, and what `on_retry` observers see.

use std::time::Duration;

use crate::timeout::TimeoutError;

/// Why a retried operation gave up. Every variant keeps the attempt count and the last error the
/// operation returned (`Option` where the last attempt may have been cut short by a timeout, or
/// cancelled before any attempt finished).
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E> {
    /// Every allowed attempt failed with a retryable error; `last_error` is the final one.
    #[error("gave up after {attempts} attempt(s)")]
    Exhausted {
        /// Attempts made (the policy's `max_attempts`).
        attempts: u32,
        /// The final attempt's error.
        #[source]
        last_error: E,
    },
    /// The final allowed attempt was cut by the per-attempt timeout.
    #[error("gave up after {attempts} attempt(s): the last one timed out after {after:?}")]
    AttemptTimeout {
        /// Attempts made (the policy's `max_attempts`).
        attempts: u32,
        /// The per-attempt timeout.
        after: Duration,
        /// The most recent error an attempt returned, if any did.
        #[source]
        last_error: Option<E>,
    },
    /// The total deadline was reached: a running attempt was cut, or the next wait would have
    /// crossed it.
    #[error("retry deadline of {deadline:?} reached after {attempts} attempt(s)")]
    Deadline {
        /// Attempts made, including one cut at the deadline.
        attempts: u32,
        /// The policy's `total_timeout`.
        deadline: Duration,
        /// The most recent error an attempt returned, if any did.
        #[source]
        last_error: Option<E>,
    },
    /// The error was not retryable (by the policy's predicate or [`Retryable`](super::Retryable)).
    #[error("not retryable (attempt {attempts})")]
    NotRetryable {
        /// Attempts made, including the one that failed for good.
        attempts: u32,
        /// The error.
        #[source]
        error: E,
    },
    /// The policy's cancellation token fired.
    #[error("retry cancelled after {attempts} attempt(s)")]
    Cancelled {
        /// Attempts made before the cancellation.
        attempts: u32,
        /// The most recent error an attempt returned, if any did.
        #[source]
        last_error: Option<E>,
    },
}

impl<E> RetryError<E> {
    /// Attempts made before giving up.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Exhausted { attempts, .. }
            | Self::AttemptTimeout { attempts, .. }
            | Self::Deadline { attempts, .. }
            | Self::NotRetryable { attempts, .. }
            | Self::Cancelled { attempts, .. } => *attempts,
        }
    }

    /// The last error the operation returned, if any attempt returned one.
    pub fn last_error(&self) -> Option<&E> {
        match self {
            Self::Exhausted { last_error, .. }
            | Self::NotRetryable {
                error: last_error, ..
            } => Some(last_error),
            Self::AttemptTimeout { last_error, .. }
            | Self::Deadline { last_error, .. }
            | Self::Cancelled { last_error, .. } => last_error.as_ref(),
        }
    }

    /// Consumes the error, returning the last error the operation returned, if any.
    pub fn into_last_error(self) -> Option<E> {
        match self {
            Self::Exhausted { last_error, .. }
            | Self::NotRetryable {
                error: last_error, ..
            } => Some(last_error),
            Self::AttemptTimeout { last_error, .. }
            | Self::Deadline { last_error, .. }
            | Self::Cancelled { last_error, .. } => last_error,
        }
    }

    /// Whether all attempts were used up ([`RetryError::Exhausted`] or
    /// [`RetryError::AttemptTimeout`]).
    pub fn is_exhausted(&self) -> bool {
        matches!(self, Self::Exhausted { .. } | Self::AttemptTimeout { .. })
    }

    /// Whether the total deadline ended the sequence.
    pub fn is_deadline(&self) -> bool {
        matches!(self, Self::Deadline { .. })
    }

    /// Whether the last error was classified as not retryable.
    pub fn is_not_retryable(&self) -> bool {
        matches!(self, Self::NotRetryable { .. })
    }

    /// Whether the sequence was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled { .. })
    }
}

/// What an attempt failed with, as [`RetryEvent`] reports it.
#[derive(Debug)]
pub enum AttemptFailure<'a, E: ?Sized> {
    /// The operation returned this error.
    Error(&'a E),
    /// The attempt was cut by the per-attempt timeout.
    Timeout(TimeoutError),
}

impl<E: ?Sized> Clone for AttemptFailure<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E: ?Sized> Copy for AttemptFailure<'_, E> {}

impl<'a, E: ?Sized> AttemptFailure<'a, E> {
    /// The error, unless the attempt timed out.
    pub fn error(&self) -> Option<&'a E> {
        match self {
            Self::Error(e) => Some(e),
            Self::Timeout(_) => None,
        }
    }
}

/// Passed to `on_retry` observers before each wait: attempt `attempt` of `max_attempts` failed
/// with `error` and the engine will wait `delay` before the next one.
#[derive(Debug)]
pub struct RetryEvent<'a, E: ?Sized> {
    /// The attempt that just failed (1-based).
    pub attempt: u32,
    /// The policy's maximum number of attempts.
    pub max_attempts: u32,
    /// The wait before the next attempt (the error's Retry-After hint when it had one).
    pub delay: Duration,
    /// What the attempt failed with.
    pub error: AttemptFailure<'a, E>,
}
