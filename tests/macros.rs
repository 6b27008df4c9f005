//! Behaviour of the expanded attributes: they do what the hand-written calls do. Time runs on
//! tokio's paused clock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use resilience::retry::Retryable;
use resilience::{BulkheadFull, RateLimited, TimeoutError, bulkhead, rate_limit, retry, timeout};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
enum Error {
    Transient(u32),
    Throttled(Duration),
    Fatal,
    Limited,
    Full,
    TimedOut,
}

/// What `#[retry]` without `retry_if` consults: the same classification `retry()` uses.
impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transient(_) | Self::Throttled(_) | Self::TimedOut
        )
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled(wait) => Some(*wait),
            _ => None,
        }
    }
}

impl From<RateLimited> for Error {
    fn from(_: RateLimited) -> Self {
        Self::Limited
    }
}
impl From<BulkheadFull> for Error {
    fn from(_: BulkheadFull) -> Self {
        Self::Full
    }
}
impl From<TimeoutError> for Error {
    fn from(_: TimeoutError) -> Self {
        Self::TimedOut
    }
}

// --- retry -----------------------------------------------------------------------------------

static QUICK_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry(preset = "quick")]
async fn always_fails_quick() -> Result<(), Error> {
    let n = QUICK_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    Err(Error::Transient(n))
}

#[tokio::test(start_paused = true)]
async fn retry_follows_the_quick_preset() {
    // quick: 2 attempts; the last error comes back unchanged.
    assert_eq!(always_fails_quick().await, Err(Error::Transient(2)));
    assert_eq!(QUICK_CALLS.load(Ordering::SeqCst), 2);
}

static PATIENT_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry(preset = "patient")]
async fn always_fails_patient() -> Result<(), Error> {
    let n = PATIENT_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    Err(Error::Transient(n))
}

#[tokio::test(start_paused = true)]
async fn retry_follows_the_patient_preset() {
    let start = Instant::now();
    assert_eq!(always_fails_patient().await, Err(Error::Transient(5)));
    assert_eq!(PATIENT_CALLS.load(Ordering::SeqCst), 5);
    // Four waits of exponential backoff from 2 s with jitter (each shortened by at most half):
    // at least 1 + 2 + 4 + 8 s, at most 2 + 4 + 8 + 16 s.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(15) && waited <= Duration::from_secs(30),
        "{waited:?}"
    );
}

#[retry(
    max_attempts = 4,
    initial_delay_ms = 100,
    max_delay_ms = 100,
    backoff = "fixed"
)]
async fn fixed_backoff(calls: &AtomicU32) -> Result<u32, Error> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 3 {
        Err(Error::Transient(n))
    } else {
        Ok(n)
    }
}

#[tokio::test(start_paused = true)]
async fn retry_uses_the_given_numbers() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    assert_eq!(fixed_backoff(&calls).await, Ok(3));
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[retry(
    max_attempts = 10,
    initial_delay_ms = 100,
    max_delay_ms = 100,
    backoff = "fixed",
    total_timeout_ms = 250
)]
async fn bounded_by_deadline(calls: &AtomicU32) -> Result<(), Error> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    Err(Error::Transient(n))
}

#[tokio::test(start_paused = true)]
async fn retry_stops_before_a_wait_would_pass_the_deadline() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    // Deadline 250 ms after the first failure: waits end at 100 and 200 ms; a third would end at
    // 300 ms, past it, so the sequence stops with the third attempt's error.
    assert_eq!(bounded_by_deadline(&calls).await, Err(Error::Transient(3)));
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

fn transient(e: &Error) -> bool {
    matches!(e, Error::Transient(_))
}

#[retry(max_attempts = 5, initial_delay_ms = 10, max_delay_ms = 10, retry_if = transient)]
async fn fatal_after_one(calls: &AtomicU32) -> Result<(), Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    Err(Error::Fatal)
}

#[retry(max_attempts = 3, initial_delay_ms = 10, max_delay_ms = 10, retry_if = |e| !matches!(e, Error::Fatal))]
async fn closure_predicate(calls: &AtomicU32) -> Result<(), Error> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    Err(if n == 2 {
        Error::Fatal
    } else {
        Error::Transient(n)
    })
}

#[tokio::test(start_paused = true)]
async fn retry_if_stops_on_errors_it_rejects() {
    let calls = AtomicU32::new(0);
    assert_eq!(fatal_after_one(&calls).await, Err(Error::Fatal));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let calls = AtomicU32::new(0);
    assert_eq!(closure_predicate(&calls).await, Err(Error::Fatal));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[retry(
    max_attempts = 2,
    initial_delay_ms = 10,
    max_delay_ms = 10,
    backoff = "fixed",
    attempt_timeout_ms = 100
)]
async fn slow(calls: &AtomicU32) -> Result<(), Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_cuts_each_attempt() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    assert_eq!(slow(&calls).await, Err(Error::TimedOut));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_millis(210));
}

#[retry(max_attempts = 5, initial_delay_ms = 10, max_delay_ms = 10)]
async fn fatal_by_classification(calls: &AtomicU32) -> Result<(), Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    Err(Error::Fatal)
}

#[tokio::test(start_paused = true)]
async fn without_retry_if_the_error_types_classification_decides() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    assert_eq!(fatal_by_classification(&calls).await, Err(Error::Fatal));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[retry(
    max_attempts = 3,
    initial_delay_ms = 10,
    max_delay_ms = 10,
    backoff = "fixed"
)]
async fn throttled_once(calls: &AtomicU32) -> Result<u32, Error> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        return Err(Error::Throttled(Duration::from_secs(3)));
    }
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_replaces_the_backoff() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    assert_eq!(throttled_once(&calls).await, Ok(2));
    // The error asked for 3 s; the fixed 10 ms backoff is not used.
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[retry(
    max_attempts = 10,
    initial_delay_ms = 10,
    max_delay_ms = 10,
    backoff = "fixed",
    total_timeout_ms = 1500,
    attempt_timeout_ms = 1000
)]
async fn hangs(calls: &AtomicU32) -> Result<(), Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn with_attempt_timeouts_the_deadline_cuts_a_running_attempt() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    // The deadline counts from the first attempt: 1500 ms. Attempt 1 is cut at 1000 ms;
    // attempt 2 starts at 1010 and is cut by the deadline at 1500, not at 2010.
    assert_eq!(hangs(&calls).await, Err(Error::TimedOut));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
}

#[retry(
    max_attempts = 5,
    initial_delay_ms = 1000,
    max_delay_ms = 1000,
    backoff = "fixed"
)]
fn blocking_fatal(calls: &AtomicU32) -> Result<(), Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    Err(Error::Fatal)
}

#[test]
fn sync_fns_use_the_classification_too() {
    let calls = AtomicU32::new(0);
    let start = std::time::Instant::now();
    assert_eq!(blocking_fatal(&calls), Err(Error::Fatal));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // No 1 s wait happened (a retry would have slept for real).
    assert!(start.elapsed() < Duration::from_millis(500));
}

#[retry(
    max_attempts = 3,
    initial_delay_ms = 100,
    max_delay_ms = 100,
    backoff = "fixed",
    on_retry = |ev| events.lock().unwrap().push((ev.attempt, ev.max_attempts, ev.delay, ev.error.error().cloned()))
)]
async fn observed(events: &Mutex<Vec<RetryLog>>, calls: &AtomicU32) -> Result<u32, Error> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 3 {
        return Err(Error::Transient(n));
    }
    Ok(n)
}

type RetryLog = (u32, u32, Duration, Option<Error>);

static BLOCKING_EVENTS: AtomicU32 = AtomicU32::new(0);

fn count_retry(_: &resilience::retry::RetryEvent<'_, Error>) {
    BLOCKING_EVENTS.fetch_add(1, Ordering::SeqCst);
}

#[retry(max_attempts = 4, initial_delay_ms = 1, max_delay_ms = 1, on_retry = count_retry)]
fn observed_blocking() -> Result<(), Error> {
    Err(Error::Transient(0))
}

#[tokio::test(start_paused = true)]
async fn on_retry_sees_each_failed_attempt_before_its_wait() {
    let events = Mutex::new(Vec::new());
    let calls = AtomicU32::new(0);
    assert_eq!(observed(&events, &calls).await, Ok(3));
    let ms = Duration::from_millis(100);
    assert_eq!(
        *events.lock().unwrap(),
        [
            (1, 3, ms, Some(Error::Transient(1))),
            (2, 3, ms, Some(Error::Transient(2)))
        ]
    );
    // A path works too, on sync fns; no event after the last attempt.
    assert_eq!(observed_blocking(), Err(Error::Transient(0)));
    assert_eq!(BLOCKING_EVENTS.load(Ordering::SeqCst), 3);
}

struct Account {
    attempts: u32,
    history: Vec<String>,
}

impl Account {
    /// `&mut self` is re-borrowed for each attempt; `note` is cloned for each.
    #[retry(max_attempts = 3, initial_delay_ms = 5, max_delay_ms = 5)]
    async fn record(&mut self, note: String, audit: &mut Vec<u32>) -> Result<usize, Error> {
        self.attempts += 1;
        self.history.push(note);
        audit.push(self.attempts);
        if self.attempts < 3 {
            return Err(Error::Transient(self.attempts));
        }
        Ok(self.history.len())
    }

    #[retry(max_attempts = 3, initial_delay_ms = 1, max_delay_ms = 1)]
    fn record_blocking(&mut self, mut note: String) -> Result<usize, Error> {
        self.attempts += 1;
        note.push('!');
        self.history.push(note);
        if self.attempts % 2 == 1 {
            Err(Error::Transient(self.attempts))?;
        }
        Ok(self.history.len())
    }
}

#[tokio::test(start_paused = true)]
async fn retry_reborrows_mut_self_and_clones_arguments() {
    let mut account = Account {
        attempts: 0,
        history: Vec::new(),
    };
    let mut audit = Vec::new();
    assert_eq!(account.record("hello".into(), &mut audit).await, Ok(3));
    assert_eq!(account.history, ["hello", "hello", "hello"]);
    assert_eq!(audit, [1, 2, 3]);
}

#[test]
fn retry_works_on_sync_fns() {
    let mut account = Account {
        attempts: 0,
        history: Vec::new(),
    };
    // Attempt 1 fails, attempt 2 succeeds; each attempt mutates its own copy of `note`.
    assert_eq!(account.record_blocking("hi".into()), Ok(2));
    assert_eq!(account.history, ["hi!", "hi!"]);
}

// --- stacking on `&mut self` ---------------------------------------------------------------

struct Sensor {
    reads: u32,
    log: Vec<String>,
}

impl Sensor {
    /// As the README stacks them: the timeout bounds each attempt, the retry runs the timed body
    /// again, on the same `&mut self`.
    #[retry(
        max_attempts = 3,
        initial_delay_ms = 1,
        max_delay_ms = 1,
        backoff = "fixed"
    )]
    #[timeout(ms = 100)]
    async fn read(&mut self, label: String, mut scratch: Vec<u32>) -> Result<u32, Error> {
        self.reads += 1;
        scratch.push(self.reads);
        self.log.push(format!("{label}:{scratch:?}"));
        match self.reads {
            1 => tokio::time::sleep(Duration::from_secs(1)).await, // cut by the timeout
            2 => return Err(Error::Transient(2)),
            _ => {}
        }
        Ok(self.reads)
    }

    /// The other order: one deadline for the whole retried sequence.
    #[timeout(ms = 50)]
    #[retry(
        max_attempts = 5,
        initial_delay_ms = 20,
        max_delay_ms = 20,
        backoff = "fixed"
    )]
    async fn read_bounded(&mut self) -> Result<u32, Error> {
        self.reads += 1;
        Err(Error::Transient(self.reads))
    }
}

#[tokio::test(start_paused = true)]
async fn retry_above_timeout_reruns_a_mut_self_method() {
    let mut sensor = Sensor {
        reads: 0,
        log: Vec::new(),
    };
    let started = Instant::now();
    assert_eq!(sensor.read("t".into(), vec![0]).await, Ok(3));
    // 100 ms cut + 1 ms wait + a failure + 1 ms wait + the success.
    assert_eq!(started.elapsed(), Duration::from_millis(102));
    assert_eq!(sensor.reads, 3);
    // Each attempt got its own copy of the arguments, `mut` included.
    assert_eq!(sensor.log, ["t:[0, 1]", "t:[0, 2]", "t:[0, 3]"]);

    let started = Instant::now();
    assert_eq!(sensor.read_bounded().await, Err(Error::TimedOut));
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(sensor.reads, 6, "attempts at 0, 20 and 40 ms");
}

// Boundaries the macro accepts must build at run time (the macro mirrors the builder's rules).
#[retry(initial_delay_ms = 10_000)]
async fn initial_at_default_max() -> Result<(), Error> {
    Ok(())
}

#[retry(max_delay_ms = 1_000)]
async fn max_at_default_initial() -> Result<(), Error> {
    Ok(())
}

#[retry(max_attempts = 1, initial_delay_ms = 0, max_delay_ms = 1)]
async fn single_attempt(calls: &AtomicU32) -> Result<(), Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    Err(Error::Fatal)
}

#[tokio::test(start_paused = true)]
async fn accepted_boundaries_build() {
    assert_eq!(initial_at_default_max().await, Ok(()));
    assert_eq!(max_at_default_initial().await, Ok(()));
    let calls = AtomicU32::new(0);
    assert_eq!(single_attempt(&calls).await, Err(Error::Fatal));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// --- rate limit / bulkhead / timeout ---------------------------------------------------------

#[rate_limit(per_second = 1, burst = 3)]
async fn limited() -> Result<u32, Error> {
    Ok(7)
}

#[tokio::test]
async fn rate_limited_calls_return_rate_limited() {
    for _ in 0..3 {
        assert_eq!(limited().await, Ok(7));
    }
    assert_eq!(limited().await, Err(Error::Limited));
}

static KEYED_RUNS: AtomicU32 = AtomicU32::new(0);

#[rate_limit(per_minute = 1, key = user)]
fn per_user(user: &str) -> Result<(), Error> {
    KEYED_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[test]
fn keyed_rate_limit_has_one_bucket_per_key() {
    assert_eq!(per_user("ann"), Ok(()));
    assert_eq!(per_user("bob"), Ok(()));
    assert_eq!(per_user("ann"), Err(Error::Limited));
    // A rejected call does not run the body.
    assert_eq!(KEYED_RUNS.load(Ordering::SeqCst), 2);
}

#[rate_limit(per_second = 1, key = id)]
async fn per_id(id: u64) -> Result<u64, Error> {
    Ok(id)
}

#[tokio::test]
async fn numeric_keys_work() {
    assert_eq!(per_id(1).await, Ok(1));
    assert_eq!(per_id(1).await, Err(Error::Limited));
    assert_eq!(per_id(2).await, Ok(2));
}

#[bulkhead(max_concurrent = 1)]
async fn exclusive(gate: &tokio::sync::Notify) -> Result<(), Error> {
    gate.notified().await;
    Ok(())
}

#[tokio::test]
async fn a_full_bulkhead_rejects() {
    let gate = tokio::sync::Notify::new();
    let first = exclusive(&gate);
    tokio::pin!(first);
    // Start the first call; it holds the only permit while waiting on the gate.
    assert!(first.as_mut().now_or_never().is_none());
    assert_eq!(exclusive(&gate).await, Err(Error::Full));
    gate.notify_one();
    assert_eq!(first.await, Ok(()));
    // The permit is back.
    gate.notify_one();
    assert_eq!(exclusive(&gate).await, Ok(()));
}

#[timeout(ms = 100)]
async fn sleeps(d: Duration) -> Result<(), Error> {
    tokio::time::sleep(d).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timeout_cuts_the_body() {
    let start = Instant::now();
    assert_eq!(sleeps(Duration::from_secs(5)).await, Err(Error::TimedOut));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(sleeps(Duration::from_millis(50)).await, Ok(()));
}

// --- stacking --------------------------------------------------------------------------------

static STACK_RUNS: AtomicU32 = AtomicU32::new(0);

/// The rate limit is outside the retry: one token per retried sequence.
#[rate_limit(per_minute = 1)]
#[retry(max_attempts = 3, initial_delay_ms = 1, max_delay_ms = 1)]
async fn limited_then_retried() -> Result<(), Error> {
    let n = STACK_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    Err(Error::Transient(n))
}

#[tokio::test(start_paused = true)]
async fn outer_attribute_sees_one_call_per_retried_sequence() {
    assert_eq!(limited_then_retried().await, Err(Error::Transient(3)));
    assert_eq!(STACK_RUNS.load(Ordering::SeqCst), 3);
    // The second sequence is refused by the limiter as a whole.
    assert_eq!(limited_then_retried().await, Err(Error::Limited));
    assert_eq!(STACK_RUNS.load(Ordering::SeqCst), 3);
}

/// The timeout is inside the retry: each attempt gets its own 100 ms.
#[retry(
    max_attempts = 3,
    initial_delay_ms = 10,
    max_delay_ms = 10,
    backoff = "fixed"
)]
#[timeout(ms = 100)]
async fn retried_with_timeout(calls: &AtomicU32) -> Result<u32, Error> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn inner_attribute_applies_per_attempt() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    assert_eq!(retried_with_timeout(&calls).await, Ok(3));
    assert_eq!(start.elapsed(), Duration::from_millis(220));
}

/// Compiles only if the argument is `Send`.
fn is_send<T: Send>(_: &T) {}

#[test]
fn attribute_futures_are_send() {
    // `tokio::spawn` needs it: a `Sequence`, a limiter or a bulkhead permit held across an
    // await must not make the function's future `!Send`. (A compile-time check; the futures
    // are dropped unpolled.)
    let calls = AtomicU32::new(0);
    let events = Mutex::new(Vec::new());
    let gate = tokio::sync::Notify::new();
    is_send(&always_fails_quick());
    is_send(&fixed_backoff(&calls));
    is_send(&closure_predicate(&calls));
    is_send(&observed(&events, &calls));
    is_send(&hangs(&calls));
    is_send(&limited());
    is_send(&per_id(1));
    is_send(&exclusive(&gate));
    is_send(&sleeps(Duration::from_millis(1)));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "unpolled futures run nothing"
    );
}
