//! What a fresh service exports on `/metrics`: a Redis client, a breaker, a limiter, a bulkhead
//! and a retry policy, each used once, scraped over a real socket from `ServiceEndpoints` with
//! the recorder `install_prometheus_recorder` installs. Its own test binary: the recorder is
//! global, and the series count must see nothing but this service.

mod support;

use std::sync::Arc;
use std::time::Duration;

use resilience::bulkhead::Bulkhead;
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig};
use resilience::health::HealthRegistry;
use resilience::integration::{ServiceEndpoints, install_prometheus_recorder};
use resilience::rate_limit::RateLimiter;
use resilience::redis::{RedisClient, RedisConfig};
use resilience::retry::RetryPolicy;
use resilience::shutdown::ShutdownCoordinator;
use support::RedisServer;

/// Serves `app` on a loopback port; returns the port.
async fn serve(app: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// One HTTP/1.1 GET over a real socket: (status, body).
async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The sample lines of a scrape (no comments, no blank lines).
fn series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[tokio::test]
async fn fresh_service_exports_only_what_happened_with_histogram_buckets() {
    let handle = install_prometheus_recorder().expect("the only recorder in this binary");
    let server = RedisServer::start();
    let redis = RedisClient::connect(RedisConfig::builder().port(server.port()).build().unwrap())
        .await
        .unwrap();
    let breaker = CircuitBreaker::new("upstream", CircuitBreakerConfig::default());
    let limiter = RateLimiter::builder().per_second(100).build().unwrap();
    let bulkhead = Bulkhead::builder().max_concurrent(4).build().unwrap();
    let policy = RetryPolicy::builder()
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(1))
        .build()
        .unwrap();

    // The service's first request: one call through each.
    redis.ping().await.unwrap();
    breaker
        .call_blocking(|| Ok::<_, std::io::Error>(()))
        .unwrap();
    limiter.check().unwrap();
    let permit = bulkhead.try_acquire().unwrap();
    drop(permit);
    policy
        .retry(|| async { Ok::<_, std::io::Error>(()) })
        .await
        .unwrap();

    let port = serve(
        ServiceEndpoints::new(Arc::new(HealthRegistry::new()))
            .shutdown(ShutdownCoordinator::new())
            .prometheus(handle)
            .router(),
    )
    .await;
    let (status, text) = http_get(port, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let lines = series(&text);
    let zero_redis_errors = lines
        .iter()
        .filter(|l| l.starts_with("redis_errors_total{") && l.ends_with(" 0"))
        .count();
    let zero_valued: Vec<&&str> = lines.iter().filter(|l| l.ends_with(" 0")).collect();
    // Printed for BENCHMARKS.md / the report (run with --no-capture).
    println!(
        "series: {}, zero-valued: {}, zero-valued redis_errors_total: {zero_redis_errors}\n{zero_valued:#?}",
        lines.len(),
        zero_valued.len()
    );

    assert_eq!(zero_redis_errors, 0, "{text}");
    assert!(
        !lines.iter().any(|l| l.starts_with("redis_errors_total")),
        "no Redis command failed: {text}"
    );
    // The breaker's transitions, never taken, are not exported either.
    assert!(
        !text.contains("circuit_breaker_state_changes_total"),
        "{text}"
    );
    assert!(
        lines.len() < 100,
        "{} series for one call through each instrument: {text}",
        lines.len()
    );
    // Histograms as Prometheus histograms: buckets, no quantiles.
    assert!(!text.contains("quantile="), "{text}");
    assert!(
        text.contains("redis_operation_duration_seconds_bucket{operation=\"ping\",le=\"0.0005\"}"),
        "{text}"
    );
    assert!(
        text.contains("redis_operation_duration_seconds_bucket{operation=\"ping\",le=\"+Inf\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("retry_attempts_count_bucket{name=\"unnamed\",le=\"1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE retry_attempts_count histogram"),
        "{text}"
    );
}
