//! Shutdown coordinator: ordering, concurrency, timeouts, failures, draining (paused clock).

#[path = "support/clock_end.rs"]
mod clock_end;
use clock_end::longest_from;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::shutdown::{
    HookStatus, Priority, ShutdownConfig, ShutdownCoordinator, ShutdownError, ShutdownOutcome,
};
use tokio::time::Instant;

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

fn recorder(
    log: &Log,
    name: &'static str,
) -> impl FnOnce() -> std::future::Ready<()> + Send + 'static {
    let log = log.clone();
    move || {
        log.lock().unwrap().push(name.to_owned());
        std::future::ready(())
    }
}

fn config(total: u64, hook: u64) -> ShutdownConfig {
    ShutdownConfig::builder()
        .total_timeout(Duration::from_secs(total))
        .hook_timeout(Duration::from_secs(hook))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn tiers_run_highest_priority_first() {
    let c = ShutdownCoordinator::new();
    let log = log();
    c.register(
        "background",
        Priority::BACKGROUND,
        recorder(&log, "background"),
    )
    .unwrap();
    c.register("normal", Priority::NORMAL, recorder(&log, "normal"))
        .unwrap();
    c.register("critical", Priority::CRITICAL, recorder(&log, "critical"))
        .unwrap();
    c.register("custom-60", 60, recorder(&log, "custom-60"))
        .unwrap();
    c.register("low", Priority::LOW, recorder(&log, "low"))
        .unwrap();
    c.register(
        "high",
        "high".parse::<Priority>().unwrap(),
        recorder(&log, "high"),
    )
    .unwrap();
    c.register("negative", -5, recorder(&log, "negative"))
        .unwrap();

    let report = c.shutdown().await;
    let expected = [
        "critical",
        "high",
        "custom-60",
        "normal",
        "low",
        "background",
        "negative",
    ];
    assert_eq!(entries(&log), expected);
    let names: Vec<_> = report.hooks.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, expected);
    assert_eq!(report.outcome, ShutdownOutcome::Success);
    assert_eq!(report.exit_code(), 0);
    assert!(
        report
            .hooks
            .iter()
            .all(|h| h.status == HookStatus::Completed)
    );
}

#[tokio::test(start_paused = true)]
async fn hooks_in_one_tier_run_concurrently() {
    let c = ShutdownCoordinator::with_config(config(30, 5));
    // Each hook waits for the other: only concurrent execution lets both pass the barrier.
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    for name in ["a", "b", "c"] {
        let barrier = barrier.clone();
        c.register(name, Priority::HIGH, move || async move {
            barrier.wait().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        })
        .unwrap();
    }
    let started = Instant::now();
    let report = c.shutdown().await;
    assert_eq!(report.outcome, ShutdownOutcome::Success, "{report:?}");
    assert_eq!(report.hooks.len(), 3);
    // Three 2 s hooks in one tier take 2 s, not 6 s.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn next_tier_waits_for_the_previous_one() {
    let c = ShutdownCoordinator::new();
    let log = log();
    let l = log.clone();
    c.register("slow-high", Priority::HIGH, move || async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        l.lock().unwrap().push("slow-high".into());
    })
    .unwrap();
    c.register("low", Priority::LOW, recorder(&log, "low"))
        .unwrap();
    c.shutdown().await;
    assert_eq!(entries(&log), ["slow-high", "low"]);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_hook_is_cut_at_its_timeout_and_the_rest_still_run() {
    let c = ShutdownCoordinator::with_config(config(60, 10));
    let log = log();
    c.register_with_timeout("hangs", Priority::HIGH, Duration::from_secs(2), || {
        std::future::pending::<()>()
    })
    .unwrap();
    c.register("default-timeout", Priority::HIGH, || {
        std::future::pending::<()>()
    })
    .unwrap();
    c.register("after", Priority::LOW, recorder(&log, "after"))
        .unwrap();
    let started = Instant::now();
    let report = c.shutdown().await;

    let hangs = report.hook("hangs").unwrap();
    assert_eq!(hangs.status, HookStatus::TimedOut(Duration::from_secs(2)));
    assert_eq!(hangs.elapsed, Duration::from_secs(2));
    let default = report.hook("default-timeout").unwrap();
    assert_eq!(
        default.status,
        HookStatus::TimedOut(Duration::from_secs(10))
    );
    assert_eq!(entries(&log), ["after"]);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    // A per-hook timeout is reported but is not a failure by default.
    assert_eq!(report.outcome, ShutdownOutcome::Success);
}

#[tokio::test(start_paused = true)]
async fn hook_timeout_can_count_as_failure() {
    let cfg = ShutdownConfig::builder()
        .hook_timeout(Duration::from_secs(1))
        .hook_timeout_is_failure(true)
        .build()
        .unwrap();
    let c = ShutdownCoordinator::with_config(cfg);
    c.register("hangs", 0, std::future::pending::<()>).unwrap();
    let report = c.shutdown().await;
    assert_eq!(report.outcome, ShutdownOutcome::Failure);
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test(start_paused = true)]
async fn total_timeout_gives_exit_code_124_and_abandons_the_rest() {
    let c = ShutdownCoordinator::with_config(config(5, 20));
    let log = log();
    c.register("first", Priority::CRITICAL, recorder(&log, "first"))
        .unwrap();
    c.register("hangs", Priority::HIGH, std::future::pending::<()>)
        .unwrap();
    c.register("never", Priority::LOW, recorder(&log, "never"))
        .unwrap();
    let started = Instant::now();
    let report = c.shutdown().await;

    assert_eq!(report.outcome, ShutdownOutcome::TimedOut);
    assert_eq!(report.exit_code(), 124);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(entries(&log), ["first"]);
    assert_eq!(report.hook("first").unwrap().status, HookStatus::Completed);
    assert_eq!(report.hook("hangs").unwrap().status, HookStatus::Abandoned);
    assert_eq!(report.hook("never").unwrap().status, HookStatus::Abandoned);
    assert_eq!(report.hook("never").unwrap().elapsed, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_hook_fails_the_shutdown_but_others_still_run() {
    let c = ShutdownCoordinator::new();
    let log = log();
    c.register("panics", Priority::HIGH, || async {
        if Priority::HIGH.value() > 0 {
            panic!("boom in hook");
        }
    })
    .unwrap();
    c.register(
        "panics-before-future",
        Priority::HIGH,
        || -> std::future::Ready<()> { panic!("boom in factory") },
    )
    .unwrap();
    c.register("sibling", Priority::HIGH, recorder(&log, "sibling"))
        .unwrap();
    c.register("lower", Priority::LOW, recorder(&log, "lower"))
        .unwrap();
    let report = c.shutdown().await;

    assert_eq!(report.outcome, ShutdownOutcome::Failure);
    assert_eq!(report.exit_code(), 1);
    assert_eq!(
        report.hook("panics").unwrap().status,
        HookStatus::Panicked("boom in hook".into())
    );
    assert_eq!(
        report.hook("panics-before-future").unwrap().status,
        HookStatus::Panicked("boom in factory".into())
    );
    let mut ran = entries(&log);
    ran.sort();
    assert_eq!(ran, ["lower", "sibling"]);
}

#[tokio::test(start_paused = true)]
async fn an_erroring_hook_is_reported_as_failed() {
    let c = ShutdownCoordinator::new();
    c.register("errs", Priority::NORMAL, || async {
        Err::<(), _>(std::io::Error::other("disk on fire"))
    })
    .unwrap();
    c.register("ok", Priority::NORMAL, || async { Ok::<(), String>(()) })
        .unwrap();
    let report = c.shutdown().await;
    assert_eq!(
        report.hook("errs").unwrap().status,
        HookStatus::Failed("disk on fire".into())
    );
    assert_eq!(report.hook("ok").unwrap().status, HookStatus::Completed);
    assert_eq!(report.outcome, ShutdownOutcome::Failure);
}

#[tokio::test(start_paused = true)]
async fn registering_or_configuring_after_shutdown_began_is_an_error() {
    let c = ShutdownCoordinator::new();
    let report = c.shutdown().await;
    assert_eq!(report.outcome, ShutdownOutcome::Success);
    assert!(report.hooks.is_empty());
    let err = c
        .register("late", Priority::NORMAL, || async {})
        .unwrap_err();
    assert!(matches!(err, ShutdownError::AlreadyStarted));
    assert_eq!(err.to_string(), "shutdown has already begun");
    assert!(matches!(
        c.configure(ShutdownConfig::default()),
        Err(ShutdownError::AlreadyStarted)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_hook_registering_another_during_shutdown_gets_an_error() {
    let c = ShutdownCoordinator::new();
    let inner = c.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    c.register("registers", Priority::NORMAL, move || async move {
        let _ = tx.send(inner.register("nested", 0, || async {}).is_err());
    })
    .unwrap();
    let report = c.shutdown().await;
    assert!(rx.await.unwrap(), "registration during shutdown must fail");
    assert!(report.hook("nested").is_none());
}

#[tokio::test(start_paused = true)]
async fn readiness_turns_off_first_then_token_after_drain_delay_then_drain_then_hooks() {
    let cfg = ShutdownConfig::builder()
        .drain_delay(Duration::from_secs(5))
        .drain_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let c = ShutdownCoordinator::with_config(cfg);
    let log = log();
    let origin = Instant::now();

    // A request in flight that finishes 3 s after the token fires.
    let guard = c.in_flight();
    let token = c.cancellation_token();
    let l = log.clone();
    tokio::spawn(async move {
        token.cancelled().await;
        l.lock()
            .unwrap()
            .push(format!("token at {:?}", origin.elapsed()));
        tokio::time::sleep(Duration::from_secs(3)).await;
        l.lock()
            .unwrap()
            .push(format!("request done at {:?}", origin.elapsed()));
        drop(guard);
    });
    let l = log.clone();
    let close = c.server_close_signal();
    tokio::spawn(async move {
        close.await;
        l.lock()
            .unwrap()
            .push(format!("server closes at {:?}", origin.elapsed()));
    });
    let l = log.clone();
    c.register("hook", Priority::CRITICAL, move || async move {
        l.lock()
            .unwrap()
            .push(format!("hook at {:?}", origin.elapsed()));
    })
    .unwrap();
    assert!(c.should_accept_requests());
    assert_eq!(c.in_flight_count(), 1);

    let shutdown = tokio::spawn({
        let c = c.clone();
        async move { c.shutdown().await }
    });
    c.started().await;
    assert!(!c.should_accept_requests());
    assert!(c.is_shutting_down());
    assert_eq!(origin.elapsed(), Duration::ZERO);
    assert!(
        !c.cancellation_token().is_cancelled(),
        "token waits for the drain delay"
    );

    let report = shutdown.await.unwrap();
    assert!(report.drained);
    assert_eq!(report.elapsed, Duration::from_secs(8));
    let got = entries(&log);
    assert_eq!(
        got[2..],
        ["request done at 8s".to_owned(), "hook at 8s".to_owned()]
    );
    let mut first_two = got[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, ["server closes at 5s", "token at 5s"]);
    assert_eq!(c.in_flight_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn drain_is_bounded_by_the_drain_timeout() {
    let cfg = ShutdownConfig::builder()
        .drain_timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    let c = ShutdownCoordinator::with_config(cfg);
    let _stuck = c.in_flight();
    let tracked = c.spawn(std::future::pending::<()>());
    let log = log();
    c.register("hook", Priority::NORMAL, recorder(&log, "hook"))
        .unwrap();
    let started = Instant::now();
    let report = c.shutdown().await;
    assert!(!report.drained);
    assert_eq!(started.elapsed(), Duration::from_secs(4));
    assert_eq!(entries(&log), ["hook"]);
    assert_eq!(report.outcome, ShutdownOutcome::Success);
    tracked.abort();
}

#[tokio::test(start_paused = true)]
async fn every_caller_gets_the_same_report() {
    let c = ShutdownCoordinator::new();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = calls.clone();
    c.register("once", Priority::NORMAL, move || async move {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .unwrap();
    let (a, b, waited) = tokio::join!(c.shutdown(), c.shutdown(), c.wait());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(a, b);
    assert_eq!(a, waited);
    assert_eq!(c.report(), Some(a));
    assert!(c.is_finished());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_shutdown_future_does_not_abandon_the_shutdown() {
    let c = ShutdownCoordinator::new();
    let log = log();
    let l = log.clone();
    c.register("slow", Priority::NORMAL, move || async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        l.lock().unwrap().push("slow".into());
    })
    .unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(10), c.shutdown()).await;
    let report = c.wait().await;
    assert_eq!(report.outcome, ShutdownOutcome::Success);
    assert_eq!(entries(&log), ["slow"]);
}

#[test]
fn config_builder_rejects_bad_values_naming_the_field() {
    let e = ShutdownConfig::builder()
        .total_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field, "total_timeout");
    let e = ShutdownConfig::builder()
        .hook_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field, "hook_timeout");
    let e = ShutdownConfig::builder()
        .total_timeout(Duration::from_secs(5))
        .drain_delay(Duration::from_secs(5))
        .build()
        .unwrap_err();
    assert_eq!(e.field, "drain_delay");
    let ok = ShutdownConfig::builder().build().unwrap();
    assert_eq!(ok, ShutdownConfig::default());
    assert_eq!(ok.total_timeout(), Duration::from_secs(30));
}

#[test]
fn priority_names_and_values() {
    assert_eq!(
        Priority::NAMES,
        ["critical", "high", "normal", "low", "background"]
    );
    for name in Priority::NAMES {
        let p = Priority::from_name(name).unwrap();
        assert_eq!(p.name(), Some(*name));
    }
    assert_eq!(
        [
            Priority::CRITICAL,
            Priority::HIGH,
            Priority::NORMAL,
            Priority::LOW,
            Priority::BACKGROUND
        ]
        .map(Priority::value),
        [100, 75, 50, 25, 0]
    );
    assert_eq!(Priority::from_name("urgent"), None);
    assert_eq!("-3".parse::<Priority>().unwrap(), Priority(-3));
    let err = "urgent".parse::<Priority>().unwrap_err();
    assert!(err.to_string().contains("urgent"));
    assert_eq!(Priority::default(), Priority::NORMAL);
    assert_eq!(Priority::HIGH.to_string(), "high (75)");
}

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

#[tokio::test(start_paused = true)]
async fn duration_max_timeouts_mean_never_and_shutdown_still_returns() {
    // Before: `start + Duration::MAX` panicked inside the shutdown task and `shutdown().await`
    // never returned (here: the outer timeout would fire instead).
    let cfg = ShutdownConfig::builder()
        .total_timeout(Duration::MAX)
        .hook_timeout(Duration::MAX)
        .drain_timeout(Duration::MAX)
        .drain_delay(Duration::MAX - Duration::from_nanos(1))
        .build()
        .unwrap();
    let c = ShutdownCoordinator::with_config(cfg);
    // A drain delay of ~forever: the token never fires, the shutdown waits (no panic).
    assert!(
        tokio::time::timeout(100 * YEAR, c.shutdown())
            .await
            .is_err()
    );
    assert!(!c.cancellation_token().is_cancelled());

    let cfg = ShutdownConfig::builder()
        .total_timeout(Duration::MAX)
        .hook_timeout(Duration::MAX)
        .drain_timeout(Duration::MAX)
        .build()
        .unwrap();
    let c = ShutdownCoordinator::with_config(cfg);
    let guard = c.in_flight();
    tokio::spawn(async move {
        tokio::time::sleep(10 * YEAR).await;
        drop(guard);
    });
    c.register("slow", Priority::NORMAL, || async {
        tokio::time::sleep(20 * YEAR).await;
    })
    .unwrap();
    c.register_with_timeout("own-max", Priority::LOW, Duration::MAX, || async {})
        .unwrap();
    let started = Instant::now();
    let report = tokio::time::timeout(100 * YEAR, c.shutdown())
        .await
        .expect("a shutdown without deadlines still ends when its work does");
    assert_eq!(report.outcome, ShutdownOutcome::Success);
    assert!(report.drained, "no drain deadline: waited for the guard");
    assert_eq!(started.elapsed(), 30 * YEAR);
    assert!(report.hooks.iter().all(|h| h.status.is_completed()));
}

#[tokio::test(start_paused = true)]
async fn timeouts_near_the_clocks_end_do_not_panic() {
    // `now + near_end` exists, but tokio's rounding up to the next millisecond would overflow.
    let near_end = longest_from(Instant::now()) - Duration::from_micros(500);
    let cfg = ShutdownConfig::builder()
        .total_timeout(near_end)
        .hook_timeout(near_end)
        .drain_timeout(near_end)
        .build()
        .unwrap();
    let c = ShutdownCoordinator::with_config(cfg);
    // Work that is not ready at once, so every deadline's timer is really armed.
    let guard = c.in_flight();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(guard);
    });
    c.register("slow", Priority::NORMAL, || {
        tokio::time::sleep(Duration::from_secs(1))
    })
    .unwrap();
    let report = tokio::time::timeout(YEAR, c.shutdown())
        .await
        .expect("finished");
    assert_eq!(report.outcome, ShutdownOutcome::Success);
    assert!(report.drained);
    assert_eq!(report.elapsed, Duration::from_secs(2));
}

#[test]
fn waiters_get_a_report_when_the_shutdown_task_dies_with_its_runtime() {
    let c = ShutdownCoordinator::new();
    c.register("forever", Priority::NORMAL, std::future::pending::<()>)
        .unwrap();
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    first.block_on(async {
        let c = c.clone();
        let _ = tokio::time::timeout(Duration::from_secs(1), c.shutdown()).await;
    });
    // The runtime goes away with the shutdown task (and its hook) still running.
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let report = second
        .block_on(async { tokio::time::timeout(YEAR, c.wait()).await })
        .expect("a waiter gets an answer instead of hanging");
    assert_eq!(report.outcome, ShutdownOutcome::Failure);
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn a_hook_timeout_of_zero_is_refused_naming_it() {
    // Before: accepted, and the hook was cut before it ever ran.
    let c = ShutdownCoordinator::new();
    let err = c
        .register_with_timeout("h", Priority::NORMAL, Duration::ZERO, || async {})
        .unwrap_err();
    let ShutdownError::InvalidConfig(config) = err else {
        panic!("{err:?}");
    };
    assert_eq!(config.field, "timeout");
    assert!(
        c.register_with_timeout("h", Priority::NORMAL, Duration::from_nanos(1), || async {})
            .is_ok()
    );
}
