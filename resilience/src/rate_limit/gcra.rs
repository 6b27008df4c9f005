//! The direct (un-keyed) limiter: GCRA with its whole state in one `AtomicU64`.
//!
//! GCRA keeps a single number, the *theoretical arrival time* (TAT): the instant at which the
//! bucket would be full again. A request of cost `c` (in nanoseconds: `n × interval`) at time
//! `now` is admitted iff `max(TAT, now) + c - now ≤ burst × interval`, and then TAT becomes
//! `max(TAT, now) + c`. That is exactly a token bucket of capacity `burst`, without a timer.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::SharedString;

use super::clock::{Clock, QuantaClock};
use super::decision::{RateLimitDecision, RateLimited};
use super::error::CheckError;
use super::metrics::{ALLOWED, Decisions, REJECTED};
use super::quota::{MAX_NANOS, Quota, QuotaSpec, quota_methods};
use crate::ConfigError;

/// Limiter time: nanoseconds since `start`, clamped to [`MAX_NANOS`] (292 years), so that
/// `now + backlog` below never overflows whatever the clock says. Past the clamp time stops:
/// the limiter then refills nothing more, which never admits more than the quota.
#[inline]
pub(crate) fn limiter_time(clock_nanos: u64, start: u64) -> u64 {
    clock_nanos.saturating_sub(start).min(MAX_NANOS)
}

/// Tries to take `cost` nanoseconds of credit; on refusal returns how many nanoseconds to wait.
///
/// `now ≤ MAX_NANOS` and `cost ≤ limit ≤ MAX_NANOS` (see [`limiter_time`] and the quota's
/// build), so `now + ahead` cannot overflow.
///
/// Relaxed ordering is enough: the limiter's whole state is this one atomic, and every
/// read-modify-write of one atomic is totally ordered.
#[inline]
pub(crate) fn acquire(tat: &AtomicU64, now: u64, cost: u64, limit: u64) -> Result<(), u64> {
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        let base = current.max(now);
        let ahead = (base - now).saturating_add(cost);
        if ahead > limit {
            return Err(ahead - limit);
        }
        match tat.compare_exchange_weak(current, now + ahead, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => return Ok(()),
            Err(actual) => current = actual,
        }
    }
}

/// Like [`acquire`], with the whole decision (remaining tokens, retry and reset times).
/// A cost of zero only looks and writes nothing.
pub(crate) fn decide(tat: &AtomicU64, now: u64, cost: u64, quota: &Quota) -> RateLimitDecision {
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        // How far the TAT runs ahead of now (0 when the bucket is full); ≤ limit by construction.
        let backlog = current.saturating_sub(now).min(quota.limit);
        let ahead = backlog.saturating_add(cost);
        if ahead > quota.limit {
            return RateLimitDecision {
                allowed: false,
                remaining: (quota.limit - backlog) / quota.interval,
                retry_after: Duration::from_nanos(ahead - quota.limit),
                reset_after: Duration::from_nanos(backlog),
            };
        }
        let allowed = RateLimitDecision {
            allowed: true,
            remaining: (quota.limit - ahead) / quota.interval,
            retry_after: Duration::ZERO,
            reset_after: Duration::from_nanos(ahead),
        };
        if cost == 0 {
            return allowed;
        }
        match tat.compare_exchange_weak(current, now + ahead, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => return allowed,
            Err(actual) => current = actual,
        }
    }
}

/// The cost of `n` tokens in nanoseconds, or the capacity error when `n > burst`.
#[inline]
pub(crate) fn cost_of(quota: &Quota, n: u32) -> Result<u64, CheckError> {
    if n > quota.burst {
        return Err(CheckError::CostExceedsCapacity {
            cost: n,
            capacity: quota.burst,
        });
    }
    // n ≤ burst, and interval × burst was checked not to overflow.
    Ok(quota.interval * u64::from(n))
}

/// An in-memory GCRA rate limiter (a token bucket with capacity = burst), lock-free, whose whole
/// state is one `AtomicU64`. Share it by reference or in an `Arc`.
///
/// ```
/// use resilience::rate_limit::RateLimiter;
///
/// let limiter = RateLimiter::builder().per_second(10).burst(3).build()?;
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_ok());
/// // The burst of 3 is spent; the next token comes back within 100 ms.
/// let refused = limiter.check().unwrap_err();
/// assert!(refused.retry_after <= std::time::Duration::from_millis(100));
/// # Ok::<(), resilience::ConfigError>(())
/// ```
pub struct RateLimiter<C: Clock = QuantaClock> {
    /// Theoretical arrival time, in nanoseconds since `start`.
    tat: AtomicU64,
    quota: Quota,
    /// The clock's reading when the limiter was created.
    start: u64,
    clock: C,
    metrics: Decisions,
}

impl RateLimiter {
    /// A builder; set a rate with `per_second`, `per_minute`, `per_hour`, `per` or `rate`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use resilience::rate_limit::RateLimiter;
    ///
    /// let api = RateLimiter::builder().per_second(100).burst(200).build()?;
    /// assert_eq!(api.quota().burst(), 200);
    ///
    /// let slow = RateLimiter::builder().per(Duration::from_millis(250)).build()?;
    /// assert_eq!(slow.quota().replenish_interval(), Duration::from_millis(250));
    ///
    /// let err = RateLimiter::builder().per_second(0).build().unwrap_err();
    /// assert_eq!(err.field, "per_second");
    /// # Ok::<(), resilience::ConfigError>(())
    /// ```
    pub fn builder() -> RateLimiterBuilder {
        RateLimiterBuilder::default()
    }

    /// A limiter for `quota` on the default clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, QuantaClock::new())
    }
}

impl<C: Clock> RateLimiter<C> {
    /// A limiter for `quota` reading time from `clock`; its bucket starts full.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        let start = clock.now_nanos();
        Self {
            tat: AtomicU64::new(0),
            quota,
            start,
            clock,
            metrics: Decisions::new(None),
        }
    }

    /// The limiter's name: the `name` label of its `rate_limit_decisions_total` (`unnamed`
    /// unless the builder was given one).
    pub fn name(&self) -> &str {
        self.metrics.name()
    }

    #[inline]
    fn now(&self) -> u64 {
        limiter_time(self.clock.now_nanos(), self.start)
    }

    /// Takes one token if there is one; otherwise says how long until there is.
    ///
    /// Lock-free and allocation-free: one clock read and one compare-and-swap.
    ///
    /// ```
    /// use resilience::rate_limit::RateLimiter;
    ///
    /// let limiter = RateLimiter::builder().per_minute(1).build()?;
    /// limiter.check().expect("a fresh limiter admits its burst");
    /// let refused = limiter.check().unwrap_err();
    /// assert!(refused.retry_after.as_secs() >= 59);
    /// # Ok::<(), resilience::ConfigError>(())
    /// ```
    #[inline]
    pub fn check(&self) -> Result<(), RateLimited> {
        let result = self.take();
        self.metrics.record(&result);
        result
    }

    /// [`check`](Self::check) without counting the decision.
    #[inline]
    fn take(&self) -> Result<(), RateLimited> {
        acquire(&self.tat, self.now(), self.quota.interval, self.quota.limit).map_err(|wait| {
            RateLimited {
                retry_after: Duration::from_nanos(wait),
            }
        })
    }

    /// Takes `n` tokens at once, or none. `n` larger than the burst is refused with
    /// [`CheckError::CostExceedsCapacity`] (it could never succeed); `n = 0` always succeeds.
    pub fn check_n(&self, n: u32) -> Result<(), CheckError> {
        let cost = cost_of(&self.quota, n)?;
        if cost == 0 {
            return Ok(());
        }
        let result = self.take_n(cost);
        self.metrics.record(&result);
        result
    }

    fn take_n(&self, cost: u64) -> Result<(), CheckError> {
        acquire(&self.tat, self.now(), cost, self.quota.limit).map_err(|wait| {
            CheckError::Limited(RateLimited {
                retry_after: Duration::from_nanos(wait),
            })
        })
    }

    /// Like [`check_n`](Self::check_n), with the whole answer: whether it was admitted, the
    /// tokens left, when to retry and when the bucket is full again. `n = 0` only looks.
    ///
    /// The only error is [`CheckError::CostExceedsCapacity`]; a refusal is a decision with
    /// `allowed == false`.
    pub fn decide(&self, n: u32) -> Result<RateLimitDecision, CheckError> {
        let cost = cost_of(&self.quota, n)?;
        let decision = decide(&self.tat, self.now(), cost, &self.quota);
        if cost > 0 {
            self.metrics
                .count(if decision.allowed { ALLOWED } else { REJECTED });
        }
        Ok(decision)
    }

    /// Waits until one token is available and takes it. Cancel by dropping the future.
    ///
    /// Sleeps with tokio's timer for the `retry_after` the limiter reports, then tries again.
    /// Counted once, as `allowed`, when the token is taken (a wait is not a rejection).
    pub async fn until_ready(&self) {
        while let Err(limited) = self.take() {
            tokio::time::sleep(limited.retry_after).await;
        }
        self.metrics.count(ALLOWED);
    }

    /// Waits until `n` tokens are available and takes them. Fails at once with
    /// [`CheckError::CostExceedsCapacity`] when `n` exceeds the burst rather than waiting forever.
    pub async fn until_n_ready(&self, n: u32) -> Result<(), CheckError> {
        let cost = cost_of(&self.quota, n)?;
        if cost == 0 {
            return Ok(());
        }
        loop {
            match self.take_n(cost) {
                Ok(()) => {
                    self.metrics.count(ALLOWED);
                    return Ok(());
                }
                Err(CheckError::Limited(limited)) => tokio::time::sleep(limited.retry_after).await,
                Err(other) => return Err(other),
            }
        }
    }

    /// The limiter's quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The clock the limiter reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Fills the bucket again, forgetting all past requests.
    pub fn reset(&self) {
        self.tat.store(0, Ordering::Relaxed);
    }
}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name())
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

/// Builder of a [`RateLimiter`]; see [`RateLimiter::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RateLimiterBuilder<C = QuantaClock> {
    quota: QuotaSpec,
    clock: Option<C>,
    name: Option<SharedString>,
}

impl Default for RateLimiterBuilder {
    fn default() -> Self {
        Self {
            quota: QuotaSpec::default(),
            clock: None,
            name: None,
        }
    }
}

impl<C> RateLimiterBuilder<C> {
    quota_methods!();

    /// Names the limiter: the `name` label of its `rate_limit_decisions_total` (default
    /// `unnamed`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(SharedString::from(name.into()));
        self
    }

    /// Reads time from `clock` instead of the default [`QuantaClock`] (e.g. a
    /// [`TokioClock`](super::TokioClock) in tests with a paused tokio clock).
    pub fn clock<C2: Clock>(self, clock: C2) -> RateLimiterBuilder<C2> {
        RateLimiterBuilder {
            quota: self.quota,
            clock: Some(clock),
            name: self.name,
        }
    }
}

impl<C: Clock + Default> RateLimiterBuilder<C> {
    /// The limiter, or a [`ConfigError`] naming the rejected option.
    pub fn build(self) -> Result<RateLimiter<C>, ConfigError> {
        let quota = self.quota.build()?;
        let mut limiter = RateLimiter::with_clock(quota, self.clock.unwrap_or_default());
        limiter.metrics = Decisions::new(self.name);
        Ok(limiter)
    }
}
