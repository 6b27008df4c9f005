//! The state machine.
//!
//! One `AtomicU64` holds the state, a generation (bumped on every transition) and the
//! consecutive-failure count. A call in Closed reads it when it starts and, on success, reads it
//! again: with no failures pending there is nothing to write, so the success path touches no
//! shared cache line for writing and scales across threads. Failures update the word with a CAS
//! (and read the clock, for the snapshot's last-failure time); every transition, and everything in
//! HalfOpen, happens under a mutex. A permit remembers the generation it was issued in, so the
//! outcome of a call that started before a transition is ignored, in every mode: failures are
//! checked against the generation under the lock that transitions hold; a success, checked with
//! one atomic read, can only land on the wrong side of a transition it races to the nanosecond.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics::{Counter, Gauge, SharedString};
use tokio::time::Instant;

use super::config::{CircuitBreakerConfig, SlidingWindow, TripPolicy};
use super::error::{CallError, CircuitOpenError};
use super::state::{CircuitSnapshot, CircuitState, StateChange};
use super::window::{CountWindow, StripedCounter, TimeWindow};
use crate::metrics as names;
use crate::metrics::lazy::{LazyHandle, OutcomeCounters};

// Word layout: bits 0..3 state, 3..32 generation, 32..64 consecutive failures.
const STATE_BITS: u64 = 0b111;
const GEN_SHIFT: u32 = 3;
const GEN_MASK: u64 = ((1 << 29) - 1) << GEN_SHIFT;
const KEY_MASK: u64 = STATE_BITS | GEN_MASK;
const FAIL_SHIFT: u32 = 32;
const FAIL_MASK: u64 = u64::MAX << FAIL_SHIFT;
const CLOSED: u64 = CircuitState::Closed as u64;
const HALF_OPEN: u64 = CircuitState::HalfOpen as u64;
const DISABLED: u64 = CircuitState::Disabled as u64;

const fn pack(state: CircuitState, generation: u64, failures: u32) -> u64 {
    (state as u64) | ((generation << GEN_SHIFT) & GEN_MASK) | ((failures as u64) << FAIL_SHIFT)
}
const fn state_of(word: u64) -> CircuitState {
    CircuitState::from_bits(word & STATE_BITS)
}
const fn gen_of(word: u64) -> u64 {
    (word & GEN_MASK) >> GEN_SHIFT
}
const fn failures_of(word: u64) -> u32 {
    (word >> FAIL_SHIFT) as u32
}

type Callback = Arc<dyn Fn(&StateChange) + Send + Sync>;

/// How the breaker decides to open, with the counters that decision needs.
enum Mode {
    Consecutive {
        threshold: u32,
    },
    CountRate {
        percent: f64,
        minimum_calls: u64,
        successes: StripedCounter,
    },
    TimeRate {
        percent: f64,
        minimum_calls: u64,
        window: TimeWindow,
    },
}

/// State that only changes under the lock.
struct Shared {
    opened_at: Option<Instant>,
    half_open_in_flight: u32,
    half_open_successes: u32,
    count_window: Option<CountWindow>,
}

/// Metric handles. The state gauge is registered when the breaker is created (closed is a
/// value worth exporting); the counters on their first increment, so a scrape never shows a
/// zero-valued outcome or transition that did not happen.
struct Instruments {
    state: Gauge,
    requests: OutcomeCounters<2>,
    rejected: LazyHandle<Counter>,
    /// `[from][to]`; only transitions that can happen are ever resolved.
    changes: [[LazyHandle<Counter>; 5]; 5],
}

/// The `outcome` labels of [`names::CIRCUIT_BREAKER_REQUESTS_TOTAL`], by index.
const REQUEST_OUTCOMES: [&str; 2] = ["success", "failure"];
const SUCCESS: usize = 0;
const FAILURE: usize = 1;

#[cfg(test)]
const STATES: [CircuitState; 5] = [
    CircuitState::Closed,
    CircuitState::Open,
    CircuitState::HalfOpen,
    CircuitState::ForcedOpen,
    CircuitState::Disabled,
];

/// Whether the breaker can move from `from` to `to` (by itself or by hand).
fn can_move(from: CircuitState, to: CircuitState) -> bool {
    use CircuitState::*;
    match (from, to) {
        _ if from == to => false,
        (Closed, HalfOpen) => false,
        (ForcedOpen | Disabled, Open | HalfOpen) => false,
        _ => true,
    }
}

impl Instruments {
    fn new(name: &Arc<str>) -> Self {
        let label = SharedString::from(Arc::clone(name));
        Self {
            state: metrics::gauge!(names::CIRCUIT_BREAKER_STATE, "name" => label.clone()),
            requests: OutcomeCounters::new(
                names::CIRCUIT_BREAKER_REQUESTS_TOTAL,
                label,
                &REQUEST_OUTCOMES,
            ),
            rejected: LazyHandle::new(),
            changes: std::array::from_fn(|_| std::array::from_fn(|_| LazyHandle::new())),
        }
    }

    #[inline]
    fn succeeded(&self) {
        self.requests.increment(SUCCESS);
    }

    #[inline]
    fn failed(&self) {
        self.requests.increment(FAILURE);
    }

    fn rejected(&self) {
        let name = self.requests.name();
        self.rejected
            .get(|| metrics::counter!(names::CIRCUIT_BREAKER_REJECTIONS_TOTAL, "name" => name.clone()))
            .increment(1);
    }

    fn changed(&self, from: CircuitState, to: CircuitState) {
        if can_move(from, to)
            && let Some(cell) = self
                .changes
                .get(from as usize)
                .and_then(|row| row.get(to as usize))
        {
            let name = self.requests.name();
            cell.get(|| {
                metrics::counter!(names::CIRCUIT_BREAKER_STATE_CHANGES_TOTAL,
                    "name" => name.clone(), "from" => from.as_str(), "to" => to.as_str())
            })
            .increment(1);
        }
        self.state.set(to.gauge_value());
    }
}

/// What a permit remembers: the word it was issued under and, with a slow-call threshold, when
/// the call started (nanoseconds since the breaker's epoch, plus one; 0 for none). Two plain
/// words, so the compiler keeps a ticket in registers on the hot path.
#[derive(Clone, Copy)]
struct Ticket {
    word: u64,
    start: u64,
}

/// A circuit breaker. Cheap to share behind an `Arc` (see [`get_circuit_breaker`]); `Send + Sync`.
///
/// [`get_circuit_breaker`]: super::get_circuit_breaker
pub struct CircuitBreaker {
    word: AtomicU64,
    /// Nanoseconds since `epoch` at which an open breaker lets a trial call through.
    open_until: AtomicU64,
    /// Nanoseconds since `epoch` of the last counted failure, plus one; 0 for none.
    last_failure: AtomicU64,
    epoch: Instant,
    name: Arc<str>,
    config: CircuitBreakerConfig,
    mode: Mode,
    shared: Mutex<Shared>,
    callbacks: ArcSwap<Vec<Callback>>,
    metrics: Instruments,
}

impl CircuitBreaker {
    /// A closed breaker called `name` (used in errors, logs and metric labels).
    ///
    /// The state gauge is registered here, each counter on its first increment: install the
    /// `metrics` recorder before creating breakers.
    pub fn new(name: impl Into<Arc<str>>, config: CircuitBreakerConfig) -> Self {
        let name = name.into();
        let (mode, count_window) = match config.trip {
            TripPolicy::ConsecutiveFailures(threshold) => (Mode::Consecutive { threshold }, None),
            TripPolicy::FailureRate {
                percent,
                window: SlidingWindow::Count(size),
                minimum_calls,
            } => (
                Mode::CountRate {
                    percent,
                    minimum_calls: u64::from(minimum_calls),
                    successes: StripedCounter::new(),
                },
                Some(CountWindow::new(size)),
            ),
            TripPolicy::FailureRate {
                percent,
                window: SlidingWindow::Time(window),
                minimum_calls,
            } => (
                Mode::TimeRate {
                    percent,
                    minimum_calls: u64::from(minimum_calls),
                    window: TimeWindow::new(duration_nanos(window)),
                },
                None,
            ),
        };
        let metrics = Instruments::new(&name);
        metrics.state.set(CircuitState::Closed.gauge_value());
        Self {
            word: AtomicU64::new(pack(CircuitState::Closed, 0, 0)),
            open_until: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            epoch: Instant::now(),
            name,
            config,
            mode,
            shared: Mutex::new(Shared {
                opened_at: None,
                half_open_in_flight: 0,
                half_open_successes: 0,
                count_window,
            }),
            callbacks: ArcSwap::from_pointee(Vec::new()),
            metrics,
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The breaker's configuration.
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    /// The current state. An open breaker whose reset timeout has passed still reports `Open`
    /// until the next call moves it to `HalfOpen`.
    pub fn state(&self) -> CircuitState {
        state_of(self.word.load(Ordering::Acquire))
    }

    /// Runs `f` through the breaker: rejected with [`CallError::Open`] while open, otherwise its
    /// outcome is recorded. An `Err` counts as a failure unless a
    /// [`failure_predicate`](super::CircuitBreakerConfigBuilder::failure_predicate) for its type
    /// says otherwise, in which case it counts as a success (the service answered). Dropping the
    /// future before `f` completes records nothing.
    ///
    /// ```
    /// use resilience::{CallError, CircuitBreaker, CircuitBreakerConfig};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let config = CircuitBreakerConfig::builder().failure_threshold(2).build()?;
    /// let breaker = CircuitBreaker::new("inventory", config);
    ///
    /// let ok = breaker.call(|| async { Ok::<_, std::io::Error>(42) }).await;
    /// assert_eq!(ok.ok(), Some(42));
    ///
    /// for _ in 0..2 {
    ///     let failed = breaker.call(|| async { Err::<(), _>(std::io::Error::other("down")) }).await;
    ///     assert!(matches!(failed, Err(CallError::Inner(_))));
    /// }
    /// // Open now: the function is not even called.
    /// let rejected = breaker.call(|| async { Ok::<_, std::io::Error>(1) }).await;
    /// assert!(matches!(rejected, Err(CallError::Open(e)) if e.retry_after.is_some()));
    /// # Ok::<(), resilience::ConfigError>(())
    /// # }).unwrap();
    /// ```
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: 'static,
    {
        let permit = self.try_acquire().map_err(CallError::Open)?;
        let result = f().await;
        self.settle(permit, result, |e| self.config.is_failure(e))
    }

    /// Like [`call`](Self::call), with `is_failure` deciding which errors count as failures (the
    /// configured predicates are not consulted).
    pub async fn call_with<F, Fut, T, E, P>(&self, f: F, is_failure: P) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: FnOnce(&E) -> bool,
    {
        let permit = self.try_acquire().map_err(CallError::Open)?;
        let result = f().await;
        self.settle(permit, result, is_failure)
    }

    /// Runs a blocking closure through the breaker; see [`call`](Self::call).
    #[inline]
    pub fn call_blocking<F, T, E>(&self, f: F) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: 'static,
    {
        let permit = self.try_acquire().map_err(CallError::Open)?;
        let result = f();
        self.settle(permit, result, |e| self.config.is_failure(e))
    }

    /// Runs a blocking closure through the breaker; see [`call_with`](Self::call_with).
    pub fn call_blocking_with<F, T, E, P>(&self, f: F, is_failure: P) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Result<T, E>,
        P: FnOnce(&E) -> bool,
    {
        let permit = self.try_acquire().map_err(CallError::Open)?;
        let result = f();
        self.settle(permit, result, is_failure)
    }

    #[inline]
    fn settle<T, E>(
        &self,
        permit: Permit<'_>,
        result: Result<T, E>,
        is_failure: impl FnOnce(&E) -> bool,
    ) -> Result<T, CallError<E>> {
        match result {
            Ok(v) => {
                permit.success();
                Ok(v)
            }
            Err(e) => {
                permit.record(is_failure(&e));
                Err(CallError::Inner(e))
            }
        }
    }

    /// Asks to make one call: a [`Permit`] to report the outcome on, or the rejection. For layers
    /// and generated code; [`call`](Self::call) is this plus the bookkeeping.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, CircuitOpenError> {
        self.acquire().map(|ticket| Permit {
            breaker: self,
            ticket,
            armed: true,
        })
    }

    /// [`try_acquire`](Self::try_acquire) for a permit that owns a handle on the breaker, for
    /// futures that must be `'static`.
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit, CircuitOpenError> {
        self.acquire().map(|ticket| OwnedPermit {
            breaker: Arc::clone(self),
            ticket,
            armed: true,
        })
    }

    /// Resets to Closed with every count cleared (also ends ForcedOpen and Disabled).
    pub fn reset(&self) {
        self.manual(CircuitState::Closed);
    }

    /// Opens the breaker until [`reset`](Self::reset): every call is rejected.
    pub fn force_open(&self) {
        self.manual(CircuitState::ForcedOpen);
    }

    /// Lets every call through and counts nothing until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.manual(CircuitState::Disabled);
    }

    /// Registers a callback run after every state transition (outside the breaker's lock, on the
    /// thread that caused it). Keep it short; it may call back into the breaker.
    pub fn on_state_change<F>(&self, callback: F)
    where
        F: Fn(&StateChange) + Send + Sync + 'static,
    {
        let callback: Callback = Arc::new(callback);
        self.callbacks.rcu(|current| {
            let mut next = Vec::with_capacity(current.len() + 1);
            next.extend(current.iter().cloned());
            next.push(Arc::clone(&callback));
            next
        });
    }

    /// A consistent view of the state and its counts.
    pub fn snapshot(&self) -> CircuitSnapshot {
        let now = Instant::now();
        let mut shared = self.lock();
        let word = self.word.load(Ordering::Acquire);
        let state = state_of(word);
        let (failure_count, window_calls) = match (&self.mode, state) {
            (Mode::CountRate { successes, .. }, CircuitState::Closed) => {
                match shared.count_window.as_mut() {
                    Some(w) => {
                        let (calls, fails) = w.stats(successes.sum());
                        (fails, Some(calls))
                    }
                    None => (0, Some(0)),
                }
            }
            (Mode::TimeRate { window, .. }, CircuitState::Closed) => {
                let (calls, fails) = window.stats(self.nanos(now));
                (fails, Some(calls))
            }
            // Outside Closed the window is not counting: no call count beside the failures
            // that opened the breaker.
            _ => (u64::from(failures_of(word)), None),
        };
        let last_failure = match self.last_failure.load(Ordering::Acquire) {
            0 => None,
            n => self.epoch.checked_add(Duration::from_nanos(n - 1)),
        };
        let retry_after = (state == CircuitState::Open).then(|| {
            let until = self.open_until.load(Ordering::Acquire);
            Duration::from_nanos(until.saturating_sub(self.nanos(now)))
        });
        let half_open = state == CircuitState::HalfOpen;
        CircuitSnapshot {
            name: Arc::clone(&self.name),
            state,
            failure_count,
            window_calls,
            last_failure,
            opened_at: if state == CircuitState::Open {
                shared.opened_at
            } else {
                None
            },
            retry_after,
            half_open_in_flight: if half_open {
                shared.half_open_in_flight
            } else {
                0
            },
            half_open_successes: if half_open {
                shared.half_open_successes
            } else {
                0
            },
        }
    }

    // ---- acquiring ----

    #[inline]
    fn acquire(&self) -> Result<Ticket, CircuitOpenError> {
        let word = self.word.load(Ordering::Acquire);
        let state = word & STATE_BITS;
        if state == CLOSED || state == DISABLED {
            return Ok(Ticket {
                word,
                start: self.start_time(),
            });
        }
        self.acquire_slow(word)
    }

    #[inline]
    fn start_time(&self) -> u64 {
        if self.config.slow_call_threshold.is_some() {
            self.nanos(Instant::now()).saturating_add(1)
        } else {
            0
        }
    }

    #[cold]
    fn acquire_slow(&self, word: u64) -> Result<Ticket, CircuitOpenError> {
        match state_of(word) {
            CircuitState::Open => {
                let until = self.open_until.load(Ordering::Acquire);
                let now = self.nanos(Instant::now());
                if now < until {
                    return Err(self.reject(Some(Duration::from_nanos(until - now))));
                }
                self.acquire_trial()
            }
            CircuitState::HalfOpen => self.acquire_trial(),
            CircuitState::ForcedOpen => Err(self.reject(None)),
            CircuitState::Closed | CircuitState::Disabled => Ok(Ticket {
                word,
                start: self.start_time(),
            }),
        }
    }

    /// Open with the timeout passed, or HalfOpen: take a trial slot under the lock.
    fn acquire_trial(&self) -> Result<Ticket, CircuitOpenError> {
        let now = Instant::now();
        let mut shared = self.lock();
        let mut word = self.word.load(Ordering::Acquire);
        let mut change = None;
        let result = match state_of(word) {
            CircuitState::Open => {
                let until = self.open_until.load(Ordering::Acquire);
                let now_nanos = self.nanos(now);
                if now_nanos < until {
                    Err(Some(Duration::from_nanos(until - now_nanos)))
                } else {
                    change = self.transition(
                        &mut shared,
                        word,
                        CircuitState::HalfOpen,
                        failures_of(word),
                        now,
                    );
                    word = self.word.load(Ordering::Acquire);
                    shared.half_open_in_flight = 1;
                    Ok(word)
                }
            }
            CircuitState::HalfOpen => {
                if shared.half_open_in_flight < self.config.half_open_max_calls {
                    shared.half_open_in_flight += 1;
                    Ok(word)
                } else {
                    Err(None)
                }
            }
            CircuitState::ForcedOpen => Err(None),
            CircuitState::Closed | CircuitState::Disabled => Ok(word),
        };
        drop(shared);
        self.notify(change);
        match result {
            Ok(word) => Ok(Ticket {
                word,
                start: self.start_time(),
            }),
            Err(retry_after) => Err(self.reject(retry_after)),
        }
    }

    fn reject(&self, retry_after: Option<Duration>) -> CircuitOpenError {
        self.metrics.rejected();
        CircuitOpenError {
            name: Arc::clone(&self.name),
            retry_after,
        }
    }

    // ---- outcomes ----

    #[inline]
    fn on_success(&self, t: Ticket) {
        if t.start != 0 && self.is_slow(t.start) {
            return self.on_failure(t);
        }
        self.metrics.succeeded();
        match t.word & STATE_BITS {
            CLOSED => {
                // One read of the word: whether failures are pending and whether the call is
                // stale (its generation is gone), the same test in every mode.
                let word = self.word.load(Ordering::Relaxed);
                let current = word & KEY_MASK == t.word & KEY_MASK;
                match &self.mode {
                    // Failures pending: clear them (`clear_failures` repeats the generation test
                    // in its CAS loop). None pending, the common case, writes nothing.
                    Mode::Consecutive { .. } if word & FAIL_MASK != 0 => {
                        self.clear_failures(t.word)
                    }
                    Mode::CountRate { successes, .. } if current => successes.increment(),
                    Mode::TimeRate { window, .. } if current => {
                        window.record(self.nanos(Instant::now()), false)
                    }
                    // Consecutive with nothing pending, or a stale call in a rate mode.
                    _ => {}
                }
            }
            HALF_OPEN => self.trial_outcome(t, false),
            _ => {}
        }
    }

    #[cold]
    fn is_slow(&self, start: u64) -> bool {
        let elapsed = self.nanos(Instant::now()).saturating_sub(start - 1);
        self.config
            .slow_call_threshold
            .is_some_and(|threshold| elapsed >= duration_nanos(threshold))
    }

    #[cold]
    fn clear_failures(&self, ticket_word: u64) {
        let mut word = self.word.load(Ordering::Acquire);
        while word & KEY_MASK == ticket_word & KEY_MASK && word & FAIL_MASK != 0 {
            match self.word.compare_exchange_weak(
                word,
                word & KEY_MASK,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(current) => word = current,
            }
        }
    }

    #[cold]
    fn on_failure(&self, t: Ticket) {
        self.metrics.failed();
        let state = t.word & STATE_BITS;
        if (state != CLOSED && state != HALF_OPEN) || !self.is_current(t) {
            // Not counted, nor kept as the last failure. The checks under the lock below repeat
            // the staleness test where a transition could race it.
            return;
        }
        let now = Instant::now();
        self.last_failure
            .store(self.nanos(now).saturating_add(1), Ordering::Release);
        if state == HALF_OPEN {
            return self.trial_outcome(t, true);
        }
        match &self.mode {
            Mode::Consecutive { threshold } => {
                let mut word = self.word.load(Ordering::Acquire);
                loop {
                    if word & KEY_MASK != t.word & KEY_MASK {
                        return; // a transition happened since the call started
                    }
                    let failures = failures_of(word).saturating_add(1);
                    if failures >= *threshold {
                        let mut shared = self.lock();
                        let change =
                            self.transition(&mut shared, t.word, CircuitState::Open, failures, now);
                        drop(shared);
                        return self.notify(change);
                    }
                    match self.word.compare_exchange_weak(
                        word,
                        word + (1 << FAIL_SHIFT),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return,
                        Err(current) => word = current,
                    }
                }
            }
            Mode::CountRate {
                percent,
                minimum_calls,
                successes,
            } => {
                let mut shared = self.lock();
                if self.word.load(Ordering::Acquire) & KEY_MASK != t.word & KEY_MASK {
                    return;
                }
                let Some(window) = shared.count_window.as_mut() else {
                    return;
                };
                let (calls, fails) = window.record_failure(successes.sum());
                if trips(*percent, *minimum_calls, calls, fails) {
                    let change =
                        self.transition(&mut shared, t.word, CircuitState::Open, clamp(fails), now);
                    drop(shared);
                    self.notify(change);
                }
            }
            Mode::TimeRate {
                percent,
                minimum_calls,
                window,
            } => {
                // Under the lock, like the count window: transitions hold it too, so a failure
                // is either recorded in the generation it started in or not at all.
                let mut shared = self.lock();
                if !self.is_current(t) {
                    return;
                }
                let at = self.nanos(now);
                window.record(at, true);
                let (calls, fails) = window.stats(at);
                if trips(*percent, *minimum_calls, calls, fails) {
                    let change =
                        self.transition(&mut shared, t.word, CircuitState::Open, clamp(fails), now);
                    drop(shared);
                    self.notify(change);
                }
            }
        }
    }

    /// Whether the breaker is still in the state and generation the ticket was issued in: the
    /// one test, in every mode, that keeps the outcome of a call that started before a
    /// transition out of the counts.
    #[inline]
    fn is_current(&self, t: Ticket) -> bool {
        self.word.load(Ordering::Acquire) & KEY_MASK == t.word & KEY_MASK
    }

    /// The outcome of a half-open trial call.
    #[cold]
    fn trial_outcome(&self, t: Ticket, failed: bool) {
        let now = Instant::now();
        let mut shared = self.lock();
        let word = self.word.load(Ordering::Acquire);
        if word & KEY_MASK != t.word & KEY_MASK {
            return; // stale: the trial round it belonged to is over
        }
        shared.half_open_in_flight = shared.half_open_in_flight.saturating_sub(1);
        let change = if failed {
            let failures = failures_of(word).saturating_add(1);
            self.transition(&mut shared, word, CircuitState::Open, failures, now)
        } else {
            shared.half_open_successes += 1;
            if shared.half_open_successes >= self.config.success_threshold {
                self.transition(&mut shared, word, CircuitState::Closed, 0, now)
            } else {
                None
            }
        };
        drop(shared);
        self.notify(change);
    }

    /// A permit dropped without an outcome: give its trial slot back.
    #[inline]
    fn on_cancel(&self, t: Ticket) {
        if t.word & STATE_BITS == HALF_OPEN {
            self.release_trial(t);
        }
    }

    #[cold]
    fn release_trial(&self, t: Ticket) {
        let mut shared = self.lock();
        if self.word.load(Ordering::Acquire) & KEY_MASK == t.word & KEY_MASK {
            shared.half_open_in_flight = shared.half_open_in_flight.saturating_sub(1);
        }
    }

    // ---- transitions ----

    fn manual(&self, to: CircuitState) {
        let now = Instant::now();
        let mut shared = self.lock();
        let word = self.word.load(Ordering::Acquire);
        let change = if state_of(word) == to && to == CircuitState::Closed {
            // Already closed: a reset still clears the counts, without a state change.
            self.enter(&mut shared, to, now);
            self.word.fetch_and(KEY_MASK, Ordering::AcqRel);
            None
        } else if state_of(word) == to {
            None
        } else {
            self.transition(&mut shared, word, to, 0, now)
        };
        drop(shared);
        self.notify(change);
    }

    /// Moves from the state and generation of `from` to `to`, if the breaker is still there.
    /// Called with the lock held (`shared` is its guard).
    fn transition(
        &self,
        shared: &mut Shared,
        from: u64,
        to: CircuitState,
        failures: u32,
        now: Instant,
    ) -> Option<StateChange> {
        let current = self.word.load(Ordering::Acquire);
        if current & KEY_MASK != from & KEY_MASK {
            return None;
        }
        self.enter(shared, to, now);
        let next = pack(to, gen_of(current).wrapping_add(1), failures);
        // Lock-free paths only change the failure bits of the current generation; swapping in a
        // new generation makes their pending CAS fail, and they then see the call as stale.
        self.word.swap(next, Ordering::AcqRel);
        let from = state_of(current);
        self.metrics.changed(from, to);
        if to == CircuitState::Open || to == CircuitState::ForcedOpen {
            tracing::warn!(breaker = %self.name, %from, %to, "circuit breaker opened");
        } else {
            tracing::info!(breaker = %self.name, %from, %to, "circuit breaker state changed");
        }
        Some(StateChange {
            name: Arc::clone(&self.name),
            from,
            to,
        })
    }

    /// Sets up the bookkeeping of the state being entered.
    fn enter(&self, shared: &mut Shared, to: CircuitState, now: Instant) {
        shared.half_open_in_flight = 0;
        shared.half_open_successes = 0;
        shared.opened_at = None;
        match to {
            CircuitState::Open => {
                shared.opened_at = Some(now);
                let until = self
                    .nanos(now)
                    .saturating_add(duration_nanos(self.config.reset_timeout));
                self.open_until.store(until, Ordering::Release);
            }
            CircuitState::Closed => match &self.mode {
                Mode::Consecutive { .. } => {}
                Mode::CountRate { successes, .. } => {
                    if let Some(w) = shared.count_window.as_mut() {
                        w.clear(successes.sum());
                    }
                }
                Mode::TimeRate { window, .. } => window.clear(),
            },
            _ => {}
        }
    }

    fn notify(&self, change: Option<StateChange>) {
        if let Some(change) = change {
            for callback in self.callbacks.load().iter() {
                callback(&change);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // The shared state stays consistent at every await-free step, so a panic elsewhere while
        // holding the lock (e.g. in the metrics recorder) leaves nothing half-done.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn nanos(&self, at: Instant) -> u64 {
        duration_nanos(at.saturating_duration_since(self.epoch))
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn trips(percent: f64, minimum_calls: u64, calls: u64, failures: u64) -> bool {
    calls >= minimum_calls && calls > 0 && (failures as f64) * 100.0 >= percent * (calls as f64)
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Permission to make one call, from [`CircuitBreaker::try_acquire`]. Report the outcome with
/// [`success`](Self::success) or [`failure`](Self::failure); dropping it without an outcome (a
/// cancelled call) records nothing and frees its half-open trial slot.
#[must_use = "report the call's outcome with `success` or `failure`"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    ticket: Ticket,
    armed: bool,
}

impl Permit<'_> {
    /// The call succeeded.
    #[inline]
    pub fn success(mut self) {
        self.armed = false;
        self.breaker.on_success(self.ticket);
    }

    /// The call failed.
    pub fn failure(mut self) {
        self.armed = false;
        self.breaker.on_failure(self.ticket);
    }

    /// Records a failure if `failed`, a success otherwise.
    #[inline]
    pub fn record(self, failed: bool) {
        if failed {
            self.failure()
        } else {
            self.success()
        }
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            self.breaker.on_cancel(self.ticket);
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker.name)
            .field("state", &state_of(self.ticket.word))
            .finish()
    }
}

/// A [`Permit`] that owns a handle on its breaker, from [`CircuitBreaker::try_acquire_owned`].
#[must_use = "report the call's outcome with `success` or `failure`"]
pub struct OwnedPermit {
    breaker: Arc<CircuitBreaker>,
    ticket: Ticket,
    armed: bool,
}

impl OwnedPermit {
    /// The call succeeded.
    #[inline]
    pub fn success(mut self) {
        self.armed = false;
        self.breaker.on_success(self.ticket);
    }

    /// The call failed.
    pub fn failure(mut self) {
        self.armed = false;
        self.breaker.on_failure(self.ticket);
    }

    /// Records a failure if `failed`, a success otherwise.
    #[inline]
    pub fn record(self, failed: bool) {
        if failed {
            self.failure()
        } else {
            self.success()
        }
    }

    /// The breaker this permit belongs to.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            self.breaker.on_cancel(self.ticket);
        }
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("breaker", &self.breaker.name)
            .field("state", &state_of(self.ticket.word))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_fields_do_not_overlap() {
        let w = pack(CircuitState::HalfOpen, (1 << 29) - 1, u32::MAX);
        assert_eq!(state_of(w), CircuitState::HalfOpen);
        assert_eq!(gen_of(w), (1 << 29) - 1);
        assert_eq!(failures_of(w), u32::MAX);
        // The generation wraps inside its field.
        let wrapped = pack(CircuitState::Open, 1 << 29, 0);
        assert_eq!(
            (state_of(wrapped), gen_of(wrapped)),
            (CircuitState::Open, 0)
        );
        assert_eq!(KEY_MASK & FAIL_MASK, 0);
        assert_eq!(KEY_MASK | FAIL_MASK, u64::MAX);
    }

    #[test]
    fn transitions_the_breaker_cannot_make_have_no_counter() {
        use CircuitState::*;
        assert!(!can_move(Closed, HalfOpen));
        assert!(!can_move(ForcedOpen, Open));
        assert!(!can_move(Open, Open));
        assert!(can_move(HalfOpen, Closed));
        assert!(can_move(Disabled, ForcedOpen));
        assert_eq!(
            STATES
                .iter()
                .flat_map(|f| STATES.map(|t| can_move(*f, t)))
                .filter(|m| *m)
                .count(),
            15
        );
    }

    #[test]
    fn rate_threshold_is_inclusive_and_needs_minimum_calls() {
        assert!(trips(50.0, 4, 4, 2));
        assert!(!trips(50.0, 4, 4, 1));
        assert!(!trips(50.0, 5, 4, 4));
        assert!(!trips(10.0, 1, 0, 0));
    }
}
