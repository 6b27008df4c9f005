//! The `redis_*` metrics, with a recorder installed for this test binary.

mod support;

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset};
use resilience::metrics::{REDIS_CONNECTED, REDIS_ERRORS_TOTAL, REDIS_OPERATION_DURATION_SECONDS};
use resilience::redis::{Keys, RateWindow, RedisClient, RedisConfig};
use support::{RedisServer, poll_until};

type Snapshot = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

fn find<'a>(snap: &'a Snapshot, name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    snap.iter()
        .find(|(k, _, _, _)| {
            let key = k.key();
            key.name() == name
                && labels
                    .iter()
                    .all(|(l, v)| key.labels().any(|x| x.key() == *l && x.value() == *v))
        })
        .map(|(_, _, _, v)| v)
}

#[tokio::test]
async fn client_records_duration_errors_and_connection_state() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this binary");

    let mut server = RedisServer::start();
    let redis = RedisClient::connect(
        RedisConfig::builder()
            .port(server.port())
            .response_timeout(Duration::from_millis(500))
            .circuit_breaker(Arc::new(CircuitBreaker::new(
                "redis-metrics",
                CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Tolerant),
            )))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    redis.ping().await.unwrap();
    redis
        .rate_limit(&Keys::rate_api_key("m", RateWindow::Second), 5, 1.0, 1)
        .await
        .unwrap();
    server.stop();
    assert!(redis.ping().await.is_err());

    // A snapshot drains histograms: take one and search it.
    let snap = snapshotter.snapshot().into_vec();
    match find(
        &snap,
        REDIS_OPERATION_DURATION_SECONDS,
        &[("operation", "rate_limit")],
    ) {
        Some(DebugValue::Histogram(v)) => assert_eq!(v.len(), 1),
        other => panic!("no rate_limit duration: {other:?}"),
    }
    match find(
        &snap,
        REDIS_OPERATION_DURATION_SECONDS,
        &[("operation", "ping")],
    ) {
        Some(DebugValue::Histogram(v)) => assert_eq!(v.len(), 2),
        other => panic!("no ping duration: {other:?}"),
    }
    let errors: u64 = snap
        .iter()
        .filter(|(k, _, _, _)| {
            k.key().name() == REDIS_ERRORS_TOTAL
                && k.key()
                    .labels()
                    .any(|l| l.key() == "operation" && l.value() == "ping")
        })
        .map(|(_, _, _, v)| match v {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum();
    assert_eq!(errors, 1);
    assert!(
        matches!(find(&snap, REDIS_CONNECTED, &[]), Some(DebugValue::Gauge(g)) if g.into_inner() == 0.0)
    );

    server.start_again();
    assert!(
        poll_until(Duration::from_secs(5), async || redis.ping().await.ok())
            .await
            .is_some()
    );
    let snap = snapshotter.snapshot().into_vec();
    assert!(
        matches!(find(&snap, REDIS_CONNECTED, &[]), Some(DebugValue::Gauge(g)) if g.into_inner() == 1.0)
    );

    // An ACL refusal is counted under its own kind, not as a server or auth failure.
    server.cli(&[
        "ACL", "SETUSER", "noget", "on", ">pw", "~*", "+@all", "-get",
    ]);
    let limited = RedisClient::connect(
        RedisConfig::builder()
            .port(server.port())
            .username("noget")
            .password("pw")
            .circuit_breaker(Arc::new(CircuitBreaker::new(
                "redis-metrics-acl",
                CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Tolerant),
            )))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(limited.get::<_, String>(&Keys::lock("m")).await.is_err());
    let snap = snapshotter.snapshot().into_vec();
    assert!(
        matches!(
            find(
                &snap,
                REDIS_ERRORS_TOTAL,
                &[("operation", "get"), ("kind", "permission")]
            ),
            Some(DebugValue::Counter(1))
        ),
        "{snap:?}"
    );
}
