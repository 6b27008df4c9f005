//! Bulkhead: a cap on concurrent calls, with a bounded queue and a queue timeout.
//!
//! At most `max_concurrent` calls run at once; up to `max_queued` more wait (in FIFO order,
//! by `tokio::sync::Semaphore`'s fairness) for at most `queue_timeout`; anything beyond that is
//! refused at once with [`BulkheadFull::QueueFull`], so a slow dependency cannot pile up
//! unbounded work.
//!
//! ```
//! use std::time::Duration;
//! use resilience::bulkhead::{Bulkhead, BulkheadError};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Bulkhead::builder()
//!     .max_concurrent(10)
//!     .max_queued(100)
//!     .queue_timeout(Duration::from_millis(500))
//!     .build()?;
//! let rows = db.call(|| async { Ok::<_, std::io::Error>(42) }).await?;
//! assert_eq!(rows, 42);
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics::SharedString;
use tokio::sync::{Semaphore, SemaphorePermit, TryAcquireError};

use crate::ConfigError;
use crate::metrics::lazy::{NamedGauge, OutcomeCounters, UNNAMED};
use crate::metrics::{BULKHEAD_CALLS_TOTAL, BULKHEAD_IN_FLIGHT};
use crate::timeout::{deadline_after, run_until};

/// The default cap on concurrent calls (resilience4j's default).
pub const DEFAULT_MAX_CONCURRENT: usize = 25;

/// A call was refused by a [`Bulkhead`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BulkheadFull {
    /// All slots were busy and the queue was full (or disabled with `max_queued(0)`).
    #[error("bulkhead full: {max_concurrent} calls running and {max_queued} queued")]
    QueueFull {
        /// The configured cap on concurrent calls.
        max_concurrent: usize,
        /// The configured cap on waiting calls.
        max_queued: usize,
    },
    /// The call waited in the queue for `waited` without getting a slot.
    #[error("bulkhead queue timeout: no slot within {waited:?}")]
    QueueTimeout {
        /// The configured queue timeout.
        waited: Duration,
    },
}

/// For functions returning `io::Result` under `#[bulkhead]`: an `ErrorKind::Other` error
/// carrying the rejection.
impl From<BulkheadFull> for std::io::Error {
    fn from(full: BulkheadFull) -> Self {
        std::io::Error::other(full)
    }
}

/// The outcome of [`Bulkhead::call`]: refused by the bulkhead, or the call's own error.
#[derive(Debug, thiserror::Error)]
pub enum BulkheadError<E> {
    /// The bulkhead refused the call; it did not run.
    #[error(transparent)]
    Full(BulkheadFull),
    /// The call ran and failed.
    #[error("{0}")]
    Inner(#[source] E),
}

impl<E> BulkheadError<E> {
    /// The call's own error, if it ran and failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(err) => Some(err),
            Self::Full(_) => None,
        }
    }

    /// The refusal, if the bulkhead refused the call.
    pub fn full(&self) -> Option<&BulkheadFull> {
        match self {
            Self::Full(full) => Some(full),
            Self::Inner(_) => None,
        }
    }
}

impl<E: From<BulkheadFull>> BulkheadError<E> {
    /// One error type for both cases, for callers whose error converts from [`BulkheadFull`].
    pub fn flatten(self) -> E {
        match self {
            Self::Full(full) => E::from(full),
            Self::Inner(err) => err,
        }
    }
}

struct Inner {
    semaphore: Semaphore,
    max_concurrent: usize,
    max_queued: usize,
    queue_timeout: Option<Duration>,
    /// Calls waiting for a slot right now.
    queued: AtomicUsize,
    calls: OutcomeCounters<3>,
    in_flight: NamedGauge,
}

/// The `outcome` labels of `bulkhead_calls_total`, by index.
const OUTCOMES: [&str; 3] = ["admitted", "rejected", "timed_out"];
const ADMITTED: usize = 0;
const REJECTED: usize = 1;
const TIMED_OUT: usize = 2;

/// Caps concurrent calls, with a bounded, time-limited queue. Cheap to clone (clones share the
/// same slots).
#[derive(Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

/// A slot in a [`Bulkhead`], released when dropped. Owned (`'static`), so it can move into a
/// spawned task.
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct BulkheadPermit {
    /// The slot is the semaphore permit this holds (forgotten when taken, given back on drop).
    inner: Arc<Inner>,
}

impl BulkheadPermit {
    /// Counts the admission and wraps the slot taken from `inner`'s semaphore.
    #[inline]
    fn new(inner: &Arc<Inner>, permit: SemaphorePermit<'_>) -> Self {
        permit.forget();
        inner.calls.increment(ADMITTED);
        inner.in_flight.get().increment(1.0);
        Self {
            inner: Arc::clone(inner),
        }
    }
}

impl Drop for BulkheadPermit {
    fn drop(&mut self) {
        self.inner.semaphore.add_permits(1);
        self.inner.in_flight.get().decrement(1.0);
    }
}

impl fmt::Debug for BulkheadPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BulkheadPermit")
    }
}

/// Gives the queue slot back however the wait ends (slot, timeout, or the future dropped).
struct QueueSlot<'a>(&'a AtomicUsize);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Bulkhead {
    /// A builder with the defaults: 25 concurrent calls, no queue.
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder::default()
    }

    /// Takes a slot without waiting, or fails with [`BulkheadFull::QueueFull`].
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        match self.inner.semaphore.try_acquire() {
            Ok(permit) => Ok(BulkheadPermit::new(&self.inner, permit)),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(self.rejected()),
        }
    }

    /// Takes a slot, waiting in the queue if there is room in it (up to the queue timeout).
    /// Dropping the future leaves the queue at once.
    pub async fn acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        let inner = &*self.inner;
        // The semaphore is fair: free permits exist only when nobody waits, so this never
        // jumps the queue.
        if let Some(permit) = self.try_take() {
            return Ok(permit);
        }
        if inner
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                (q < inner.max_queued).then_some(q + 1)
            })
            .is_err()
        {
            return Err(self.rejected());
        }
        let _slot = QueueSlot(&inner.queued);
        let wait = inner.semaphore.acquire();
        let acquired = match inner.queue_timeout {
            // A timeout too long to be a deadline (`Duration::MAX`) waits without one.
            Some(timeout) => {
                let deadline = deadline_after(tokio::time::Instant::now(), timeout);
                match run_until(deadline, wait).await {
                    Ok(acquired) => acquired,
                    Err(()) => {
                        inner.calls.increment(TIMED_OUT);
                        return Err(BulkheadFull::QueueTimeout { waited: timeout });
                    }
                }
            }
            None => wait.await,
        };
        // The semaphore is never closed, so the error arm is unreachable; report "full".
        acquired
            .map(|permit| BulkheadPermit::new(&self.inner, permit))
            .map_err(|_closed| self.rejected())
    }

    /// Runs `f` in a slot (waiting in the queue if needed); the slot is released when the call
    /// finishes or its future is dropped.
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, BulkheadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _permit = self.acquire().await.map_err(BulkheadError::Full)?;
        f().await.map_err(BulkheadError::Inner)
    }

    /// Free slots right now.
    pub fn available(&self) -> usize {
        self.inner.semaphore.available_permits()
    }

    /// Calls holding a slot right now.
    pub fn running(&self) -> usize {
        self.inner.max_concurrent - self.available().min(self.inner.max_concurrent)
    }

    /// Calls waiting in the queue right now.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// The cap on concurrent calls.
    pub fn max_concurrent(&self) -> usize {
        self.inner.max_concurrent
    }

    /// The cap on waiting calls.
    pub fn max_queued(&self) -> usize {
        self.inner.max_queued
    }

    /// The bulkhead's name: the `name` label of its metrics (`unnamed` unless the builder was
    /// given one).
    pub fn name(&self) -> &str {
        self.inner.calls.name()
    }

    /// A slot if one is free, without counting a refusal (the caller queues next).
    #[inline]
    pub(crate) fn try_take(&self) -> Option<BulkheadPermit> {
        let permit = self.inner.semaphore.try_acquire().ok()?;
        Some(BulkheadPermit::new(&self.inner, permit))
    }

    /// Counts a refusal and says why.
    #[cold]
    pub(crate) fn rejected(&self) -> BulkheadFull {
        self.inner.calls.increment(REJECTED);
        BulkheadFull::QueueFull {
            max_concurrent: self.inner.max_concurrent,
            max_queued: self.inner.max_queued,
        }
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.name())
            .field("max_concurrent", &self.inner.max_concurrent)
            .field("max_queued", &self.inner.max_queued)
            .field("queue_timeout", &self.inner.queue_timeout)
            .field("running", &self.running())
            .field("queued", &self.queued())
            .finish()
    }
}

/// Builder of a [`Bulkhead`]; see [`Bulkhead::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct BulkheadBuilder {
    max_concurrent: usize,
    max_queued: usize,
    queue_timeout: Option<Duration>,
    name: Option<SharedString>,
}

impl Default for BulkheadBuilder {
    fn default() -> Self {
        Self {
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_queued: 0,
            queue_timeout: None,
            name: None,
        }
    }
}

impl BulkheadBuilder {
    /// Names the bulkhead: the `name` label of `bulkhead_calls_total` and
    /// `bulkhead_in_flight` (default `unnamed`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(SharedString::from(name.into()));
        self
    }

    /// The most calls running at once (default 25, at least 1).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// The most calls waiting for a slot (default 0: refuse at once when all slots are busy).
    pub fn max_queued(mut self, n: usize) -> Self {
        self.max_queued = n;
        self
    }

    /// The longest a call waits in the queue (default: until a slot frees). Needs
    /// `max_queued ≥ 1`; `Duration::MAX` is the same as no timeout.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = Some(timeout);
        self
    }

    /// The bulkhead, or a [`ConfigError`] naming the rejected option.
    ///
    /// ```
    /// use resilience::bulkhead::Bulkhead;
    ///
    /// let err = Bulkhead::builder().max_concurrent(0).build().unwrap_err();
    /// assert_eq!(err.field, "max_concurrent");
    /// ```
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::new("max_concurrent", "must be at least 1"));
        }
        if self.max_concurrent > Semaphore::MAX_PERMITS {
            return Err(ConfigError::new(
                "max_concurrent",
                format!("must be at most {}", Semaphore::MAX_PERMITS),
            ));
        }
        if let Some(timeout) = self.queue_timeout {
            if timeout.is_zero() {
                return Err(ConfigError::new(
                    "queue_timeout",
                    "must be greater than zero (use max_queued(0) for no waiting)",
                ));
            }
            if self.max_queued == 0 {
                return Err(ConfigError::new(
                    "queue_timeout",
                    "has no effect without a queue: set max_queued to at least 1",
                ));
            }
        }
        let name = self.name.unwrap_or(SharedString::const_str(UNNAMED));
        Ok(Bulkhead {
            inner: Arc::new(Inner {
                semaphore: Semaphore::new(self.max_concurrent),
                max_concurrent: self.max_concurrent,
                max_queued: self.max_queued,
                queue_timeout: self.queue_timeout,
                queued: AtomicUsize::new(0),
                calls: OutcomeCounters::new(BULKHEAD_CALLS_TOTAL, name.clone(), &OUTCOMES),
                in_flight: NamedGauge::new(BULKHEAD_IN_FLIGHT, name),
            }),
        })
    }
}
