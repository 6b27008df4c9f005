//! The total deadline covers the whole sequence, first attempt included, by default — and every
//! entry point agrees: `retry()`, `RetryPolicy::retry` / `run` / `run_with_timeouts`, the blocking
//! loop, the tower layer and the `#[retry]` attribute (async, with attempt timeouts, and sync).
//! `FirstFailure` stays available as an opt-in; `Duration::MAX` means "no deadline". Then extreme
//! values for every retry setting: a typed error or a sequence that ends, never a panic.
//! Async tests run on tokio's paused clock; the blocking loop uses an injected clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use resilience::integration::layers::RetryLayer;
use resilience::retry::{
    Backoff, BlockingClock, DeadlineStart, RetryError, RetryPolicy, RetryPolicyBuilder,
    RetryPreset, Retryable, retry,
};
use resilience::timeout::TimeoutError;
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);
/// Longer than any sequence here; a sequence still running then is a failure, not a hang.
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq)]
enum Error {
    Transient,
    Slow { hint: Duration },
    TimedOut,
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        true
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Slow { hint } => Some(*hint),
            _ => None,
        }
    }
}

impl From<TimeoutError> for Error {
    fn from(_: TimeoutError) -> Self {
        Error::TimedOut
    }
}

fn fixed(attempts: u32, delay: Duration) -> RetryPolicyBuilder {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .backoff(Backoff::Fixed)
        .initial_delay(delay)
        .max_delay(delay)
}

/// Runs `fut` to its end or for an hour of (paused) time: `None` means it was still running.
async fn within_an_hour<F: Future>(fut: F) -> Option<(F::Output, Duration)> {
    let start = Instant::now();
    let out = tokio::time::timeout(HOUR, fut).await.ok()?;
    Some((out, start.elapsed()))
}

// --- a hanging first attempt -------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_hanging_first_attempt_ends_at_the_quick_presets_deadline() {
    let out = within_an_hour(retry(
        std::future::pending::<Result<(), Error>>,
        RetryPreset::Quick,
    ))
    .await;
    let Some((result, elapsed)) = out else {
        panic!("retry(pending, Quick) never returned");
    };
    assert_eq!(elapsed, 5 * S);
    match result {
        Err(RetryError::Deadline {
            attempts,
            deadline,
            last_error,
        }) => assert_eq!((attempts, deadline, last_error), (1, 5 * S, None)),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn five_seconds_total_with_four_second_attempts_ends_at_five() {
    let policy = fixed(10, 100 * MS)
        .total_timeout(5 * S)
        .attempt_timeout(4 * S)
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let op = || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<Result<(), Error>>()
    };
    let (result, elapsed) = within_an_hour(policy.retry(op)).await.unwrap();
    // Attempt 1 cut at 4 s, attempt 2 from 4.1 s cut by the deadline at 5 s (not at 9 s).
    assert_eq!(elapsed, 5 * S);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(result.unwrap_err().is_deadline());

    // The same with the quick preset's own numbers.
    let quick = RetryPreset::Quick
        .builder()
        .attempt_timeout(4 * S)
        .build()
        .unwrap();
    let (result, elapsed) = within_an_hour(quick.retry(std::future::pending::<Result<(), Error>>))
        .await
        .unwrap();
    assert_eq!(elapsed, 5 * S);
    assert!(result.unwrap_err().is_deadline());
}

#[tokio::test(start_paused = true)]
async fn first_failure_is_the_opt_in_for_the_old_behaviour() {
    let policy = fixed(10, 100 * MS)
        .total_timeout(5 * S)
        .attempt_timeout(4 * S)
        .deadline_start(DeadlineStart::FirstFailure)
        .build()
        .unwrap();
    let (result, elapsed) = within_an_hour(policy.retry(std::future::pending::<Result<(), Error>>))
        .await
        .unwrap();
    // Attempt 1 cut at 4 s starts the deadline: 9 s.
    assert_eq!(elapsed, 9 * S);
    assert!(result.unwrap_err().is_deadline());

    // Without an attempt timeout nothing bounds the first attempt.
    let policy = fixed(3, 100 * MS)
        .total_timeout(5 * S)
        .deadline_start(DeadlineStart::FirstFailure)
        .build()
        .unwrap();
    assert!(
        within_an_hour(policy.retry(std::future::pending::<Result<(), Error>>))
            .await
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn run_with_timeouts_reports_the_cut_first_attempt_as_a_timeout() {
    let policy = RetryPolicy::from(RetryPreset::Quick);
    let (result, elapsed) =
        within_an_hour(policy.run_with_timeouts(std::future::pending::<Result<(), Error>>))
            .await
            .unwrap();
    assert_eq!((result, elapsed), (Err(Error::TimedOut), 5 * S));
}

// --- every entry point counts the first attempt's time -----------------------------------------

/// A sequence where only the first attempt takes time: 4 s, then every attempt fails at once.
/// Policy: fixed 1 s waits, deadline 5.5 s. From the first attempt, attempt 2 runs at 5 s and
/// a second wait (to 6 s) would cross the deadline: 2 attempts, ended at 5 s. From the first
/// failure (4 s) the deadline would be 9.5 s and 6 attempts would run.
fn slow_first_policy() -> RetryPolicy {
    fixed(10, S).total_timeout(5500 * MS).build().unwrap()
}

async fn slow_first(calls: &AtomicU32) -> Result<(), Error> {
    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
        tokio::time::sleep(4 * S).await;
    }
    Err(Error::Transient)
}

#[tokio::test(start_paused = true)]
async fn retry_fn_and_policy_retry_count_the_first_attempt() {
    let calls = AtomicU32::new(0);
    let (result, elapsed) = within_an_hour(retry(|| slow_first(&calls), slow_first_policy()))
        .await
        .unwrap();
    assert_eq!((elapsed, calls.load(Ordering::SeqCst)), (5 * S, 2));
    match result {
        Err(RetryError::Deadline {
            attempts,
            last_error,
            ..
        }) => assert_eq!((attempts, last_error), (2, Some(Error::Transient))),
        other => panic!("unexpected {other:?}"),
    }

    let calls = AtomicU32::new(0);
    let policy = slow_first_policy();
    let (result, elapsed) = within_an_hour(policy.retry(|| slow_first(&calls)))
        .await
        .unwrap();
    assert_eq!((elapsed, calls.load(Ordering::SeqCst)), (5 * S, 2));
    assert!(result.unwrap_err().is_deadline());
}

#[tokio::test(start_paused = true)]
async fn run_and_run_with_timeouts_count_the_first_attempt() {
    let policy = slow_first_policy();
    let calls = AtomicU32::new(0);
    let (result, elapsed) = within_an_hour(policy.run(|| slow_first(&calls)))
        .await
        .unwrap();
    assert_eq!(result, Err(Error::Transient));
    assert_eq!((elapsed, calls.load(Ordering::SeqCst)), (5 * S, 2));

    let calls = AtomicU32::new(0);
    let (result, elapsed) = within_an_hour(policy.run_with_timeouts(|| slow_first(&calls)))
        .await
        .unwrap();
    assert_eq!(result, Err(Error::Transient));
    assert_eq!((elapsed, calls.load(Ordering::SeqCst)), (5 * S, 2));
}

#[tokio::test(start_paused = true)]
async fn the_tower_layer_counts_the_first_attempt() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let svc = RetryLayer::new(slow_first_policy()).layer(service_fn(move |()| {
        let calls = counter.clone();
        async move { slow_first(&calls).await }
    }));
    let (result, elapsed) = within_an_hour(svc.oneshot(())).await.unwrap();
    assert_eq!(result, Err(Error::Transient));
    assert_eq!((elapsed, calls.load(Ordering::SeqCst)), (5 * S, 2));
}

#[resilience::retry(
    max_attempts = 10,
    initial_delay_ms = 1000,
    max_delay_ms = 1000,
    backoff = "fixed",
    total_timeout_ms = 5500
)]
async fn attribute_slow_first(calls: &AtomicU32) -> Result<(), Error> {
    slow_first(calls).await
}

#[resilience::retry(
    max_attempts = 10,
    initial_delay_ms = 1000,
    max_delay_ms = 1000,
    backoff = "fixed",
    total_timeout_ms = 5500,
    attempt_timeout_ms = 60000
)]
async fn attribute_timed_slow_first(calls: &AtomicU32) -> Result<(), Error> {
    slow_first(calls).await
}

#[resilience::retry(preset = "quick")]
async fn attribute_hangs(calls: &AtomicU32) -> Result<(), Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    std::future::pending().await
}

#[resilience::retry(preset = "quick", attempt_timeout_ms = 60000)]
async fn attribute_timed_hangs(calls: &AtomicU32) -> Result<(), Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    std::future::pending().await
}

#[tokio::test(start_paused = true)]
async fn the_attribute_counts_the_first_attempt() {
    let calls = AtomicU32::new(0);
    let (result, elapsed) = within_an_hour(attribute_slow_first(&calls)).await.unwrap();
    assert_eq!(result, Err(Error::Transient));
    assert_eq!((elapsed, calls.load(Ordering::SeqCst)), (5 * S, 2));

    let calls = AtomicU32::new(0);
    let (result, elapsed) = within_an_hour(attribute_timed_slow_first(&calls))
        .await
        .unwrap();
    assert_eq!(result, Err(Error::Transient));
    assert_eq!((elapsed, calls.load(Ordering::SeqCst)), (5 * S, 2));
}

#[tokio::test(start_paused = true)]
async fn the_attribute_with_attempt_timeouts_cuts_a_hanging_first_attempt_at_the_deadline() {
    let calls = AtomicU32::new(0);
    let (result, elapsed) = within_an_hour(attribute_timed_hangs(&calls)).await.unwrap();
    assert_eq!(result, Err(Error::TimedOut));
    assert_eq!((elapsed, calls.load(Ordering::SeqCst)), (5 * S, 1));

    // Without `attempt_timeout_ms` the attribute follows `run`: attempts are never cut.
    let calls = AtomicU32::new(0);
    assert!(within_an_hour(attribute_hangs(&calls)).await.is_none());
}

/// The sync attribute waits with `std::thread::sleep`, so this one runs on the real clock, with
/// a result that does not depend on scheduling: the first attempt takes at least 300 ms, a
/// 200 ms wait from then would cross the 400 ms deadline counted from the first attempt, so the
/// sequence stops after one attempt. From the first failure (>= 300 ms) it would retry.
#[resilience::retry(
    max_attempts = 3,
    initial_delay_ms = 200,
    max_delay_ms = 200,
    backoff = "fixed",
    total_timeout_ms = 400
)]
fn attribute_blocking_slow_first(calls: &AtomicU32) -> Result<(), Error> {
    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
        std::thread::sleep(300 * MS);
    }
    Err(Error::Transient)
}

#[test]
fn the_sync_attribute_counts_the_first_attempt() {
    let calls = AtomicU32::new(0);
    assert_eq!(attribute_blocking_slow_first(&calls), Err(Error::Transient));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A clock for the blocking loop: sleeping advances it (saturating) and records the wait.
struct FakeClock {
    now: Mutex<std::time::Instant>,
    slept: Mutex<Vec<Duration>>,
}

impl FakeClock {
    fn new() -> Self {
        Self {
            now: Mutex::new(std::time::Instant::now()),
            slept: Mutex::new(Vec::new()),
        }
    }
    fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap();
        // A wait of centuries stops the clock at the last representable instant it reaches.
        if let Some(later) = now.checked_add(d) {
            *now = later;
        }
    }
}

impl BlockingClock for FakeClock {
    fn now(&self) -> std::time::Instant {
        *self.now.lock().unwrap()
    }
    fn sleep(&self, d: Duration) {
        self.advance(d);
        self.slept.lock().unwrap().push(d);
    }
}

#[test]
fn the_blocking_loop_counts_the_first_attempt_by_default() {
    let clock = FakeClock::new();
    let calls = AtomicU32::new(0);
    let out: Result<(), _> = slow_first_policy().retry_blocking_with_clock(
        || {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                clock.advance(4 * S);
            }
            Err(Error::Transient)
        },
        &clock,
    );
    let err = out.unwrap_err();
    assert!(err.is_deadline(), "{err:?}");
    assert_eq!(err.attempts(), 2);
    assert_eq!(*clock.slept.lock().unwrap(), [S]);
}

// --- Duration::MAX means no deadline -----------------------------------------------------------

fn unbounded(attempts: u32) -> RetryPolicy {
    fixed(attempts, S)
        .total_timeout(Duration::MAX)
        .attempt_timeout(Duration::MAX)
        .build()
        .unwrap()
}

async fn always_fails(calls: &AtomicU32) -> Result<(), Error> {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(10 * S).await;
    Err(Error::Transient)
}

#[tokio::test(start_paused = true)]
async fn duration_max_is_no_deadline_for_every_async_entry_point() {
    let policy = unbounded(3);
    assert_eq!(policy.total_timeout(), None);
    assert_eq!(policy.attempt_timeout(), None);
    let deadline_start = policy.deadline_start();
    for start in [DeadlineStart::FirstAttempt, DeadlineStart::FirstFailure] {
        let policy = policy.to_builder().deadline_start(start).build().unwrap();
        let calls = AtomicU32::new(0);
        let (result, elapsed) = within_an_hour(retry(|| always_fails(&calls), &policy))
            .await
            .unwrap();
        match result {
            Err(RetryError::Exhausted { attempts, .. }) => assert_eq!(attempts, 3, "{start:?}"),
            other => panic!("{start:?}: unexpected {other:?}"),
        }
        // Three 10 s attempts, two 1 s waits: nothing was cut.
        assert_eq!(elapsed, 32 * S);

        let calls = AtomicU32::new(0);
        let result = policy.run(|| always_fails(&calls)).await;
        assert_eq!((result, calls.into_inner()), (Err(Error::Transient), 3));
        let calls = AtomicU32::new(0);
        let result = policy.run_with_timeouts(|| always_fails(&calls)).await;
        assert_eq!((result, calls.into_inner()), (Err(Error::Transient), 3));

        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let svc = RetryLayer::new(policy.clone()).layer(service_fn(move |()| {
            let calls = counter.clone();
            async move { always_fails(&calls).await }
        }));
        assert_eq!(svc.oneshot(()).await, Err(Error::Transient));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
    assert_eq!(deadline_start, DeadlineStart::FirstAttempt);
}

#[resilience::retry(
    max_attempts = 3,
    initial_delay_ms = 1000,
    max_delay_ms = 1000,
    backoff = "fixed",
    total_timeout_ms = 18446744073709551615,
    attempt_timeout_ms = 18446744073709551615
)]
async fn attribute_unbounded(calls: &AtomicU32) -> Result<(), Error> {
    always_fails(calls).await
}

#[tokio::test(start_paused = true)]
async fn duration_max_is_no_deadline_for_the_attribute() {
    let calls = AtomicU32::new(0);
    let (result, elapsed) = within_an_hour(attribute_unbounded(&calls)).await.unwrap();
    assert_eq!(result, Err(Error::Transient));
    assert_eq!((elapsed, calls.into_inner()), (32 * S, 3));
}

#[test]
fn duration_max_is_no_deadline_for_the_blocking_loop() {
    let clock = FakeClock::new();
    let calls = AtomicU32::new(0);
    let out: Result<(), _> = unbounded(3).retry_blocking_with_clock(
        || {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::Transient)
        },
        &clock,
    );
    assert!(
        matches!(out, Err(RetryError::Exhausted { attempts: 3, .. })),
        "{out:?}"
    );
    assert_eq!(*clock.slept.lock().unwrap(), [S, S]);
}

#[test]
fn timeouts_of_decades_are_none_and_shorter_ones_are_kept() {
    let decades = Duration::from_secs(30 * 365 * 24 * 3600);
    let policy = RetryPolicy::builder()
        .total_timeout(decades)
        .attempt_timeout(decades)
        .build()
        .unwrap();
    assert_eq!(
        (policy.total_timeout(), policy.attempt_timeout()),
        (None, None)
    );
    let just_below = decades - Duration::from_nanos(1);
    let policy = RetryPolicy::builder()
        .total_timeout(just_below)
        .attempt_timeout(just_below)
        .build()
        .unwrap();
    assert_eq!(
        (policy.total_timeout(), policy.attempt_timeout()),
        (Some(just_below), Some(just_below))
    );
}

// --- the first-try path ------------------------------------------------------------------------

/// Pending once (waking itself at once), then `Ok`.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = Result<u32, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0 {
            Poll::Ready(Ok(7))
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_pending_first_attempt_that_succeeds_takes_no_time() {
    for policy in [
        RetryPolicy::from(RetryPreset::Quick),
        fixed(2, S).attempt_timeout(S).build().unwrap(),
    ] {
        let start = Instant::now();
        assert_eq!(policy.retry(|| PendingOnce(false)).await.unwrap(), 7);
        assert_eq!(policy.run(|| PendingOnce(false)).await.unwrap(), 7);
        assert_eq!(
            policy
                .run_with_timeouts(|| PendingOnce(false))
                .await
                .unwrap(),
            7
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

// --- extreme values -----------------------------------------------------------------------------

/// Every retry setting at its extremes: each either refused with a typed error naming it, or
/// accepted and then used for a whole failing sequence that ends with a typed result.
#[tokio::test(start_paused = true)]
async fn extreme_settings_are_refused_or_end_a_sequence() {
    let durations = [Duration::ZERO, Duration::from_nanos(1), S, Duration::MAX];
    let floats = [0.0, 0.5, 1.0, 2.0, f64::MAX, f64::INFINITY, f64::NAN, -1.0];
    let mut built = 0;
    for &initial in &durations {
        for &max in &durations {
            for &multiplier in &floats {
                for &jitter in &[0.0, 1.0, f64::NAN, 2.0] {
                    for &total in &durations {
                        let builder = RetryPolicy::builder()
                            .max_attempts(3)
                            .initial_delay(initial)
                            .max_delay(max)
                            .multiplier(multiplier)
                            .jitter(jitter)
                            .total_timeout(total)
                            .attempt_timeout(total)
                            .jitter_seed(1);
                        let policy = match builder.build() {
                            Ok(p) => p,
                            Err(e) => {
                                assert!(
                                    [
                                        "max_delay",
                                        "multiplier",
                                        "jitter",
                                        "total_timeout",
                                        "attempt_timeout"
                                    ]
                                    .contains(&e.field),
                                    "{e}"
                                );
                                continue;
                            }
                        };
                        built += 1;
                        for n in [1, 2, u32::MAX] {
                            assert!(policy.delay(n, 0.5) <= policy.max_delay());
                            assert!(policy.delay(n, f64::NAN) <= policy.max_delay());
                        }
                        let calls = AtomicU32::new(0);
                        let result = tokio::time::timeout(
                            Duration::from_secs(100 * 365 * 24 * 3600),
                            policy.retry(|| always_fails(&calls)),
                        )
                        .await
                        .expect("the sequence ends");
                        let err = result.unwrap_err();
                        assert!((1..=3).contains(&err.attempts()), "{policy:?}: {err:?}");
                    }
                }
            }
        }
    }
    assert!(built > 0);
}

#[tokio::test(start_paused = true)]
async fn extreme_attempt_counts_and_hints_end_with_a_typed_result() {
    // u32::MAX attempts with a deadline: the deadline ends it.
    let policy = fixed(u32::MAX, Duration::ZERO)
        .total_timeout(5 * S)
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let (result, elapsed) = within_an_hour(policy.retry(|| always_fails(&calls)))
        .await
        .unwrap();
    assert!(result.unwrap_err().is_deadline());
    assert_eq!(elapsed, 5 * S);

    // A Retry-After hint of Duration::MAX: past any deadline, so no wait starts.
    let policy = fixed(3, S).total_timeout(5 * S).build().unwrap();
    let hinted = || async {
        Err::<(), _>(Error::Slow {
            hint: Duration::MAX,
        })
    };
    let (result, elapsed) = within_an_hour(policy.retry(hinted)).await.unwrap();
    assert_eq!(elapsed, Duration::ZERO);
    assert_eq!(result.unwrap_err().attempts(), 1);

    // The same hint without a deadline is honoured (tokio caps a timer at ~30 years) and the
    // sequence still ends.
    let policy = fixed(2, S).no_total_timeout().build().unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(100 * 365 * 24 * 3600),
        policy.retry(hinted),
    )
    .await
    .expect("the sequence ends");
    assert!(matches!(
        result,
        Err(RetryError::Exhausted { attempts: 2, .. })
    ));
}

#[test]
fn extreme_delays_in_the_blocking_loop_end_with_a_typed_result() {
    let clock = FakeClock::new();
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .initial_delay(Duration::MAX)
        .max_delay(Duration::MAX)
        .multiplier(f64::MAX)
        .no_total_timeout()
        .build()
        .unwrap();
    let out: Result<(), RetryError<Error>> =
        policy.retry_blocking_with_clock(|| Err(Error::Transient), &clock);
    assert!(
        matches!(out, Err(RetryError::Exhausted { attempts: 3, .. })),
        "{out:?}"
    );
    let slept = clock.slept.lock().unwrap().clone();
    assert_eq!(slept.len(), 2);
    assert!(slept.iter().all(|d| *d >= Duration::MAX / 2), "{slept:?}");

    // With a deadline the same delays are never started.
    let clock = FakeClock::new();
    let policy = policy.to_builder().total_timeout(S).build().unwrap();
    let out: Result<(), RetryError<Error>> =
        policy.retry_blocking_with_clock(|| Err(Error::Transient), &clock);
    assert!(
        matches!(out, Err(RetryError::Deadline { attempts: 1, .. })),
        "{out:?}"
    );
    assert!(clock.slept.lock().unwrap().is_empty());
}
