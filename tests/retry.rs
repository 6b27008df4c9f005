//! The retry engine under tokio's paused clock: exact backoff delays, deadlines, timeouts,
//! Retry-After hints, cancellation, predicates, events, the `run` entry points and the blocking
//! loop (with an injected clock).

use std::cell::RefCell;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::retry::CancellationToken;
use resilience::retry::{
    AttemptFailure, Backoff, BlockingClock, DeadlineStart, RetryError, RetryEvent, RetryPolicy,
    RetryPreset, Retryable, retry, retry_blocking,
};
use resilience::timeout::TimeoutError;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
struct ApiError {
    code: u16,
    retry_after: Option<Duration>,
}

fn api(code: u16) -> ApiError {
    ApiError {
        code,
        retry_after: None,
    }
}

impl Retryable for ApiError {
    fn is_retryable(&self) -> bool {
        self.code >= 500 || self.code == 429
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl From<TimeoutError> for ApiError {
    fn from(_: TimeoutError) -> Self {
        api(504)
    }
}

fn fixed(attempts: u32, delay: Duration) -> resilience::retry::RetryPolicyBuilder {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .backoff(Backoff::Fixed)
        .initial_delay(delay)
        .max_delay(delay)
        .no_total_timeout()
}

/// Runs a sequence whose attempts fail with 503 until `succeed_on` (1-based; 0 = never) and
/// returns the result with the instants at which attempts started.
async fn timed_run(
    policy: &RetryPolicy,
    succeed_on: usize,
) -> (Result<usize, RetryError<ApiError>>, Vec<Duration>) {
    let start = Instant::now();
    let times = RefCell::new(Vec::new());
    let result = policy
        .retry(|| {
            let mut t = times.borrow_mut();
            t.push(start.elapsed());
            let n = t.len();
            async move {
                if n == succeed_on {
                    Ok(n)
                } else {
                    Err(api(503))
                }
            }
        })
        .await;
    (result, times.into_inner())
}

fn gaps(times: &[Duration]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn first_try_success_calls_once() {
    let policy = RetryPolicy::default();
    let (result, times) = timed_run(&policy, 1).await;
    assert_eq!(result.unwrap(), 1);
    assert_eq!(times, [Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn fixed_backoff_waits_exactly() {
    let policy = fixed(4, 250 * MS).build().unwrap();
    let (result, times) = timed_run(&policy, 0).await;
    match result {
        Err(RetryError::Exhausted {
            attempts,
            last_error,
        }) => {
            assert_eq!(attempts, 4);
            assert_eq!(last_error, api(503));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(gaps(&times), [250 * MS, 250 * MS, 250 * MS]);
}

#[tokio::test(start_paused = true)]
async fn linear_backoff_waits_exactly_and_caps() {
    let policy = RetryPolicy::builder()
        .max_attempts(5)
        .backoff(Backoff::Linear)
        .initial_delay(100 * MS)
        .max_delay(250 * MS)
        .no_total_timeout()
        .build()
        .unwrap();
    let (result, times) = timed_run(&policy, 5).await;
    assert_eq!(result.unwrap(), 5);
    assert_eq!(gaps(&times), [100 * MS, 200 * MS, 250 * MS, 250 * MS]);
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_waits_exactly_and_caps() {
    let policy = RetryPolicy::builder()
        .max_attempts(6)
        .backoff(Backoff::Exponential)
        .initial_delay(100 * MS)
        .multiplier(3.0)
        .max_delay(2 * S)
        .no_total_timeout()
        .build()
        .unwrap();
    let (result, times) = timed_run(&policy, 0).await;
    assert_eq!(result.unwrap_err().attempts(), 6);
    assert_eq!(gaps(&times), [100 * MS, 300 * MS, 900 * MS, 2 * S, 2 * S]);
}

#[tokio::test(start_paused = true)]
async fn exponential_jitter_stays_in_bounds_and_varies() {
    // Default jitter 0.5: each wait lies in [base/2, base] and never exceeds max_delay.
    let policy = RetryPolicy::builder()
        .max_attempts(5)
        .initial_delay(100 * MS)
        .max_delay(400 * MS)
        .no_total_timeout()
        .build()
        .unwrap();
    assert_eq!(policy.backoff(), Backoff::ExponentialJitter);
    let bases = [100 * MS, 200 * MS, 400 * MS, 400 * MS];
    let mut firsts = Vec::new();
    for _ in 0..200 {
        let (_, times) = timed_run(&policy, 0).await;
        let g = gaps(&times);
        for (gap, base) in g.iter().zip(bases) {
            assert!(
                *gap <= base && *gap >= base / 2,
                "{gap:?} outside [{:?}, {base:?}]",
                base / 2
            );
        }
        firsts.push(g[0].as_secs_f64());
    }
    // Uniform on [50, 100] ms: mean 75 ms; 200 samples put it within ±5 ms with overwhelming odds.
    let mean = firsts.iter().sum::<f64>() / firsts.len() as f64;
    assert!((0.070..0.080).contains(&mean), "mean first delay {mean}");
    let min = firsts.iter().cloned().fold(f64::MAX, f64::min);
    let max = firsts.iter().cloned().fold(0.0, f64::max);
    assert!(
        min < 0.060 && max > 0.090,
        "draws do not spread: {min}..{max}"
    );
}

#[tokio::test(start_paused = true)]
async fn seeded_jitter_is_reproducible() {
    let build = |seed| {
        RetryPolicy::builder()
            .max_attempts(4)
            .initial_delay(S)
            .max_delay(8 * S)
            .jitter(1.0)
            .jitter_seed(seed)
            .no_total_timeout()
            .build()
            .unwrap()
    };
    let a = gaps(&timed_run(&build(7), 0).await.1);
    let b = gaps(&timed_run(&build(7), 0).await.1);
    let c = gaps(&timed_run(&build(8), 0).await.1);
    assert_eq!(a, b);
    assert_ne!(a, c);
    for (gap, base) in a.iter().zip([S, 2 * S, 4 * S]) {
        assert!(*gap <= base);
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_a_wait_that_would_cross_it() {
    let policy = fixed(10, S).total_timeout(2500 * MS).build().unwrap();
    let (result, times) = timed_run(&policy, 0).await;
    // Attempts at 0, 1, 2 s; a third wait would end at 3 s, past the deadline at 2.5 s.
    assert_eq!(times, [Duration::ZERO, S, 2 * S]);
    match result {
        Err(RetryError::Deadline {
            attempts,
            deadline,
            last_error,
        }) => {
            assert_eq!((attempts, deadline), (3, 2500 * MS));
            assert_eq!(last_error, Some(api(503)));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_cuts_a_running_attempt() {
    // The deadline counts from the first attempt (at t = 0); attempt 2 hangs and is cut at 3 s.
    let policy = fixed(5, S).total_timeout(3 * S).build().unwrap();
    let start = Instant::now();
    let mut calls = 0;
    let result: Result<(), _> = policy
        .retry(|| {
            calls += 1;
            let n = calls;
            async move {
                if n == 1 {
                    Err(api(500))
                } else {
                    std::future::pending().await
                }
            }
        })
        .await;
    assert_eq!(start.elapsed(), 3 * S);
    match result {
        Err(RetryError::Deadline {
            attempts,
            last_error,
            ..
        }) => {
            assert_eq!(attempts, 2);
            assert_eq!(last_error, Some(api(500)));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_from_first_failure_excludes_the_first_attempt() {
    // The opt-in: the behaviour before the default became FirstAttempt.
    let policy = fixed(5, S)
        .total_timeout(2 * S)
        .deadline_start(DeadlineStart::FirstFailure)
        .build()
        .unwrap();
    let start = Instant::now();
    let mut calls = 0;
    let result: Result<(), _> = policy
        .retry(|| {
            calls += 1;
            async {
                tokio::time::sleep(5 * S).await;
                Err(api(500))
            }
        })
        .await;
    // First attempt: 0..5 s (not cut); deadline 7 s; the next attempt is cut there.
    assert_eq!(start.elapsed(), 7 * S);
    assert!(result.unwrap_err().is_deadline());
    assert_eq!(calls, 2);
}

#[tokio::test(start_paused = true)]
async fn deadline_from_first_attempt_cuts_the_first_attempt() {
    let policy = fixed(5, S).total_timeout(2 * S).build().unwrap();
    assert_eq!(policy.deadline_start(), DeadlineStart::FirstAttempt);
    let start = Instant::now();
    let result: Result<(), RetryError<ApiError>> = policy.retry(std::future::pending).await;
    assert_eq!(start.elapsed(), 2 * S);
    match result {
        Err(RetryError::Deadline {
            attempts,
            last_error,
            ..
        }) => assert_eq!((attempts, last_error), (1, None)),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_cuts_each_attempt_and_is_retried() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let policy = fixed(3, 100 * MS)
        .attempt_timeout(S)
        .on_retry(move |ev: &RetryEvent<'_, ApiError>| {
            let timed_out = matches!(ev.error, AttemptFailure::Timeout(t) if t.after == S);
            seen.lock().unwrap().push((ev.attempt, timed_out));
        })
        .build()
        .unwrap();
    let start = Instant::now();
    let result: Result<(), RetryError<ApiError>> = policy
        .retry(|| async {
            tokio::time::sleep(10 * S).await;
            Ok(())
        })
        .await;
    assert_eq!(start.elapsed(), 3 * S + 200 * MS);
    match result {
        Err(RetryError::AttemptTimeout {
            attempts,
            after,
            last_error,
        }) => assert_eq!((attempts, after, last_error), (3, S, None)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(*events.lock().unwrap(), [(1, true), (2, true)]);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_then_success() {
    let policy = fixed(3, 100 * MS).attempt_timeout(S).build().unwrap();
    let mut calls = 0;
    let result: Result<u32, RetryError<ApiError>> = policy
        .retry(|| {
            calls += 1;
            let n = calls;
            async move {
                if n == 1 {
                    std::future::pending().await
                } else {
                    Ok(n)
                }
            }
        })
        .await;
    assert_eq!(result.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_after_hint_overrides_the_backoff() {
    let policy = fixed(3, S).build().unwrap();
    let start = Instant::now();
    let times = RefCell::new(Vec::new());
    let result: Result<(), _> = policy
        .retry(|| {
            times.borrow_mut().push(start.elapsed());
            async {
                Err(ApiError {
                    code: 429,
                    retry_after: Some(7 * S),
                })
            }
        })
        .await;
    assert!(result.unwrap_err().is_exhausted());
    // 7 s even though max_delay is 1 s: the server's hint wins over the backoff cap.
    assert_eq!(gaps(&times.into_inner()), [7 * S, 7 * S]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_past_the_deadline_gives_up_without_waiting() {
    let policy = fixed(3, S).total_timeout(30 * S).build().unwrap();
    let start = Instant::now();
    let result: Result<(), _> = policy
        .retry(|| async {
            Err(ApiError {
                code: 503,
                retry_after: Some(40 * S),
            })
        })
        .await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    let err = result.unwrap_err();
    assert!(err.is_deadline(), "{err:?}");
    assert_eq!(err.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_a_wait_at_once() {
    let token = CancellationToken::new();
    let policy = fixed(3, 10 * S)
        .cancellation(token.clone())
        .build()
        .unwrap();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(S).await;
        token.cancel();
    });
    let start = Instant::now();
    let (result, times) = timed_run(&policy, 0).await;
    canceller.await.unwrap();
    assert_eq!(start.elapsed(), S);
    assert_eq!(times.len(), 1);
    match result {
        Err(RetryError::Cancelled {
            attempts,
            last_error,
        }) => assert_eq!((attempts, last_error), (1, Some(api(503)))),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn cancelled_token_prevents_the_first_attempt() {
    let token = CancellationToken::new();
    token.cancel();
    let policy = RetryPolicy::builder().cancellation(token).build().unwrap();
    let (result, times) = timed_run(&policy, 1).await;
    assert!(times.is_empty());
    let err = result.unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.attempts(), 0);
}

#[tokio::test(start_paused = true)]
async fn non_retryable_error_stops_at_once() {
    let calls = RefCell::new(0);
    let result: Result<(), _> = retry(
        || {
            *calls.borrow_mut() += 1;
            async { Err(api(400)) }
        },
        RetryPreset::Aggressive,
    )
    .await;
    assert_eq!(*calls.borrow(), 1);
    match result {
        Err(RetryError::NotRetryable { attempts, error }) => {
            assert_eq!((attempts, error), (1, api(400)))
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn predicate_overrides_the_classifier_for_its_type_only() {
    // Only 502 is retried by this predicate, although ApiError's own classifier retries 503.
    let policy = fixed(3, MS)
        .retry_if(|e: &ApiError| e.code == 502)
        .build()
        .unwrap();
    let (result, times) = timed_run(&policy, 0).await;
    assert!(result.unwrap_err().is_not_retryable());
    assert_eq!(times.len(), 1);

    // An io::Error operation: the ApiError predicate does not apply; io classification does.
    let mut calls = 0;
    let result: Result<(), _> = policy
        .retry(|| {
            calls += 1;
            async { Err(io::Error::from(io::ErrorKind::ConnectionReset)) }
        })
        .await;
    assert!(result.unwrap_err().is_exhausted());
    assert_eq!(calls, 3);
}

#[tokio::test(start_paused = true)]
async fn on_retry_reports_each_wait() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Exponential)
        .initial_delay(100 * MS)
        .on_retry(move |ev: &RetryEvent<'_, ApiError>| {
            let code = ev.error.error().map(|e| e.code);
            seen.lock()
                .unwrap()
                .push((ev.attempt, ev.max_attempts, ev.delay, code));
        })
        .build()
        .unwrap();
    let (result, _) = timed_run(&policy, 3).await;
    assert_eq!(result.unwrap(), 3);
    assert_eq!(
        *events.lock().unwrap(),
        [(1, 3, 100 * MS, Some(503)), (2, 3, 200 * MS, Some(503))]
    );
}

#[tokio::test(start_paused = true)]
async fn run_returns_the_callers_error_and_never_cuts() {
    let policy = fixed(2, MS).attempt_timeout(S).build().unwrap();
    let out: Result<(), ApiError> = policy.run(|| async { Err(api(502)) }).await;
    assert_eq!(out, Err(api(502)));

    // `run` does not apply attempt_timeout: a 5 s attempt completes.
    let start = Instant::now();
    let out: Result<u8, ApiError> = policy
        .run(|| async {
            tokio::time::sleep(5 * S).await;
            Ok(1)
        })
        .await;
    assert_eq!((out, start.elapsed()), (Ok(1), 5 * S));

    let out: Result<(), ApiError> = policy.run(|| async { Err(api(404)) }).await;
    assert_eq!(out, Err(api(404)));
}

#[tokio::test(start_paused = true)]
async fn run_with_timeouts_converts_a_cut_last_attempt() {
    let policy = fixed(2, MS).attempt_timeout(S).build().unwrap();
    let start = Instant::now();
    let out: Result<(), ApiError> = policy.run_with_timeouts(std::future::pending).await;
    assert_eq!(out, Err(api(504)));
    assert_eq!(start.elapsed(), 2 * S + MS);
}

#[tokio::test(start_paused = true)]
async fn accepts_presets_policies_and_references() {
    let policy = RetryPolicy::from(RetryPreset::Quick);
    let ok: Result<u8, RetryError<io::Error>> = retry(|| async { Ok(1) }, &policy).await;
    assert_eq!(ok.unwrap(), 1);
    let ok: Result<u8, RetryError<io::Error>> =
        retry(|| async { Ok(2) }, RetryPolicy::default()).await;
    assert_eq!(ok.unwrap(), 2);
    let ok: Result<u8, RetryError<io::Error>> =
        resilience::retry(|| async { Ok(3) }, RetryPreset::Patient).await;
    assert_eq!(ok.unwrap(), 3);
}

#[test]
fn presets_have_the_documented_numbers() {
    let cases = [
        ("quick", 2, 100 * MS, 5 * S, S),
        ("standard", 3, S, 30 * S, 10 * S),
        ("patient", 5, 2 * S, 120 * S, 30 * S),
        ("aggressive", 10, 500 * MS, 60 * S, 5 * S),
    ];
    assert_eq!(RetryPreset::NAMES.len(), cases.len());
    for (name, attempts, initial, total, max) in cases {
        let preset = RetryPreset::from_name(name).unwrap();
        assert_eq!(preset.name(), name);
        let p = RetryPolicy::from(preset);
        assert_eq!(p.max_attempts(), attempts, "{name}");
        assert_eq!(p.initial_delay(), initial, "{name}");
        assert_eq!(p.total_timeout(), Some(total), "{name}");
        assert_eq!(p.max_delay(), max, "{name}");
        assert_eq!(p.backoff(), Backoff::ExponentialJitter, "{name}");
        assert_eq!(p.multiplier(), 2.0);
        // The preset is a valid configuration.
        preset.builder().build().unwrap();
    }
    assert_eq!(RetryPreset::from_name("impatient"), None);
    let d = RetryPolicy::default();
    assert_eq!(
        (d.max_attempts(), d.initial_delay(), d.total_timeout()),
        (3, S, Some(30 * S))
    );
    assert_eq!(d.jitter(), resilience::retry::DEFAULT_JITTER);
}

#[test]
fn invalid_configurations_name_the_field() {
    let field = |b: resilience::retry::RetryPolicyBuilder| b.build().unwrap_err().field;
    assert_eq!(
        field(RetryPolicy::builder().max_attempts(0)),
        "max_attempts"
    );
    assert_eq!(
        field(RetryPolicy::builder().initial_delay(S).max_delay(MS)),
        "max_delay"
    );
    assert_eq!(field(RetryPolicy::builder().multiplier(0.5)), "multiplier");
    assert_eq!(
        field(RetryPolicy::builder().multiplier(f64::NAN)),
        "multiplier"
    );
    assert_eq!(field(RetryPolicy::builder().jitter(1.5)), "jitter");
    assert_eq!(field(RetryPolicy::builder().jitter(-0.1)), "jitter");
    assert_eq!(
        field(RetryPolicy::builder().total_timeout(Duration::ZERO)),
        "total_timeout"
    );
    assert_eq!(
        field(RetryPolicy::builder().attempt_timeout(Duration::ZERO)),
        "attempt_timeout"
    );
    let msg = RetryPolicy::builder()
        .max_attempts(0)
        .build()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("max_attempts"), "{msg}");
}

#[test]
fn error_display_and_accessors() {
    let e: RetryError<io::Error> = RetryError::Exhausted {
        attempts: 3,
        last_error: io::Error::from(io::ErrorKind::TimedOut),
    };
    assert_eq!(e.to_string(), "gave up after 3 attempt(s)");
    let source = std::error::Error::source(&e).unwrap().to_string();
    assert!(source.contains("timed out"), "{source}");
    assert_eq!(e.attempts(), 3);
    assert_eq!(e.into_last_error().unwrap().kind(), io::ErrorKind::TimedOut);
}

/// A fake clock for the blocking loop: sleeping advances it and records the wait.
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
        *self.now.lock().unwrap() += d;
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
fn blocking_waits_follow_the_backoff() {
    let policy = RetryPolicy::builder()
        .max_attempts(4)
        .backoff(Backoff::Exponential)
        .initial_delay(100 * MS)
        .no_total_timeout()
        .build()
        .unwrap();
    let clock = FakeClock::new();
    let mut calls = 0;
    let out = policy.retry_blocking_with_clock(
        || {
            calls += 1;
            if calls < 4 { Err(api(503)) } else { Ok(calls) }
        },
        &clock,
    );
    assert_eq!(out.unwrap(), 4);
    assert_eq!(*clock.slept.lock().unwrap(), [100 * MS, 200 * MS, 400 * MS]);
}

#[test]
fn blocking_deadline_from_the_first_attempt_counts_its_time() {
    let clock = FakeClock::new();
    let policy = fixed(10, S)
        .total_timeout(2500 * MS)
        .deadline_start(DeadlineStart::FirstAttempt)
        .build()
        .unwrap();
    let out: Result<(), _> = policy.retry_blocking_with_clock(
        || {
            clock.advance(400 * MS); // each attempt takes 400 ms
            Err(api(500))
        },
        &clock,
    );
    // Deadline at 2.5 s from the start (not from the first failure at 0.4 s): attempts end at
    // 0.4 and 1.8 s; a wait to 2.8 s would cross it. From the first failure it would be 2.9 s
    // and a third attempt would run.
    let err = out.unwrap_err();
    assert!(err.is_deadline(), "{err:?}");
    assert_eq!(err.attempts(), 2);
    assert_eq!(*clock.slept.lock().unwrap(), [S]);
}

#[test]
fn blocking_deadline_and_exhaustion() {
    let clock = FakeClock::new();
    let policy = fixed(10, S).total_timeout(2500 * MS).build().unwrap();
    let out: Result<(), _> = policy.retry_blocking_with_clock(
        || {
            clock.advance(100 * MS); // each attempt takes 100 ms
            Err(api(500))
        },
        &clock,
    );
    // Deadline at 0.1 + 2.5 = 2.6 s; attempts end at 0.1, 1.2, 2.3 s; a wait to 3.3 s crosses it.
    let err = out.unwrap_err();
    assert!(err.is_deadline(), "{err:?}");
    assert_eq!(err.attempts(), 3);
    assert_eq!(*clock.slept.lock().unwrap(), [S, S]);

    let out: Result<(), _> =
        retry_blocking(|| Err(api(500)), fixed(2, Duration::ZERO).build().unwrap());
    assert!(matches!(
        out,
        Err(RetryError::Exhausted { attempts: 2, .. })
    ));
    let out: Result<(), ApiError> = fixed(2, Duration::ZERO)
        .build()
        .unwrap()
        .run_blocking(|| Err(api(401)));
    assert_eq!(out, Err(api(401)));
}

#[test]
fn blocking_cancellation_stops_before_the_next_wait() {
    let token = CancellationToken::new();
    let policy = fixed(5, S).cancellation(token.clone()).build().unwrap();
    let clock = FakeClock::new();
    let mut calls = 0;
    let out: Result<(), _> = policy.retry_blocking_with_clock(
        || {
            calls += 1;
            token.cancel();
            Err(api(500))
        },
        &clock,
    );
    assert_eq!(calls, 1);
    assert!(out.unwrap_err().is_cancelled());
    assert!(clock.slept.lock().unwrap().is_empty());
}
