//! `#[timeout]` and `attempt_timeout_ms`.

use std::future::Future;
use std::time::Duration;

use super::Outcome;
use crate::timeout::{TimeoutCounters, TimeoutError};

/// Turns a timeout into the wrapped function's error type.
#[diagnostic::on_unimplemented(
    message = "`#[timeout]` / `attempt_timeout_ms` need the function's error type `{Self}` to implement `From<TimeoutError>`",
    label = "`{Self}` cannot hold a timeout",
    note = "add `impl From<resilience::timeout::TimeoutError> for {Self}`, or return `anyhow::Error` / `Box<dyn Error + Send + Sync>`"
)]
pub trait FromTimeout {
    fn from_timeout(error: TimeoutError) -> Self;
}

#[diagnostic::do_not_recommend]
impl<E: From<TimeoutError>> FromTimeout for E {
    #[inline]
    fn from_timeout(error: TimeoutError) -> Self {
        E::from(error)
    }
}

/// The counters of one `#[timeout]` function (a `static` in the generated body), named after
/// its path.
pub struct TimeoutCell(TimeoutCounters);

impl TimeoutCell {
    pub const fn new(name: &'static str) -> Self {
        Self(TimeoutCounters::new_static(name))
    }
}

/// The body of a `#[timeout(ms = ...)]` function.
#[inline]
pub async fn timeout_call<Fut, R>(cell: &'static TimeoutCell, ms: u64, future: Fut) -> R
where
    Fut: Future<Output = R>,
    R: Outcome,
    R::Err: FromTimeout,
{
    match cell.0.run(Duration::from_millis(ms), future).await {
        Ok(outcome) => outcome,
        Err(elapsed) => R::from_result(Err(R::Err::from_timeout(elapsed))),
    }
}
