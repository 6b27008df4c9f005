//! Health aggregation for every combination of required / optional × pass / slow / fail / hang,
//! latency thresholds, timeouts, the monitor and the shutdown check (paused clock throughout).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use resilience::health::{
    CheckOutcome, HealthCheck, HealthConfig, HealthMonitor, HealthRegistry, HealthStatus,
    Requirement, ShutdownCheck, check_fn,
};
use resilience::shutdown::ShutdownCoordinator;
use tokio::time::sleep;

use HealthStatus::{Degraded, Healthy, Unhealthy};

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Pass,
    /// Succeeds after 150 ms: within the degraded band.
    SlowDegraded,
    /// Succeeds after 700 ms: above the unhealthy threshold.
    SlowUnhealthy,
    Fail,
    /// Never answers: cut at the 2 s default timeout.
    Hang,
}

const ALL: [Behaviour; 5] = [
    Behaviour::Pass,
    Behaviour::SlowDegraded,
    Behaviour::SlowUnhealthy,
    Behaviour::Fail,
    Behaviour::Hang,
];

struct Probe {
    name: String,
    behaviour: Behaviour,
}

impl HealthCheck for Probe {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> CheckOutcome {
        match self.behaviour {
            Behaviour::Pass => CheckOutcome::healthy(),
            Behaviour::SlowDegraded => {
                sleep(Duration::from_millis(150)).await;
                CheckOutcome::healthy()
            }
            Behaviour::SlowUnhealthy => {
                sleep(Duration::from_millis(700)).await;
                CheckOutcome::healthy()
            }
            Behaviour::Fail => CheckOutcome::unhealthy("connection refused"),
            Behaviour::Hang => std::future::pending().await,
        }
    }
}

fn probe(name: &str, behaviour: Behaviour) -> Probe {
    Probe {
        name: name.to_owned(),
        behaviour,
    }
}

/// The status a single check gets, written out (not derived from the implementation).
fn check_status(b: Behaviour) -> HealthStatus {
    match b {
        Behaviour::Pass => Healthy,
        Behaviour::SlowDegraded => Degraded,
        Behaviour::SlowUnhealthy | Behaviour::Fail | Behaviour::Hang => Unhealthy,
    }
}

#[tokio::test(start_paused = true)]
async fn single_check_every_requirement_and_behaviour() {
    // (requirement, behaviour, overall status), written out.
    let table = [
        (Requirement::Required, Behaviour::Pass, Healthy),
        (Requirement::Required, Behaviour::SlowDegraded, Degraded),
        (Requirement::Required, Behaviour::SlowUnhealthy, Unhealthy),
        (Requirement::Required, Behaviour::Fail, Unhealthy),
        (Requirement::Required, Behaviour::Hang, Unhealthy),
        (Requirement::Optional, Behaviour::Pass, Healthy),
        (Requirement::Optional, Behaviour::SlowDegraded, Degraded),
        (Requirement::Optional, Behaviour::SlowUnhealthy, Degraded),
        (Requirement::Optional, Behaviour::Fail, Degraded),
        (Requirement::Optional, Behaviour::Hang, Degraded),
    ];
    for (requirement, behaviour, overall) in table {
        let registry = HealthRegistry::new();
        registry.register(probe("dep", behaviour), requirement, None);
        let report = registry.check().await;
        let ctx = format!("{requirement:?} {behaviour:?}: {report:?}");
        assert_eq!(report.status, overall, "{ctx}");
        let check = report.check("dep").unwrap();
        assert_eq!(check.status, check_status(behaviour), "{ctx}");
        assert_eq!(
            check.required,
            requirement == Requirement::Required,
            "{ctx}"
        );
        assert_eq!(report.is_ready(), overall != Unhealthy, "{ctx}");
        match behaviour {
            Behaviour::Pass => {
                assert_eq!(check.latency, Duration::ZERO);
                assert_eq!(check.message, None);
            }
            Behaviour::SlowDegraded => {
                assert_eq!(check.latency, Duration::from_millis(150));
                assert!(
                    check.message.as_deref().unwrap().starts_with("slow"),
                    "{ctx}"
                );
            }
            Behaviour::SlowUnhealthy => assert_eq!(check.latency, Duration::from_millis(700)),
            Behaviour::Fail => {
                assert_eq!(check.message.as_deref(), Some("connection refused"))
            }
            Behaviour::Hang => {
                assert!(check.timed_out, "{ctx}");
                assert_eq!(check.latency, Duration::from_secs(2));
                assert_eq!(check.message.as_deref(), Some("timed out after 2s"));
            }
        }
        assert_eq!(
            check.timed_out,
            matches!(behaviour, Behaviour::Hang),
            "{ctx}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn one_required_and_one_optional_every_pair() {
    for req in ALL {
        for opt in ALL {
            let registry = HealthRegistry::new();
            registry.required(probe("req", req));
            registry.optional(probe("opt", opt));
            let report = registry.check().await;
            let expected = if check_status(req) == Unhealthy {
                Unhealthy
            } else if check_status(req) == Healthy && check_status(opt) == Healthy {
                Healthy
            } else {
                Degraded
            };
            assert_eq!(
                report.status, expected,
                "required {req:?}, optional {opt:?}"
            );
            assert_eq!(report.check("req").unwrap().status, check_status(req));
            assert_eq!(report.check("opt").unwrap().status, check_status(opt));
            // Checks run concurrently: the run takes as long as the slowest check.
            let slowest = [req, opt]
                .iter()
                .map(|b| match b {
                    Behaviour::SlowDegraded => 150,
                    Behaviour::SlowUnhealthy => 700,
                    Behaviour::Hang => 2000,
                    _ => 0,
                })
                .max()
                .unwrap();
            assert_eq!(report.duration, Duration::from_millis(slowest));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn latency_boundaries() {
    let registry = HealthRegistry::new();
    for ms in [99u64, 100, 500, 501] {
        registry.required(check_fn(format!("{ms}ms"), move || async move {
            sleep(Duration::from_millis(ms)).await;
        }));
    }
    let report = registry.check().await;
    let statuses: Vec<_> = report.checks.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Healthy, Degraded, Degraded, Unhealthy]);
    assert_eq!(report.status, Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn many_checks_run_concurrently() {
    let registry = HealthRegistry::new();
    for i in 0..10 {
        registry.optional(check_fn(format!("c{i}"), || async {
            sleep(Duration::from_millis(80)).await;
        }));
    }
    let report = registry.check().await;
    assert_eq!(report.duration, Duration::from_millis(80));
    assert_eq!(report.status, Healthy);
    assert_eq!(report.checks.len(), 10);
}

#[tokio::test(start_paused = true)]
async fn custom_thresholds_and_per_check_timeout() {
    let config = HealthConfig::builder()
        .degraded_after(Duration::from_millis(10))
        .unhealthy_after(Duration::from_millis(50))
        .check_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let registry = HealthRegistry::with_config(config);
    registry.required(check_fn("twenty", || async {
        sleep(Duration::from_millis(20)).await;
    }));
    registry.register(
        check_fn("hangs", std::future::pending::<()>),
        Requirement::Optional,
        Some(Duration::from_millis(300)),
    );
    let report = registry.check().await;
    assert_eq!(report.check("twenty").unwrap().status, Degraded);
    let hangs = report.check("hangs").unwrap();
    assert!(hangs.timed_out);
    assert_eq!(hangs.latency, Duration::from_millis(300));
    assert_eq!(report.status, Degraded);
    assert_eq!(report.duration, Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_check_is_unhealthy_and_the_others_still_report() {
    let registry = HealthRegistry::new();
    registry.optional(check_fn("panics", || async {
        if HealthStatus::Healthy < HealthStatus::Unhealthy {
            panic!("probe exploded");
        }
    }));
    registry.required(check_fn("ok", || async { true }));
    let report = registry.check().await;
    let panics = report.check("panics").unwrap();
    assert_eq!(panics.status, Unhealthy);
    assert_eq!(panics.message.as_deref(), Some("check panicked"));
    assert_eq!(report.check("ok").unwrap().status, Healthy);
    assert_eq!(report.status, Degraded);
}

#[tokio::test(start_paused = true)]
async fn closures_returning_results_bools_and_statuses() {
    let registry = HealthRegistry::new();
    registry.required(check_fn("err", || async {
        Err::<(), _>(std::io::Error::other("down"))
    }));
    registry.optional(check_fn("false", || async { false }));
    registry.optional(check_fn("degraded", || async { HealthStatus::Degraded }));
    let report = registry.check().await;
    assert_eq!(
        report.check("err").unwrap().message.as_deref(),
        Some("down")
    );
    assert_eq!(report.check("false").unwrap().status, Unhealthy);
    assert_eq!(report.check("degraded").unwrap().status, Degraded);
    assert_eq!(report.status, Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn same_name_replaces_and_remove_removes() {
    let registry = HealthRegistry::new();
    registry.required(check_fn("db", || async { false }));
    registry.required(check_fn("db", || async { true }));
    assert_eq!(registry.names(), ["db"]);
    assert_eq!(registry.check().await.status, Healthy);
    assert!(registry.remove("db"));
    assert!(!registry.remove("db"));
    let empty = registry.check().await;
    assert_eq!(empty.status, Healthy);
    assert!(empty.checks.is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_check_turns_unhealthy_when_shutdown_begins() {
    let coordinator = ShutdownCoordinator::new();
    let registry = HealthRegistry::new();
    registry.required(ShutdownCheck::new(coordinator.clone()));
    assert_eq!(registry.check().await.status, Healthy);
    coordinator.shutdown().await;
    let report = registry.check().await;
    assert_eq!(report.status, Unhealthy);
    assert!(!report.is_ready());
    assert_eq!(
        report.check("shutdown").unwrap().message.as_deref(),
        Some("shutting down")
    );
}

#[tokio::test(start_paused = true)]
async fn monitor_runs_on_its_interval_and_keeps_the_last_report() {
    let registry = Arc::new(HealthRegistry::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    registry.required(check_fn("counted", move || {
        let n = r.fetch_add(1, Ordering::SeqCst);
        async move { n.is_multiple_of(2) }
    }));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let monitor = HealthMonitor::new(registry.clone(), Duration::from_secs(30))
        .unwrap()
        .on_check(move |report| s.lock().unwrap().push(report.status));
    assert!(monitor.last().is_none());
    assert!(!monitor.is_running());
    monitor.start().unwrap();
    monitor.start().unwrap(); // idempotent
    assert!(monitor.is_running());

    // First run at once, then one per 30 s.
    sleep(Duration::from_secs(1)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    sleep(Duration::from_secs(60)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(*seen.lock().unwrap(), [Healthy, Unhealthy, Healthy]);
    assert_eq!(monitor.last().unwrap().status, Healthy);

    let now = monitor.check_now().await;
    assert_eq!(now.status, Unhealthy);
    assert_eq!(monitor.last().unwrap().status, Unhealthy);
    assert_eq!(seen.lock().unwrap().len(), 4);

    monitor.stop();
    assert!(!monitor.is_running());
    sleep(Duration::from_secs(120)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 4, "no runs after stop");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_monitor_stops_it() {
    let registry = Arc::new(HealthRegistry::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    registry.required(check_fn("counted", move || {
        r.fetch_add(1, Ordering::SeqCst);
        async {}
    }));
    let monitor = HealthMonitor::new(registry, Duration::from_secs(1)).unwrap();
    monitor.start().unwrap();
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    drop(monitor);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[test]
fn monitor_and_config_reject_bad_values() {
    let e = HealthMonitor::new(Arc::new(HealthRegistry::new()), Duration::ZERO).unwrap_err();
    assert_eq!(e.field, "interval");
    let e = HealthConfig::builder()
        .degraded_after(Duration::from_millis(600))
        .build()
        .unwrap_err();
    assert_eq!(e.field, "unhealthy_after");
    let e = HealthConfig::builder()
        .check_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field, "check_timeout");
    let e = HealthConfig::builder()
        .degraded_after(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field, "degraded_after");
    assert_eq!(
        HealthConfig::builder().build().unwrap(),
        HealthConfig::default()
    );
}

#[test]
fn monitor_start_outside_a_runtime_is_an_error() {
    let monitor =
        HealthMonitor::new(Arc::new(HealthRegistry::new()), Duration::from_secs(1)).unwrap();
    assert!(monitor.start().is_err());
    assert_eq!(Healthy.as_str(), "healthy");
    assert_eq!(Unhealthy.to_string(), "unhealthy");
}

struct OptionalByDefault;

impl HealthCheck for OptionalByDefault {
    fn name(&self) -> &str {
        "optional-by-default"
    }

    async fn check(&self) -> CheckOutcome {
        CheckOutcome::unhealthy("down")
    }

    fn requirement(&self) -> Requirement {
        Requirement::Optional
    }
}

#[tokio::test(start_paused = true)]
async fn add_uses_the_checks_own_requirement() {
    let registry = HealthRegistry::new();
    registry.add(OptionalByDefault);
    let report = registry.check().await;
    assert!(!report.check("optional-by-default").unwrap().required);
    assert_eq!(report.status, Degraded);
    registry.add(check_fn("required-by-default", || async { false }));
    assert_eq!(registry.check().await.status, Unhealthy);
}

mod breakers {
    use super::*;
    use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig};
    use resilience::health::BreakerCheck;

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_degrades() {
        let breaker = Arc::new(CircuitBreaker::new(
            "payments",
            CircuitBreakerConfig::builder()
                .failure_threshold(1)
                .build()
                .unwrap(),
        ));
        let registry = HealthRegistry::new();
        registry.add(BreakerCheck::new(breaker.clone()));
        let report = registry.check().await;
        assert_eq!(report.status, Healthy);
        assert!(!report.check("circuit_breaker:payments").unwrap().required);

        let _ = breaker
            .call(|| async { Err::<(), _>(std::io::Error::other("down")) })
            .await;
        let report = registry.check().await;
        assert_eq!(report.status, Degraded);
        let check = report.check("circuit_breaker:payments").unwrap();
        assert_eq!(check.status, Degraded);
        assert_eq!(check.message.as_deref(), Some("payments open"));

        breaker.reset();
        assert_eq!(registry.check().await.status, Healthy);
        breaker.force_open();
        assert_eq!(registry.check().await.status, Degraded);
    }

    #[tokio::test(start_paused = true)]
    async fn a_required_breaker_check_still_only_degrades() {
        let breaker = Arc::new(CircuitBreaker::new("core", CircuitBreakerConfig::default()));
        let registry = HealthRegistry::new();
        registry.required(BreakerCheck::new(breaker.clone()));
        breaker.force_open();
        // The check itself says degraded; required or not, degraded stays degraded.
        assert_eq!(registry.check().await.status, Degraded);
    }
}

/// A check's error text reaches the report with its credentials masked, so neither a body nor a
/// log nor `Debug` of the report can leak them.
#[tokio::test(start_paused = true)]
async fn reports_carry_check_messages_with_credentials_masked() {
    let registry = HealthRegistry::new();
    registry.required(check_fn("db", || async {
        Err::<(), _>(std::io::Error::other(
            "postgres://admin:s3cr3t@db.internal/app: connection refused",
        ))
    }));
    registry.optional(check_fn("vault", || async {
        CheckOutcome::degraded("login failed for token=hvs.s3cr3t")
    }));
    let report = registry.check().await;
    assert_eq!(
        report.check("db").unwrap().message.as_deref(),
        Some("postgres://admin:***@db.internal/app: connection refused")
    );
    assert_eq!(
        report.check("vault").unwrap().message.as_deref(),
        Some("login failed for token=***")
    );
    assert!(!format!("{report:?}").contains("s3cr3t"));
}

proptest::proptest! {
    /// Any text: no panic; a planted password or URL credential never survives.
    #[test]
    fn redaction_never_panics_and_always_masks_planted_secrets(
        before in "\\PC{0,40}",
        after in "\\PC{0,40}",
        secret in "[A-Za-z0-9]{16}",
    ) {
        let _ = resilience::health::redact_secrets(&before);
        for planted in [
            format!("{before} password={secret} {after}"),
            format!("{before} redis://user:{secret}@host {after}"),
            format!("{before} Bearer {secret} {after}"),
        ] {
            let masked = resilience::health::redact_secrets(&planted);
            proptest::prop_assert!(
                !masked.contains(&secret) || before.contains(&secret) || after.contains(&secret),
                "{planted:?} -> {masked:?}"
            );
        }
    }
}
