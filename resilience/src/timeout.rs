//! `timeout(duration, f)`: bound one call in time.
//!
//! A thin wrapper over [`tokio::time::timeout`] whose error, [`TimeoutError`], says how long the
//! call was given and converts into [`std::io::Error`] (kind `TimedOut`), so it travels through
//! `?` in I/O code and is classified as transient by the retry engine.
//!
//! Dropping the inner future is how the call is cut: anything it holds (a connection, a permit) is
//! released at the deadline. Like every tokio timer it needs a tokio runtime with the time driver
//! enabled, and it follows tokio's paused clock in tests.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// A call did not finish within its time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("timed out after {after:?}")]
pub struct TimeoutError {
    /// The time limit the call was given.
    pub after: Duration,
}

impl From<TimeoutError> for std::io::Error {
    fn from(e: TimeoutError) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// Runs `f`, giving up after `duration` with [`TimeoutError`].
///
/// The future is polled once even with a zero `duration`, so a value that is already ready is
/// returned (tokio's rule). A `duration` too long to be a deadline (`Duration::MAX`, or anything
/// past the clock's range) means no time limit.
///
/// ```
/// use std::time::Duration;
/// use resilience::timeout::{timeout, TimeoutError};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let fast = timeout(Duration::from_secs(1), async { 42 }).await;
/// assert_eq!(fast, Ok(42));
///
/// let slow = timeout(Duration::from_millis(10), std::future::pending::<()>()).await;
/// assert_eq!(slow, Err(TimeoutError { after: Duration::from_millis(10) }));
/// # }
/// ```
pub async fn timeout<F: Future>(duration: Duration, f: F) -> Result<F::Output, TimeoutError> {
    match deadline_after(Instant::now(), duration) {
        Some(deadline) => tokio::time::timeout_at(deadline, f)
            .await
            .map_err(|_| TimeoutError { after: duration }),
        None => Ok(f.await),
    }
}

/// The instant `after` past `start`, or `None` — "never" — when it cannot be represented: a
/// `Duration::MAX` timeout means no timeout, not a panic. The margin of a second keeps tokio's
/// timer, which rounds a deadline up to the next millisecond, from overflowing either.
pub(crate) fn deadline_after(start: Instant, after: Duration) -> Option<Instant> {
    start.checked_add(after.saturating_add(Duration::from_secs(1)))?;
    start.checked_add(after)
}

/// Sleeps until `deadline`, or forever when there is none.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs `f` until `deadline` (without one, to completion); `Err(())` when the deadline passed.
pub(crate) async fn run_until<F: Future>(deadline: Option<Instant>, f: F) -> Result<F::Output, ()> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, f).await.map_err(|_| ()),
        None => Ok(f.await),
    }
}
