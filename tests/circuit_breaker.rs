//! Circuit breaker: every transition and option, on tokio's paused clock.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::circuit_breaker::{
    BreakerRegistry, CallError, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset,
    CircuitOpenError, CircuitState, Protected, RegistryError, SlidingWindow, StateChange,
};
use tokio::time::{Instant, advance};

fn consecutive(failures: u32, reset_secs: u64) -> CircuitBreakerConfig {
    CircuitBreakerConfig::builder()
        .failure_threshold(failures)
        .reset_timeout(Duration::from_secs(reset_secs))
        .build()
        .unwrap()
}

fn ok(b: &CircuitBreaker) -> Result<u32, CallError<io::Error>> {
    b.call_blocking(|| Ok(1))
}

fn fail(b: &CircuitBreaker) -> Result<u32, CallError<io::Error>> {
    b.call_blocking(|| Err(io::Error::other("boom")))
}

fn is_open(r: Result<u32, CallError<io::Error>>) -> bool {
    matches!(r, Err(CallError::Open(_)))
}

fn record_changes(b: &CircuitBreaker) -> Arc<Mutex<Vec<(CircuitState, CircuitState)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    b.on_state_change(move |c: &StateChange| sink.lock().unwrap().push((c.from, c.to)));
    seen
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_the_breaker_and_a_success_resets_the_count() {
    let b = CircuitBreaker::new("svc", consecutive(3, 10));
    fail(&b).unwrap_err();
    fail(&b).unwrap_err();
    assert_eq!(b.snapshot().failure_count, 2);
    ok(&b).unwrap();
    assert_eq!(b.snapshot().failure_count, 0);
    fail(&b).unwrap_err();
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Closed);
    assert!(matches!(fail(&b), Err(CallError::Inner(_))));
    assert_eq!(b.state(), CircuitState::Open);
    assert_eq!(b.snapshot().failure_count, 3);

    let mut ran = false;
    let r = b.call_blocking(|| {
        ran = true;
        Ok::<_, io::Error>(())
    });
    assert!(!ran, "an open breaker must not run the call");
    match r {
        Err(CallError::Open(CircuitOpenError { name, retry_after })) => {
            assert_eq!(&*name, "svc");
            assert_eq!(retry_after, Some(Duration::from_secs(10)));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn open_goes_half_open_after_the_reset_timeout_and_a_success_closes_it() {
    let b = CircuitBreaker::new("svc", consecutive(1, 10));
    let changes = record_changes(&b);
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Open);

    advance(Duration::from_secs(4)).await;
    match ok(&b) {
        Err(CallError::Open(e)) => assert_eq!(e.retry_after, Some(Duration::from_secs(6))),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(b.snapshot().retry_after, Some(Duration::from_secs(6)));

    advance(Duration::from_secs(6)).await;
    // Lazily: still reported open until the next call.
    assert_eq!(b.state(), CircuitState::Open);
    let permit = b.try_acquire().unwrap();
    assert_eq!(b.state(), CircuitState::HalfOpen);
    permit.success();
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(
        *changes.lock().unwrap(),
        [
            (CircuitState::Closed, CircuitState::Open),
            (CircuitState::Open, CircuitState::HalfOpen),
            (CircuitState::HalfOpen, CircuitState::Closed),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_half_open_failure_reopens_with_a_fresh_timeout() {
    let b = CircuitBreaker::new("svc", consecutive(2, 30));
    fail(&b).unwrap_err();
    fail(&b).unwrap_err();
    let opened = b.snapshot().opened_at.unwrap();
    advance(Duration::from_secs(30)).await;
    fail(&b).unwrap_err(); // the trial call
    assert_eq!(b.state(), CircuitState::Open);
    let snap = b.snapshot();
    assert_eq!(snap.opened_at.unwrap() - opened, Duration::from_secs(30));
    assert_eq!(snap.retry_after, Some(Duration::from_secs(30)));
    advance(Duration::from_secs(29)).await;
    assert!(is_open(ok(&b)));
    advance(Duration::from_secs(1)).await;
    ok(&b).unwrap();
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn success_threshold_needs_that_many_trial_successes() {
    let config = CircuitBreakerConfig::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(5))
        .success_threshold(3)
        .build()
        .unwrap();
    let b = CircuitBreaker::new("svc", config);
    fail(&b).unwrap_err();
    advance(Duration::from_secs(5)).await;
    ok(&b).unwrap();
    ok(&b).unwrap();
    let snap = b.snapshot();
    assert_eq!(snap.state, CircuitState::HalfOpen);
    assert_eq!(snap.half_open_successes, 2);
    ok(&b).unwrap();
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_at_most_the_cap_of_concurrent_trials() {
    let config = CircuitBreakerConfig::builder()
        .failure_threshold(1)
        .reset_timeout(Duration::from_secs(1))
        .half_open_max_calls(2)
        .success_threshold(2)
        .build()
        .unwrap();
    let b = CircuitBreaker::new("svc", config);
    fail(&b).unwrap_err();
    advance(Duration::from_secs(1)).await;

    let first = b.try_acquire().unwrap();
    let second = b.try_acquire().unwrap();
    let third = b.try_acquire().unwrap_err();
    assert_eq!(third.retry_after, None);
    assert_eq!(b.snapshot().half_open_in_flight, 2);

    // A dropped permit (cancelled call) frees its slot and records nothing.
    drop(second);
    assert_eq!(b.snapshot().half_open_in_flight, 1);
    assert_eq!(b.snapshot().half_open_successes, 0);
    let again = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());

    first.success();
    assert_eq!(b.state(), CircuitState::HalfOpen);
    again.success();
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_async_call_frees_its_trial_slot() {
    let b = CircuitBreaker::new("svc", consecutive(1, 1));
    fail(&b).unwrap_err();
    advance(Duration::from_secs(1)).await;
    let pending = b.call(std::future::pending::<Result<(), io::Error>>);
    let timed_out = tokio::time::timeout(Duration::from_millis(10), pending).await;
    assert!(timed_out.is_err());
    assert_eq!(b.state(), CircuitState::HalfOpen);
    assert_eq!(b.snapshot().half_open_in_flight, 0);
    b.call(|| async { Ok::<_, io::Error>(()) }).await.unwrap();
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn outcomes_of_calls_started_before_a_transition_are_ignored() {
    let b = CircuitBreaker::new("svc", consecutive(1, 10));
    let slow = b.try_acquire().unwrap();
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Open);
    slow.success(); // started in Closed: does not close the open breaker
    assert_eq!(b.state(), CircuitState::Open);

    advance(Duration::from_secs(10)).await;
    let trial = b.try_acquire().unwrap();
    b.reset();
    trial.failure(); // its half-open round is over
    assert_eq!(b.state(), CircuitState::Closed);
}

fn rate(window: SlidingWindow, minimum_calls: u32) -> CircuitBreakerConfig {
    CircuitBreakerConfig::builder()
        .failure_rate(50.0)
        .sliding_window(window)
        .minimum_calls(minimum_calls)
        .reset_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Opens the breaker with fresh calls, waits out the reset timeout and closes it with a trial.
async fn cycle_open_and_closed(b: &CircuitBreaker) {
    while b.state() == CircuitState::Closed {
        fail(b).unwrap_err();
    }
    assert_eq!(b.state(), CircuitState::Open);
    advance(Duration::from_secs(5)).await;
    ok(b).unwrap();
    assert_eq!(b.state(), CircuitState::Closed);
    let snap = b.snapshot();
    assert_eq!((snap.failure_count, snap.window_calls), (0, Some(0)));
}

/// Both failure-rate windows: a slow call admitted while Closed that ends after the breaker has
/// opened and closed again lands nowhere, success or failure.
#[tokio::test(start_paused = true)]
async fn stale_outcomes_are_ignored_by_failure_rate_windows() {
    for window in [
        SlidingWindow::Count(10),
        SlidingWindow::Time(Duration::from_secs(60)),
    ] {
        let b = CircuitBreaker::new("svc", rate(window, 2));
        let slow_ok = b.try_acquire().unwrap();
        let slow_fail = b.try_acquire().unwrap();
        cycle_open_and_closed(&b).await;

        slow_ok.success();
        slow_fail.failure();
        let snap = b.snapshot();
        assert_eq!(
            (snap.failure_count, snap.window_calls),
            (0, Some(0)),
            "{window:?}: stale outcomes counted"
        );
        // Counted, the stale failure would make one real failure 2 of 2 calls and re-open it.
        fail(&b).unwrap_err();
        assert_eq!(b.state(), CircuitState::Closed, "{window:?}");
        let snap = b.snapshot();
        assert_eq!((snap.failure_count, snap.window_calls), (1, Some(1)));
        // The window still works on fresh calls: 2 of 2.
        fail(&b).unwrap_err();
        assert_eq!(b.state(), CircuitState::Open, "{window:?}");
    }
}

/// A stale failure is not the breaker's "last failure" either, in any mode.
#[tokio::test(start_paused = true)]
async fn stale_failures_do_not_move_the_last_failure_time() {
    for config in [
        consecutive(1, 5),
        rate(SlidingWindow::Count(10), 1),
        rate(SlidingWindow::Time(Duration::from_secs(60)), 1),
    ] {
        let b = CircuitBreaker::new("svc", config);
        let slow = b.try_acquire().unwrap();
        fail(&b).unwrap_err();
        let opened = b.snapshot().last_failure;
        assert!(opened.is_some());
        advance(Duration::from_secs(1)).await;
        slow.failure();
        assert_eq!(b.snapshot().last_failure, opened);
    }
}

/// An open failure-rate breaker reports the failures that opened it, with no window call count
/// of 0 beside them (the window is not counting).
#[tokio::test(start_paused = true)]
async fn open_rate_breaker_snapshot_has_no_window_count() {
    for window in [
        SlidingWindow::Count(10),
        SlidingWindow::Time(Duration::from_secs(60)),
    ] {
        let b = CircuitBreaker::new("svc", rate(window, 2));
        ok(&b).unwrap();
        fail(&b).unwrap_err();
        assert_eq!(b.state(), CircuitState::Open, "{window:?}");
        let snap = b.snapshot();
        assert_eq!(
            (snap.failure_count, snap.window_calls),
            (1, None),
            "{window:?}"
        );
        advance(Duration::from_secs(5)).await;
        let trial = b.try_acquire().unwrap();
        assert_eq!(b.snapshot().window_calls, None, "{window:?}: half-open");
        trial.success();
        assert_eq!(b.snapshot().window_calls, Some(0), "{window:?}: closed");
    }
}

#[tokio::test(start_paused = true)]
async fn config_predicate_decides_which_errors_count() {
    let config = CircuitBreakerConfig::builder()
        .failure_threshold(2)
        .failure_predicate(|e: &io::Error| e.kind() != io::ErrorKind::NotFound)
        .build()
        .unwrap();
    let b = CircuitBreaker::new("svc", config);
    for _ in 0..5 {
        let r = b.call_blocking(|| Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)));
        assert!(matches!(r, Err(CallError::Inner(_))));
    }
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(b.snapshot().failure_count, 0);
    // Other error types are not affected by an io::Error predicate.
    b.call(|| async { Err::<(), _>("text error") })
        .await
        .unwrap_err();
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn per_call_predicate_overrides_the_config() {
    let b = CircuitBreaker::new("svc", consecutive(1, 10));
    let r = b
        .call_with(|| async { Err::<(), u16>(404) }, |status| *status >= 500)
        .await;
    assert!(matches!(r, Err(CallError::Inner(404))));
    assert_eq!(b.state(), CircuitState::Closed);
    let r = b.call_blocking_with(|| Err::<(), u16>(503), |status| *status >= 500);
    assert!(matches!(r, Err(CallError::Inner(503))));
    assert_eq!(b.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn force_open_disable_and_reset() {
    let b = CircuitBreaker::new("svc", consecutive(1, 1));
    let changes = record_changes(&b);
    b.force_open();
    assert_eq!(b.state(), CircuitState::ForcedOpen);
    advance(Duration::from_secs(3600)).await;
    match ok(&b) {
        Err(CallError::Open(e)) => assert_eq!(e.retry_after, None),
        other => panic!("expected a rejection, got {other:?}"),
    }

    b.disable();
    assert_eq!(b.state(), CircuitState::Disabled);
    for _ in 0..10 {
        fail(&b).unwrap_err();
    }
    assert_eq!(b.state(), CircuitState::Disabled, "disabled counts nothing");
    assert_eq!(b.snapshot().last_failure, None);

    b.reset();
    assert_eq!(b.state(), CircuitState::Closed);
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Open);
    b.reset();
    assert_eq!(b.state(), CircuitState::Closed);
    ok(&b).unwrap();
    assert_eq!(
        *changes.lock().unwrap(),
        [
            (CircuitState::Closed, CircuitState::ForcedOpen),
            (CircuitState::ForcedOpen, CircuitState::Disabled),
            (CircuitState::Disabled, CircuitState::Closed),
            (CircuitState::Closed, CircuitState::Open),
            (CircuitState::Open, CircuitState::Closed),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn reset_while_closed_clears_the_count_without_a_state_change() {
    let b = CircuitBreaker::new("svc", consecutive(3, 1));
    let changes = record_changes(&b);
    fail(&b).unwrap_err();
    fail(&b).unwrap_err();
    b.reset();
    assert_eq!(b.snapshot().failure_count, 0);
    fail(&b).unwrap_err();
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Closed);
    assert!(changes.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn snapshot_reports_the_last_failure_time() {
    let b = CircuitBreaker::new("svc", consecutive(5, 1));
    assert_eq!(b.snapshot().last_failure, None);
    advance(Duration::from_secs(2)).await;
    let at = Instant::now();
    fail(&b).unwrap_err();
    advance(Duration::from_secs(2)).await;
    let snap = b.snapshot();
    assert_eq!(snap.last_failure, Some(at));
    assert_eq!(&*snap.name, "svc");
    assert_eq!(snap.window_calls, None);
}

#[tokio::test(start_paused = true)]
async fn count_window_trips_on_the_rate_once_minimum_calls_are_in() {
    let config = CircuitBreakerConfig::builder()
        .failure_rate(50.0)
        .sliding_window(SlidingWindow::Count(10))
        .minimum_calls(4)
        .reset_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let b = CircuitBreaker::new("svc", config);
    // Two failures in a row would trip a consecutive breaker of 2; not below minimum calls.
    fail(&b).unwrap_err();
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Closed);
    for _ in 0..8 {
        ok(&b).unwrap();
    }
    let snap = b.snapshot();
    assert_eq!((snap.failure_count, snap.window_calls), (2, Some(10)));
    // Window of 10: F S*8 F -> the first failure slid out.
    fail(&b).unwrap_err();
    assert_eq!(b.snapshot().failure_count, 2);
    for _ in 0..3 {
        fail(&b).unwrap_err();
    }
    assert_eq!(b.state(), CircuitState::Closed, "4 of 10 is below 50%");
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Open, "5 of 10 reaches 50%");

    advance(Duration::from_secs(5)).await;
    ok(&b).unwrap();
    assert_eq!(b.state(), CircuitState::Closed);
    // The window starts empty again after closing.
    let snap = b.snapshot();
    assert_eq!((snap.failure_count, snap.window_calls), (0, Some(0)));
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_calls_older_than_the_window() {
    let config = CircuitBreakerConfig::builder()
        .failure_rate(60.0)
        .sliding_window(SlidingWindow::Time(Duration::from_secs(10)))
        .minimum_calls(3)
        .build()
        .unwrap();
    let b = CircuitBreaker::new("svc", config);
    fail(&b).unwrap_err();
    fail(&b).unwrap_err();
    assert_eq!(b.snapshot().window_calls, Some(2));
    advance(Duration::from_secs(11)).await;
    assert_eq!(b.snapshot().window_calls, Some(0));
    // The two old failures no longer count: 1 of 3 is below 60%.
    ok(&b).unwrap();
    ok(&b).unwrap();
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Closed);
    fail(&b).unwrap_err();
    fail(&b).unwrap_err();
    assert_eq!(b.state(), CircuitState::Open, "3 of 5 reaches 60%");
}

#[tokio::test(start_paused = true)]
async fn slow_calls_count_as_failures() {
    let config = CircuitBreakerConfig::builder()
        .failure_threshold(2)
        .slow_call_threshold(Duration::from_secs(1))
        .build()
        .unwrap();
    let b = CircuitBreaker::new("svc", config);
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok::<_, io::Error>("late")
    };
    assert_eq!(
        b.call(slow).await.unwrap(),
        "late",
        "the caller still gets its value"
    );
    assert_eq!(b.snapshot().failure_count, 1);
    b.call(|| async { Ok::<_, io::Error>("fast") })
        .await
        .unwrap();
    assert_eq!(b.snapshot().failure_count, 0);
    b.call(slow).await.unwrap();
    b.call(slow).await.unwrap();
    assert_eq!(b.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn owned_permits_work_in_spawned_tasks() {
    let b = Arc::new(CircuitBreaker::new("svc", consecutive(1, 1)));
    let permit = b.try_acquire_owned().unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        permit.failure();
    })
    .await
    .unwrap();
    assert_eq!(b.state(), CircuitState::Open);
}

#[test]
fn blocking_calls_from_many_threads() {
    let b = Arc::new(CircuitBreaker::new("svc", consecutive(1000, 1)));
    std::thread::scope(|s| {
        for t in 0..4 {
            let b = &b;
            s.spawn(move || {
                for i in 0..500 {
                    let r = b.call_blocking(|| if (i + t) % 2 == 0 { Ok(i) } else { Err(i) });
                    assert!(r.is_ok() == ((i + t) % 2 == 0));
                }
            });
        }
    });
    assert_eq!(b.state(), CircuitState::Closed);
    // Outside a runtime, a blocking breaker still opens and rejects.
    let one = CircuitBreaker::new("blocking", consecutive(1, 60));
    fail(&one).unwrap_err();
    assert!(is_open(ok(&one)));
}

#[test]
fn call_error_helpers() {
    let open = CircuitOpenError {
        name: "svc".into(),
        retry_after: Some(Duration::from_millis(1500)),
    };
    assert_eq!(
        open.to_string(),
        "circuit breaker `svc` is open; retry after 1500 ms"
    );
    let e: CallError<io::Error> = CallError::Open(open.clone());
    assert!(e.is_open());
    let flat: io::Error = e.flatten();
    assert_eq!(flat.kind(), io::ErrorKind::Other);
    assert_eq!(CallError::<u8>::Inner(7).into_inner(), Some(7));
    assert_eq!(CallError::<u8>::Open(open.clone()).into_inner_or(0), 0);
    assert_eq!(
        CallError::Inner(2u8).map_inner(u32::from),
        CallError::Inner(2u32)
    );
    assert_eq!(CallError::<u8>::Inner(9).to_string(), "9");
}

#[test]
fn config_validation_names_the_field() {
    let b = CircuitBreakerConfig::builder;
    let cases = [
        (b().failure_threshold(0).build(), "failure_threshold"),
        (b().success_threshold(0).build(), "success_threshold"),
        (b().half_open_max_calls(0).build(), "half_open_max_calls"),
        (b().reset_timeout(Duration::ZERO).build(), "reset_timeout"),
        (
            b().slow_call_threshold(Duration::ZERO).build(),
            "slow_call_threshold",
        ),
        (b().failure_rate(0.0).build(), "failure_rate"),
        (b().failure_rate(100.5).build(), "failure_rate"),
        (b().failure_rate(f64::NAN).build(), "failure_rate"),
        (b().failure_rate(-3.0).build(), "failure_rate"),
        (
            b().failure_rate(50.0)
                .sliding_window(SlidingWindow::Count(0))
                .build(),
            "sliding_window",
        ),
        (
            b().failure_rate(50.0)
                .sliding_window(SlidingWindow::Time(Duration::ZERO))
                .build(),
            "sliding_window",
        ),
        (
            b().failure_rate(50.0).minimum_calls(0).build(),
            "minimum_calls",
        ),
        (
            b().failure_rate(50.0)
                .sliding_window(SlidingWindow::Count(5))
                .minimum_calls(6)
                .build(),
            "minimum_calls",
        ),
    ];
    for (result, field) in cases {
        let err = result.expect_err(field);
        assert_eq!(err.field, field);
        assert!(err.to_string().contains(field));
    }
    assert!(b().failure_rate(100.0).build().is_ok());
    let c = b().preset(CircuitBreakerPreset::Critical).build().unwrap();
    assert_eq!(c.failure_threshold(), Some(2));
    assert_eq!(c.reset_timeout(), Duration::from_secs(60));
}

#[test]
fn registry_creates_by_service_and_refuses_conflicting_configs() {
    let registry = BreakerRegistry::new();
    let redis = registry.get("redis");
    assert_eq!(redis.config().failure_threshold(), Some(3));
    assert_eq!(redis.config().reset_timeout(), Duration::from_secs(10));
    assert!(Arc::ptr_eq(&redis, &registry.get("redis")));
    let unknown = registry.get("my-service");
    assert_eq!(*unknown.config(), CircuitBreakerConfig::default());

    let custom = consecutive(7, 7);
    let configured = registry.configure("payments", custom.clone()).unwrap();
    assert!(Arc::ptr_eq(
        &configured,
        &registry.configure("payments", custom).unwrap()
    ));
    assert!(Arc::ptr_eq(&configured, &registry.get("payments")));
    let conflict = registry
        .configure("payments", consecutive(8, 7))
        .unwrap_err();
    assert_eq!(
        conflict,
        RegistryError::ConfigConflict {
            name: "payments".into()
        }
    );
    // Used first with the default, then configured differently: refused.
    assert!(registry.configure("my-service", consecutive(1, 1)).is_err());
    assert!(
        registry
            .configure("my-service", CircuitBreakerConfig::default())
            .is_ok()
    );

    assert_eq!(
        registry.names().iter().map(|n| &**n).collect::<Vec<_>>(),
        ["my-service", "payments", "redis"]
    );
    fail(&configured).unwrap_err();
    assert_eq!(registry.snapshots()[1].failure_count, 1);
    assert!(registry.find("nope").is_none());
}

#[tokio::test]
async fn global_functions_and_protected_share_one_breaker() {
    let config = consecutive(1, 60);
    let b = resilience::configure_circuit_breaker("test-global-protected", config).unwrap();
    assert!(Arc::ptr_eq(
        &b,
        &resilience::get_circuit_breaker("test-global-protected")
    ));

    struct Client {
        healthy: bool,
    }
    impl Client {
        async fn get(&self) -> Result<&'static str, io::Error> {
            if self.healthy {
                Ok("body")
            } else {
                Err(io::Error::other("503"))
            }
        }
    }
    let down = Protected::new("test-global-protected", Client { healthy: false });
    assert!(Arc::ptr_eq(down.breaker(), &b));
    let r = down.call(|c| async move { c.get().await }).await;
    assert!(matches!(r, Err(CallError::Inner(_))));

    let up = Protected::with_breaker(Arc::clone(&b), Client { healthy: true });
    assert!(
        up.call(|c| async move { c.get().await })
            .await
            .unwrap_err()
            .is_open()
    );
    let r: Result<&str, io::Error> =
        resilience::with_circuit_breaker("test-global-protected", || async { Ok("x") }).await;
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::Other);
    b.reset();
    assert_eq!(
        up.call(|c| async move { c.get().await }).await.unwrap(),
        "body"
    );
    assert!(up.call_blocking(|c| Ok::<_, io::Error>(c.healthy)).unwrap());
}

#[test]
fn metrics_are_recorded_with_the_documented_names() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The state gauge is resolved at creation, each counter on its first increment: both
    // under this recorder.
    let b = metrics::with_local_recorder(&recorder, || {
        CircuitBreaker::new("metered", consecutive(1, 60))
    });
    metrics::with_local_recorder(&recorder, || {
        ok(&b).unwrap();
        ok(&b).unwrap();
        fail(&b).unwrap_err();
        assert!(is_open(ok(&b)));
    });

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                let k = key.key();
                k.name() == name
                    && labels
                        .iter()
                        .all(|(l, v)| k.labels().any(|x| x.key() == *l && x.value() == *v))
            })
            .map(|(_, _, _, value)| format!("{value:?}"))
    };
    let name = ("name", "metered");
    assert_eq!(
        find(
            "circuit_breaker_requests_total",
            &[name, ("outcome", "success")]
        ),
        Some(format!("{:?}", DebugValue::Counter(2)))
    );
    assert_eq!(
        find(
            "circuit_breaker_requests_total",
            &[name, ("outcome", "failure")]
        ),
        Some(format!("{:?}", DebugValue::Counter(1)))
    );
    assert_eq!(
        find("circuit_breaker_rejections_total", &[name]),
        Some(format!("{:?}", DebugValue::Counter(1)))
    );
    assert_eq!(
        find(
            "circuit_breaker_state_changes_total",
            &[name, ("from", "closed"), ("to", "open")]
        ),
        Some(format!("{:?}", DebugValue::Counter(1)))
    );
    assert_eq!(
        find("circuit_breaker_state", &[name]),
        Some(format!("{:?}", DebugValue::Gauge(2.0.into())))
    );
}

#[test]
fn transitions_are_traced() {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let b = CircuitBreaker::new("traced", consecutive(1, 60));
        fail(&b).unwrap_err();
        b.reset();
    });
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<_> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("circuit breaker opened"),
        "{log}"
    );
    assert!(
        lines[0].contains("breaker=traced") && lines[0].contains("to=open"),
        "{log}"
    );
    assert!(
        lines[1].contains("INFO") && lines[1].contains("from=open to=closed"),
        "{log}"
    );
}
