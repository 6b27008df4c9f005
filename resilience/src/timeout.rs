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
/// returned (tokio's rule).
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
    tokio::time::timeout(duration, f)
        .await
        .map_err(|_| TimeoutError { after: duration })
}
