//! The breaker's errors: a rejected call, a call's outcome, a registry conflict.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A call was rejected because the breaker is open (or half-open with every trial slot taken).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker `{name}` is open{}", RetryAfter(*.retry_after))]
pub struct CircuitOpenError {
    /// The breaker's name.
    pub name: Arc<str>,
    /// When a trial call will be let through, if known (`None` while forced open or while the
    /// half-open trial slots are taken).
    pub retry_after: Option<Duration>,
}

struct RetryAfter(Option<Duration>);

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, "; retry after {} ms", d.as_millis()),
            None => Ok(()),
        }
    }
}

impl From<CircuitOpenError> for std::io::Error {
    fn from(err: CircuitOpenError) -> Self {
        std::io::Error::other(err)
    }
}

/// The outcome of a call through a breaker that did not succeed: rejected, or the call's own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker rejected the call; the function was not run.
    Open(CircuitOpenError),
    /// The function ran and returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// Whether the breaker rejected the call.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Open(_))
    }

    /// The call's own error, `None` if the breaker rejected the call.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(e) => Some(e),
            Self::Open(_) => None,
        }
    }

    /// The call's own error, or `f` applied to the rejection.
    pub fn into_inner_or_else(self, f: impl FnOnce(CircuitOpenError) -> E) -> E {
        match self {
            Self::Inner(e) => e,
            Self::Open(open) => f(open),
        }
    }

    /// The call's own error, or `default` if the breaker rejected the call.
    pub fn into_inner_or(self, default: E) -> E {
        self.into_inner_or_else(|_| default)
    }

    /// Maps the call's own error.
    pub fn map_inner<F>(self, f: impl FnOnce(E) -> F) -> CallError<F> {
        match self {
            Self::Inner(e) => CallError::Inner(f(e)),
            Self::Open(open) => CallError::Open(open),
        }
    }
}

impl<E: From<CircuitOpenError>> CallError<E> {
    /// One error type: the call's own error, or the rejection converted into it.
    pub fn flatten(self) -> E {
        self.into_inner_or_else(E::from)
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(open) => open.fmt(f),
            Self::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for CallError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        // Transparent: the wrapped error's own source, as if it were not wrapped.
        match self {
            Self::Open(open) => open.source(),
            Self::Inner(e) => e.source(),
        }
    }
}

/// A registry operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A breaker of that name already exists with a different configuration (configure a breaker
    /// before its first use).
    #[error("circuit breaker `{name}` already exists with a different configuration")]
    ConfigConflict {
        /// The breaker's name.
        name: Arc<str>,
    },
}
