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

use metrics::SharedString;
use tokio::time::Instant;

use crate::metrics::TIMEOUT_CALLS_TOTAL;
use crate::metrics::lazy::{OutcomeCounters, UNNAMED};

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
///
/// Counted in `timeout_calls_total{name="unnamed"}`; use [`Timeout`] for a name of its own.
pub async fn timeout<F: Future>(duration: Duration, f: F) -> Result<F::Output, TimeoutError> {
    static UNNAMED_COUNTERS: TimeoutCounters = TimeoutCounters::new_static(UNNAMED);
    UNNAMED_COUNTERS.run(duration, f).await
}

/// The `outcome` labels of `timeout_calls_total`, by index.
const OUTCOMES: [&str; 2] = ["completed", "timed_out"];
const COMPLETED: usize = 0;
const TIMED_OUT: usize = 1;

/// `timeout_calls_total{name,outcome}` of one name, each outcome registered on first use.
pub(crate) struct TimeoutCounters(OutcomeCounters<2>);

impl TimeoutCounters {
    /// For a `static`: the counters of the name `name`.
    pub(crate) const fn new_static(name: &'static str) -> Self {
        Self(OutcomeCounters::new_static(
            TIMEOUT_CALLS_TOTAL,
            name,
            &OUTCOMES,
        ))
    }

    /// Runs `f` under `duration`, counting how it ended.
    #[inline]
    pub(crate) async fn run<F: Future>(
        &self,
        duration: Duration,
        f: F,
    ) -> Result<F::Output, TimeoutError> {
        let result = match deadline_after(Instant::now(), duration) {
            Some(deadline) => tokio::time::timeout_at(deadline, f)
                .await
                .map_err(|_| TimeoutError { after: duration }),
            None => Ok(f.await),
        };
        self.0
            .increment(if result.is_ok() { COMPLETED } else { TIMED_OUT });
        result
    }
}

/// A named time limit: [`timeout`] whose calls are counted in `timeout_calls_total` under
/// its own `name` label. Build once, share (`&self`).
///
/// ```
/// use std::time::Duration;
/// use resilience::timeout::Timeout;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let upstream = Timeout::new(Duration::from_millis(200)).name("upstream");
/// assert_eq!(upstream.run(async { 7 }).await, Ok(7));
/// assert!(upstream.run(std::future::pending::<()>()).await.is_err());
/// # }
/// ```
pub struct Timeout {
    after: Duration,
    counters: TimeoutCounters,
}

impl Timeout {
    /// A limit of `after` (`Duration::MAX`: none), counted under `name="unnamed"` until named.
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            counters: TimeoutCounters::new_static(UNNAMED),
        }
    }

    /// Names it: the `name` label of its `timeout_calls_total`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.counters = TimeoutCounters(OutcomeCounters::new(
            TIMEOUT_CALLS_TOTAL,
            SharedString::from(name.into()),
            &OUTCOMES,
        ));
        self
    }

    /// The time limit.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// Runs `f`, giving up after the limit with [`TimeoutError`] (see [`timeout`]).
    pub async fn run<F: Future>(&self, f: F) -> Result<F::Output, TimeoutError> {
        self.counters.run(self.after, f).await
    }
}

impl std::fmt::Debug for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout")
            .field("name", &&**self.counters.0.name())
            .field("after", &self.after)
            .finish()
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
