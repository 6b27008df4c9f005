//! `protect(name, client)`: breaker outside, retries inside, the health check in a registry.
//! Time runs on tokio's paused clock; each test uses its own dependency names (the breakers live
//! in the global registry) and, but for one, its own health registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use resilience::health::{HealthRegistry, HealthStatus};
use resilience::protect::ProtectError;
use resilience::retry::{RetryPolicy, RetryPreset, Retryable};
use resilience::{
    CallError, CircuitBreaker, CircuitBreakerConfig, CircuitState, RetryService,
    configure_circuit_breaker, get_circuit_breaker, protect,
};

/// A client whose calls fail while `down` is set, counting every call.
#[derive(Default)]
struct Flaky {
    down: AtomicBool,
    calls: AtomicU32,
}

#[derive(Debug, PartialEq)]
enum Error {
    Down,
    Invalid,
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        *self == Error::Down
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::Down => "down",
            Error::Invalid => "invalid",
        })
    }
}

impl Flaky {
    async fn get(&self, n: u32) -> Result<u32, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(Error::Down)
        } else {
            Ok(n)
        }
    }

    async fn ping(&self) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::Down)
        } else {
            Ok(())
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

fn registry() -> Arc<HealthRegistry> {
    Arc::new(HealthRegistry::new())
}

async fn status_of(registry: &HealthRegistry, name: &str) -> (HealthStatus, Option<String>) {
    let report = registry.check().await;
    let check = report.check(name).expect("registered");
    (check.status, check.message.clone())
}

#[tokio::test(start_paused = true)]
async fn database_defaults_retry_inside_and_open_after_five_failed_sequences() {
    // `database` is a pre-configured breaker (5 failures, 60 s) and a retry service (3 attempts).
    // The global registry's `database` breaker is this test's alone.
    let health = registry();
    let db = protect("database", Flaky::default())
        .health_registry(health.clone())
        .build()
        .unwrap();
    assert_eq!(db.breaker().config().failure_threshold(), Some(5));
    assert_eq!(db.retry_policy().max_attempts(), 3);
    assert_eq!(db.retry_policy().max_delay(), Duration::from_secs(10));

    assert_eq!(db.call(|c| c.get(1)).await, Ok(1));
    assert_eq!(db.client().calls(), 1);

    db.client().down.store(true, Ordering::SeqCst);
    for sequence in 1..=5 {
        assert_eq!(
            db.call(|c| c.get(2)).await,
            Err(CallError::Inner(Error::Down))
        );
        // Each call made three attempts and counted once in the breaker.
        assert_eq!(db.client().calls(), 1 + 3 * sequence);
    }
    assert_eq!(db.state(), CircuitState::Open);
    let rejected = db.call(|c| c.get(3)).await;
    assert!(matches!(rejected, Err(CallError::Open(ref e)) if &*e.name == "database"));
    assert_eq!(
        db.client().calls(),
        16,
        "an open breaker does not call the client"
    );

    // Without a probe the open breaker makes the (required) dependency unhealthy.
    let report = health.check().await;
    assert_eq!(report.status, HealthStatus::Unhealthy);
    let (status, message) = status_of(&health, "database").await;
    assert_eq!(status, HealthStatus::Unhealthy);
    assert!(message.unwrap().contains("circuit breaker open"));

    // Past the reset timeout the next call may try: recovering, degraded, still ready.
    tokio::time::advance(Duration::from_secs(61)).await;
    let report = health.check().await;
    assert_eq!(report.status, HealthStatus::Degraded);
    assert!(report.is_ready());
    db.client().down.store(false, Ordering::SeqCst);
    assert_eq!(db.call(|c| c.get(4)).await, Ok(4));
    assert_eq!(db.state(), CircuitState::Closed);
    assert_eq!(health.check().await.status, HealthStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn unknown_names_get_the_default_breaker_and_standard_retry() {
    let dep = protect("protect-test-payments", Flaky::default())
        .without_health()
        .build()
        .unwrap();
    assert_eq!(dep.breaker().config().failure_threshold(), Some(5));
    assert_eq!(dep.retry_policy().max_attempts(), 3);
    assert_eq!(
        dep.retry_policy().total_timeout(),
        RetryPreset::Standard.policy().total_timeout()
    );
    let kafka = protect("kafka", ()).without_health().build().unwrap();
    assert_eq!(kafka.retry_policy().max_attempts(), 5);
    assert_eq!(kafka.breaker().config().failure_threshold(), Some(10));
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_are_not_retried_but_count_in_the_breaker() {
    let config = CircuitBreakerConfig::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    let dep = protect("protect-test-invalid", Flaky::default())
        .breaker_config(config)
        .without_health()
        .build()
        .unwrap();
    for _ in 0..2 {
        let out = dep
            .call(|c| async move {
                c.get(0).await?;
                Err::<u32, _>(Error::Invalid)
            })
            .await;
        assert_eq!(out, Err(CallError::Inner(Error::Invalid)));
    }
    assert_eq!(dep.client().calls(), 2, "one attempt each");
    assert_eq!(dep.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_custom_retry_policy_and_a_given_breaker_are_used() {
    let breaker = Arc::new(CircuitBreaker::new(
        "protect-test-own",
        CircuitBreakerConfig::builder()
            .failure_threshold(1)
            .build()
            .unwrap(),
    ));
    let policy = RetryPolicy::builder()
        .max_attempts(4)
        .initial_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let dep = protect("protect-test-own", Flaky::default())
        .breaker(breaker.clone())
        .retry(policy)
        .without_health()
        .build()
        .unwrap();
    assert!(Arc::ptr_eq(dep.breaker(), &breaker));
    // Not the global breaker of that name.
    assert!(!Arc::ptr_eq(
        dep.breaker(),
        &get_circuit_breaker("protect-test-own")
    ));
    dep.client().down.store(true, Ordering::SeqCst);
    assert!(dep.call(|c| c.get(1)).await.is_err());
    assert_eq!(dep.client().calls(), 4);
    assert_eq!(breaker.state(), CircuitState::Open);
    // A call that must not be retried goes through the breaker only.
    assert!(dep.call_once(|c| c.get(1)).await.unwrap_err().is_open());
    // The breaker-only view shares client and breaker.
    let protected = dep.protected();
    assert!(Arc::ptr_eq(protected.breaker(), &breaker));
    assert!(protected.call(|c| c.get(1)).await.unwrap_err().is_open());
}

#[tokio::test(start_paused = true)]
async fn health_follows_the_probe_and_the_breaker() {
    let health = registry();
    let dep = protect("protect-test-probe", Flaky::default())
        .retry(RetryService::Network)
        .breaker_config(
            CircuitBreakerConfig::builder()
                .failure_threshold(1)
                .reset_timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        )
        .health(|c| async move { c.ping().await })
        .health_registry(health.clone())
        .build()
        .unwrap();
    assert_eq!(health.names(), ["protect-test-probe"]);
    assert_eq!(
        status_of(&health, "protect-test-probe").await,
        (HealthStatus::Healthy, None)
    );

    // The probe fails: unhealthy with the probe's message, and the breaker is not touched.
    dep.client().down.store(true, Ordering::SeqCst);
    assert_eq!(
        status_of(&health, "protect-test-probe").await,
        (HealthStatus::Unhealthy, Some("down".to_owned()))
    );
    assert_eq!(dep.state(), CircuitState::Closed);
    assert_eq!(health.check().await.status, HealthStatus::Unhealthy);

    // The breaker opens; the dependency comes back: the probe passes, so only degraded.
    assert!(dep.call(|c| c.get(1)).await.is_err());
    assert_eq!(dep.state(), CircuitState::Open);
    dep.client().down.store(false, Ordering::SeqCst);
    let (status, message) = status_of(&health, "protect-test-probe").await;
    assert_eq!(status, HealthStatus::Degraded);
    assert!(message.unwrap().contains("probe passes"));

    // Forced open and the probe failing: unhealthy.
    dep.breaker().force_open();
    dep.client().down.store(true, Ordering::SeqCst);
    assert_eq!(
        status_of(&health, "protect-test-probe").await.0,
        HealthStatus::Unhealthy
    );
}

#[tokio::test(start_paused = true)]
async fn an_optional_dependency_only_degrades_the_service() {
    let health = registry();
    let dep = protect("protect-test-optional", Flaky::default())
        .optional()
        .health(|c| async move { c.ping().await })
        .health_registry(health.clone())
        .build()
        .unwrap();
    dep.client().down.store(true, Ordering::SeqCst);
    let report = health.check().await;
    let check = report.check("protect-test-optional").unwrap();
    assert!(!check.required);
    assert_eq!(check.status, HealthStatus::Unhealthy);
    assert_eq!(report.status, HealthStatus::Degraded);
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_is_cut_at_the_health_timeout() {
    let health = registry();
    protect("protect-test-slow", ())
        .health(|_| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            true
        })
        .health_timeout(Duration::from_millis(300))
        .health_registry(health.clone())
        .build()
        .unwrap();
    let report = health.check().await;
    let check = report.check("protect-test-slow").unwrap();
    assert!(check.timed_out);
    assert_eq!(check.status, HealthStatus::Unhealthy);
    assert_eq!(report.duration, Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn dependencies_are_isolated_by_name() {
    let health = registry();
    let config = || {
        CircuitBreakerConfig::builder()
            .failure_threshold(1)
            .build()
            .unwrap()
    };
    let a = protect("protect-test-iso-a", Flaky::default())
        .breaker_config(config())
        .retry(RetryPreset::Quick)
        .health_registry(health.clone())
        .build()
        .unwrap();
    let b = protect("protect-test-iso-b", Flaky::default())
        .breaker_config(config())
        .retry(RetryPreset::Quick)
        .health_registry(health.clone())
        .build()
        .unwrap();
    a.client().down.store(true, Ordering::SeqCst);
    assert!(a.call(|c| c.get(1)).await.is_err());
    assert_eq!(a.state(), CircuitState::Open);
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(b.call(|c| c.get(2)).await, Ok(2));

    let report = health.check().await;
    assert_eq!(
        report.check("protect-test-iso-a").unwrap().status,
        HealthStatus::Unhealthy
    );
    assert_eq!(
        report.check("protect-test-iso-b").unwrap().status,
        HealthStatus::Healthy
    );
    assert_eq!(report.status, HealthStatus::Unhealthy);
}

#[tokio::test(start_paused = true)]
async fn declaring_a_name_again_replaces_its_check_and_shares_its_breaker() {
    let health = registry();
    let old = protect("protect-test-again", Flaky::default())
        .health(|_| async { false })
        .health_registry(health.clone())
        .build()
        .unwrap();
    assert_eq!(
        status_of(&health, "protect-test-again").await.0,
        HealthStatus::Unhealthy
    );
    let new = protect("protect-test-again", Flaky::default())
        .health(|c| async move { c.ping().await })
        .health_registry(health.clone())
        .build()
        .unwrap();
    assert_eq!(health.names(), ["protect-test-again"]);
    assert_eq!(
        status_of(&health, "protect-test-again").await.0,
        HealthStatus::Healthy
    );
    assert!(Arc::ptr_eq(old.breaker(), new.breaker()));
}

#[tokio::test(start_paused = true)]
async fn a_conflicting_breaker_config_is_an_error() {
    configure_circuit_breaker(
        "protect-test-conflict",
        CircuitBreakerConfig::builder()
            .failure_threshold(2)
            .build()
            .unwrap(),
    )
    .unwrap();
    let err = protect("protect-test-conflict", ())
        .breaker_config(
            CircuitBreakerConfig::builder()
                .failure_threshold(9)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap_err();
    assert!(matches!(err, ProtectError::Breaker(_)));
    assert!(err.to_string().contains("protect-test-conflict"));
}

#[tokio::test(start_paused = true)]
async fn the_default_health_registry_is_the_global_one() {
    protect("protect-test-global", ())
        .health(|_| async { true })
        .optional()
        .build()
        .unwrap();
    let report = HealthRegistry::global().check().await;
    let check = report
        .check("protect-test-global")
        .expect("registered globally");
    assert!(!check.required);
    assert_eq!(check.status, HealthStatus::Healthy);
    assert!(HealthRegistry::global().remove("protect-test-global"));
}

#[tokio::test]
async fn an_empty_name_is_refused() {
    let err = protect("", ()).without_health().build().unwrap_err();
    assert_eq!(err, ProtectError::EmptyName);
}

#[derive(Debug, PartialEq)]
enum TimedError {
    Down,
    TimedOut,
}

impl Retryable for TimedError {
    fn is_retryable(&self) -> bool {
        true
    }
}

impl From<resilience::TimeoutError> for TimedError {
    fn from(_: resilience::TimeoutError) -> Self {
        Self::TimedOut
    }
}

#[tokio::test(start_paused = true)]
async fn call_with_timeouts_cuts_hanging_attempts() {
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .initial_delay(Duration::from_millis(100))
        .attempt_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let dep = protect("protect-test-timeouts", AtomicU32::new(0))
        .retry(policy)
        .without_health()
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let out: Result<(), _> = dep
        .call_with_timeouts(|attempts| async move {
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(TimedError::Down);
            }
            std::future::pending().await
        })
        .await;
    assert_eq!(out, Err(CallError::Inner(TimedError::TimedOut)));
    assert_eq!(dep.client().load(Ordering::SeqCst), 2);
    // The first attempt fails at once, a wait of 50–100 ms, then the second is cut after 1 s.
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_millis(1050)..=Duration::from_millis(1102)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert_eq!(dep.breaker().snapshot().failure_count, 1);
}

#[test]
fn blocking_calls_retry_inside_the_breaker() {
    let dep = protect("protect-test-blocking", 0u8)
        .retry(
            RetryPolicy::builder()
                .max_attempts(3)
                .initial_delay(Duration::ZERO)
                .build()
                .unwrap(),
        )
        .without_health()
        .build()
        .unwrap();
    let attempts = AtomicU32::new(0);
    let out = dep.call_blocking(|_| {
        let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if n < 3 { Err(Error::Down) } else { Ok(n) }
    });
    assert_eq!(out, Ok(3));
    // One successful sequence: the breaker saw a success, no failure.
    assert_eq!(dep.breaker().snapshot().failure_count, 0);
}
