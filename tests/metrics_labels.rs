//! The instruments' metrics, scraped from the Prometheus recorder `install_prometheus_recorder`
//! installs: `rate_limit_decisions_total`, `bulkhead_calls_total` / `bulkhead_in_flight`,
//! `timeout_calls_total` and the `name` label of the retry metrics, for builders' names and for
//! the attributes' function paths; and that a series appears only once it has happened. Each
//! test uses names of its own, so they hold with one recorder per process (nextest) or one
//! shared by all (`cargo test`).

mod support;

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use resilience::bulkhead::{Bulkhead, BulkheadFull};
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig};
use resilience::integration::{PrometheusHandle, install_prometheus_recorder};
use resilience::rate_limit::{
    FailurePolicy, KeyedRateLimit, KeyedRateLimiter, RateLimiter, RedisRateLimiter,
};
use resilience::redis::{RedisClient, RedisConfig};
use resilience::retry::{Backoff, RetryPolicy};
use resilience::timeout::{Timeout, timeout};
use resilience::{bulkhead, rate_limit, retry};
use support::RedisServer;

/// The recorder of this process, installed by the first test that asks.
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| install_prometheus_recorder().expect("the only recorder"))
}

/// The value of the sample `family{labels}` (labels in the order the recorder writes them:
/// the order they were given), if the scrape has it.
fn sample(family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let prefix = format!("{family}{{{}}} ", labels.join(","));
    let text = prometheus().render();
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.parse().expect("a number"))
}

/// `family{name,outcome}`, 0 when absent.
fn outcome(family: &str, name: &str, outcome: &str) -> f64 {
    sample(family, &[("name", name), ("outcome", outcome)]).unwrap_or(0.0)
}

/// Whether any series of the scrape carries `name="<name>"`.
fn any_series_named(name: &str) -> bool {
    let label = format!("name=\"{name}\"");
    prometheus()
        .render()
        .lines()
        .any(|l| !l.starts_with('#') && l.contains(&label))
}

const DECISIONS: &str = "rate_limit_decisions_total";
const BULKHEAD: &str = "bulkhead_calls_total";
const TIMEOUTS: &str = "timeout_calls_total";
const RETRIES: &str = "retry_attempts_total";

#[test]
fn memory_limiter_counts_decisions_under_its_name_and_only_outcomes_seen() {
    prometheus();
    let limiter = RateLimiter::builder()
        .per_minute(2)
        .name("mem-api")
        .build()
        .unwrap();
    assert_eq!(limiter.name(), "mem-api");
    assert!(
        !any_series_named("mem-api"),
        "nothing before the first call"
    );
    limiter.check().unwrap();
    assert_eq!(outcome(DECISIONS, "mem-api", "allowed"), 1.0);
    assert_eq!(
        sample(DECISIONS, &[("name", "mem-api"), ("outcome", "rejected")]),
        None,
        "no rejection yet, so no zero-valued series"
    );
    limiter.check().unwrap();
    assert!(limiter.check().is_err());
    // `decide` counts too; `decide(0)` only looks.
    assert!(!limiter.decide(1).unwrap().allowed);
    limiter.decide(0).unwrap();
    assert_eq!(outcome(DECISIONS, "mem-api", "allowed"), 2.0);
    assert_eq!(outcome(DECISIONS, "mem-api", "rejected"), 2.0);
    assert_eq!(
        sample(DECISIONS, &[("name", "mem-api"), ("outcome", "error")]),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_token_counts_one_allowed_not_the_refusals() {
    prometheus();
    let limiter = RateLimiter::builder()
        .per_second(10)
        .burst(1)
        .clock(resilience::rate_limit::TokioClock::new())
        .name("mem-wait")
        .build()
        .unwrap();
    limiter.until_ready().await;
    limiter.until_ready().await; // waits 100 ms of paused time
    assert_eq!(outcome(DECISIONS, "mem-wait", "allowed"), 2.0);
    assert_eq!(outcome(DECISIONS, "mem-wait", "rejected"), 0.0);
}

#[tokio::test]
async fn keyed_limiter_counts_every_key_under_the_limiter_name() {
    prometheus();
    let limiter = KeyedRateLimiter::<String>::builder()
        .per_minute(1)
        .max_keys(2)
        .name("keyed-api")
        .build()
        .unwrap();
    limiter.check_key("alice").unwrap();
    assert!(limiter.check_key("alice").is_err());
    limiter.check_key("bob").unwrap();
    // The table is full of active keys: a new key is refused, and counted as rejected.
    assert!(limiter.check_key("carol").is_err());
    // Through the `KeyedRateLimit` face (what the HTTP layer uses).
    let decision = KeyedRateLimit::check_key(&limiter, "bob", 1).await.unwrap();
    assert!(!decision.allowed);
    assert_eq!(outcome(DECISIONS, "keyed-api", "allowed"), 2.0);
    assert_eq!(outcome(DECISIONS, "keyed-api", "rejected"), 3.0);
    // Keys never become labels.
    assert!(!prometheus().render().contains("alice"));
}

#[tokio::test]
async fn redis_limiter_counts_decisions_and_each_failure_path() {
    prometheus();
    let mut server = RedisServer::start();
    let client = RedisClient::connect(
        RedisConfig::builder()
            .port(server.port())
            .response_timeout(Duration::from_millis(300))
            .connect_timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let build = |name: &str, policy: FailurePolicy| {
        RedisRateLimiter::builder(client.clone(), name)
            .capacity(2)
            .refill_per_sec(0.01)
            .failure_policy(policy)
            .build()
            .unwrap()
    };
    let closed = build("redis-closed", FailurePolicy::FailClosed);
    for _ in 0..3 {
        let _ = closed.check("k", 1).await.unwrap();
    }
    assert_eq!(outcome(DECISIONS, "redis-closed", "allowed"), 2.0);
    assert_eq!(outcome(DECISIONS, "redis-closed", "rejected"), 1.0);

    let open = build("redis-open", FailurePolicy::FailOpen);
    let local = Arc::new(
        KeyedRateLimiter::builder()
            .per_minute(5)
            .name("redis-fallback")
            .build()
            .unwrap(),
    );
    let with_local = build("redis-with-local", FailurePolicy::Local(local));
    server.stop();

    assert!(closed.check("k", 1).await.is_err());
    assert!(open.check("k", 1).await.unwrap().allowed);
    assert!(with_local.check("k", 1).await.unwrap().allowed);
    assert_eq!(outcome(DECISIONS, "redis-closed", "error"), 1.0);
    assert_eq!(outcome(DECISIONS, "redis-open", "fail_open"), 1.0);
    assert_eq!(outcome(DECISIONS, "redis-with-local", "local"), 1.0);
    // The fallback counts its own decision under its own name.
    assert_eq!(outcome(DECISIONS, "redis-fallback", "allowed"), 1.0);
    assert_eq!(outcome(DECISIONS, "redis-open", "allowed"), 0.0);
    // The same failures as `redis_errors_total`, registered now that they happened.
    assert!(prometheus().render().lines().any(|l| {
        l.starts_with("redis_errors_total{operation=\"rate_limit\"") && !l.ends_with(" 0")
    }));
}

#[tokio::test(start_paused = true)]
async fn bulkhead_counts_admitted_rejected_and_queue_timeouts_and_tracks_in_flight() {
    prometheus();
    let bulkhead = Bulkhead::builder()
        .name("db-pool")
        .max_concurrent(1)
        .max_queued(1)
        .queue_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    assert_eq!(bulkhead.name(), "db-pool");
    let in_flight = || sample("bulkhead_in_flight", &[("name", "db-pool")]);
    assert_eq!(in_flight(), None, "registered on first admission");

    let held = bulkhead.acquire().await.unwrap();
    assert_eq!(in_flight(), Some(1.0));
    // All slots busy: `try_acquire` refuses at once.
    assert!(bulkhead.try_acquire().is_err());
    // One call waits in the queue; a second finds the queue full.
    let waiter = {
        let bulkhead = bulkhead.clone();
        tokio::spawn(async move { bulkhead.acquire().await.map(drop) })
    };
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.queued(), 1);
    assert!(matches!(
        bulkhead.acquire().await,
        Err(BulkheadFull::QueueFull { .. })
    ));
    // The waiter's queue timeout passes (paused clock: advanced when all tasks idle).
    assert!(matches!(
        waiter.await.unwrap(),
        Err(BulkheadFull::QueueTimeout { .. })
    ));
    drop(held);
    assert_eq!(in_flight(), Some(0.0));

    assert_eq!(outcome(BULKHEAD, "db-pool", "admitted"), 1.0);
    assert_eq!(outcome(BULKHEAD, "db-pool", "rejected"), 2.0);
    assert_eq!(outcome(BULKHEAD, "db-pool", "timed_out"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn timeouts_count_completed_and_timed_out_by_name() {
    prometheus();
    let upstream = Timeout::new(Duration::from_millis(20)).name("upstream-call");
    assert_eq!(upstream.run(async { 1 }).await, Ok(1));
    assert!(upstream.run(std::future::pending::<()>()).await.is_err());
    assert!(upstream.run(std::future::pending::<()>()).await.is_err());
    assert_eq!(outcome(TIMEOUTS, "upstream-call", "completed"), 1.0);
    assert_eq!(outcome(TIMEOUTS, "upstream-call", "timed_out"), 2.0);

    // The free function counts under `unnamed` (other tests may add to it: at least one).
    timeout(Duration::from_millis(20), async {}).await.unwrap();
    assert!(outcome(TIMEOUTS, "unnamed", "completed") >= 1.0);
}

#[tokio::test(start_paused = true)]
async fn retry_metrics_carry_the_policy_name() {
    prometheus();
    let policy = RetryPolicy::builder()
        .name("payments")
        .max_attempts(3)
        .backoff(Backoff::Fixed)
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(5))
        .build()
        .unwrap();
    assert_eq!(policy.name(), Some("payments"));
    // A builder from the policy keeps its name.
    assert_eq!(
        policy.to_builder().build().unwrap().name(),
        Some("payments")
    );
    let _ = policy.retry(|| async { Ok::<_, io::Error>(()) }).await;
    let _ = policy
        .retry(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::TimedOut)) })
        .await;
    assert_eq!(outcome(RETRIES, "payments", "success"), 1.0);
    assert_eq!(outcome(RETRIES, "payments", "retry"), 2.0);
    assert_eq!(outcome(RETRIES, "payments", "exhausted"), 1.0);
    assert_eq!(
        sample(RETRIES, &[("name", "payments"), ("outcome", "cancelled")]),
        None
    );
    // Attempts per operation, as a Prometheus histogram with buckets 1..10.
    assert_eq!(
        sample(
            "retry_attempts_count_bucket",
            &[("name", "payments"), ("le", "1")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            "retry_attempts_count_bucket",
            &[("name", "payments"), ("le", "3")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample("retry_attempts_count_sum", &[("name", "payments")]),
        Some(4.0)
    );
}

#[retry(max_attempts = 2, initial_delay_ms = 1, max_delay_ms = 1)]
async fn flaky_fetch() -> Result<(), io::Error> {
    Err(io::Error::from(io::ErrorKind::ConnectionReset))
}

#[rate_limit(per_minute = 1)]
fn limited_endpoint() -> Result<(), io::Error> {
    Ok(())
}

#[rate_limit(per_minute = 1, key = user)]
fn limited_per_user(user: &str) -> Result<(), io::Error> {
    let _ = user;
    Ok(())
}

#[bulkhead(max_concurrent = 1)]
async fn guarded() -> Result<(), io::Error> {
    Ok(())
}

#[resilience::timeout(ms = 10)]
async fn slow() -> Result<(), io::Error> {
    std::future::pending().await
}

#[tokio::test(start_paused = true)]
async fn attributes_name_their_instruments_after_the_function_path() {
    prometheus();
    assert!(flaky_fetch().await.is_err());
    assert_eq!(
        outcome(RETRIES, "metrics_labels::flaky_fetch", "exhausted"),
        1.0
    );
    assert_eq!(
        outcome(RETRIES, "metrics_labels::flaky_fetch", "retry"),
        1.0
    );

    limited_endpoint().unwrap();
    assert!(limited_endpoint().is_err());
    assert_eq!(
        outcome(DECISIONS, "metrics_labels::limited_endpoint", "allowed"),
        1.0
    );
    assert_eq!(
        outcome(DECISIONS, "metrics_labels::limited_endpoint", "rejected"),
        1.0
    );
    limited_per_user("u1").unwrap();
    limited_per_user("u2").unwrap();
    assert!(limited_per_user("u1").is_err());
    assert_eq!(
        outcome(DECISIONS, "metrics_labels::limited_per_user", "allowed"),
        2.0
    );
    assert_eq!(
        outcome(DECISIONS, "metrics_labels::limited_per_user", "rejected"),
        1.0
    );

    guarded().await.unwrap();
    assert_eq!(
        outcome(BULKHEAD, "metrics_labels::guarded", "admitted"),
        1.0
    );
    assert_eq!(
        sample("bulkhead_in_flight", &[("name", "metrics_labels::guarded")]),
        Some(0.0)
    );

    assert!(slow().await.is_err());
    assert_eq!(outcome(TIMEOUTS, "metrics_labels::slow", "timed_out"), 1.0);
}

#[test]
fn breaker_exports_transitions_and_outcomes_once_they_happen() {
    prometheus();
    let config = CircuitBreakerConfig::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    let breaker = CircuitBreaker::new("lazy-breaker", config);
    // The state gauge is there from the start; the counters are not.
    assert_eq!(
        sample("circuit_breaker_state", &[("name", "lazy-breaker")]),
        Some(0.0)
    );
    assert!(
        !prometheus()
            .render()
            .lines()
            .any(|l| l.contains("name=\"lazy-breaker\"")
                && l.starts_with("circuit_breaker_state_changes_total"))
    );
    breaker.call_blocking(|| Ok::<_, io::Error>(())).unwrap();
    assert!(
        breaker
            .call_blocking(|| Err::<(), _>(io::Error::other("down")))
            .is_err()
    );
    assert!(breaker.call_blocking(|| Ok::<_, io::Error>(())).is_err());
    assert_eq!(
        outcome("circuit_breaker_requests_total", "lazy-breaker", "success"),
        1.0
    );
    assert_eq!(
        outcome("circuit_breaker_requests_total", "lazy-breaker", "failure"),
        1.0
    );
    assert_eq!(
        sample(
            "circuit_breaker_rejections_total",
            &[("name", "lazy-breaker")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            "circuit_breaker_state_changes_total",
            &[("name", "lazy-breaker"), ("from", "closed"), ("to", "open")]
        ),
        Some(1.0)
    );
    let changes = prometheus()
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("circuit_breaker_state_changes_total") && l.contains("\"lazy-breaker\"")
        })
        .count();
    assert_eq!(changes, 1, "only the transition taken");
}

#[tokio::test]
async fn job_worker_exports_outcomes_and_durations_once_jobs_ran() {
    use resilience::jobs::{Handler, JobOptions, MemoryBroker, Queue, Worker};
    use resilience::shutdown::ShutdownCoordinator;
    prometheus();
    let queue = Queue::in_memory("lazy-queue", &MemoryBroker::new()).unwrap();
    let _worker = Worker::builder(&queue)
        .handler(Handler::new("ok", |_: u32| async {
            Ok::<_, io::Error>(())
        }))
        .handler(Handler::new("never", |_: u32| async {
            Ok::<_, io::Error>(())
        }))
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .unwrap();
    let job_series = |family: &str| {
        prometheus()
            .render()
            .lines()
            .filter(|l| l.starts_with(family) && l.contains("queue=\"lazy-queue\""))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(job_series("job_queue_processed_total").is_empty());
    assert!(job_series("job_queue_processing_duration_seconds").is_empty());
    assert!(job_series("job_queue_wait_duration_seconds").is_empty());

    queue.add("ok", &1_u32, JobOptions::new()).await.unwrap();
    let done = support::poll_until(Duration::from_secs(10), async || {
        sample(
            "job_queue_processed_total",
            &[("queue", "lazy-queue"), ("outcome", "completed")],
        )
    })
    .await;
    assert_eq!(done, Some(1.0));
    assert_eq!(
        job_series("job_queue_processed_total").len(),
        1,
        "only `completed`"
    );
    let durations = job_series("job_queue_processing_duration_seconds_count");
    assert_eq!(
        durations.len(),
        1,
        "only the handler that ran: {durations:?}"
    );
    assert!(durations[0].contains("name=\"ok\""), "{durations:?}");
}
