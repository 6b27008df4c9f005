//! The Redis health check against a real, private `redis-server`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig};
use resilience::health::{HealthRegistry, HealthStatus, RedisCheck};
use resilience::redis::{RedisClient, RedisConfig};
use support::RedisServer;

#[tokio::test]
async fn redis_check_follows_the_server() {
    let mut server = RedisServer::start();
    let config = RedisConfig::builder()
        .port(server.port())
        .key_prefix("health")
        .response_timeout(Duration::from_millis(500))
        .circuit_breaker(Arc::new(CircuitBreaker::new(
            "redis-health-test",
            CircuitBreakerConfig::default(),
        )))
        .build()
        .unwrap();
    let client = RedisClient::connect(config).await.unwrap();
    let registry = HealthRegistry::new();
    registry.add(RedisCheck::new(client.clone()));
    registry.optional(RedisCheck::new(client).named("redis-replica"));

    let report = registry.check().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    let check = report.check("redis").unwrap();
    assert!(check.required);
    assert_eq!(check.message, None);

    server.stop();
    let report = registry.check().await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    let check = report.check("redis").unwrap();
    assert_eq!(check.status, HealthStatus::Unhealthy);
    assert!(check.message.is_some());
    assert_eq!(
        report.check("redis-replica").unwrap().status,
        HealthStatus::Unhealthy
    );
}
