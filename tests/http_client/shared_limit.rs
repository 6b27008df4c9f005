//! A per-host quota shared in Redis: two middleware clients stand for two replicas, each with
//! its own Redis connection and its own `RedisRateLimiter` of the same name, in front of a
//! local axum upstream; and what a request meets when Redis goes away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest_middleware::{ClientWithMiddleware, Error};
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig};
use resilience::http_client::ResilienceMiddleware;
use resilience::rate_limit::{FailurePolicy, RateLimitError, RedisRateLimiter};
use resilience::redis::{RedisClient, RedisConfig};
use resilience::{CircuitState, RateLimited, Retryable};

use super::support::{RedisServer, poll_until};
use super::{Upstream, client, status};

/// One "replica": its own connection (and its own "redis" breaker, so a test that stops its
/// server cannot trip another test's), a short deadline so an outage shows at once.
async fn redis(server: &RedisServer) -> RedisClient {
    let breaker = Arc::new(CircuitBreaker::new(
        "http-client-redis",
        CircuitBreakerConfig::builder()
            .failure_threshold(1000)
            .build()
            .unwrap(),
    ));
    RedisClient::connect(
        RedisConfig::builder()
            .port(server.port())
            .key_prefix("t")
            .response_timeout(Duration::from_millis(500))
            .circuit_breaker(breaker)
            .build()
            .unwrap(),
    )
    .await
    .expect("connect to the test server")
}

/// A bucket of `capacity` tokens that refills one token an hour: nothing comes back mid-test.
async fn limiter(server: &RedisServer, capacity: u64, policy: FailurePolicy) -> RedisRateLimiter {
    limiter_refilling(server, "upstreams", capacity, 1.0 / 3600.0, policy).await
}

async fn limiter_refilling(
    server: &RedisServer,
    name: &str,
    capacity: u64,
    refill_per_sec: f64,
    policy: FailurePolicy,
) -> RedisRateLimiter {
    RedisRateLimiter::builder(redis(server).await, name)
        .capacity(capacity)
        .refill_per_sec(refill_per_sec)
        .failure_policy(policy)
        .build()
        .unwrap()
}

/// A replica's client: no retry (one request, one admission), no breaker unless asked.
fn replica(limiter: RedisRateLimiter) -> ClientWithMiddleware {
    client(
        ResilienceMiddleware::builder()
            .no_breaker()
            .no_retry()
            .rate_limit(limiter)
            .build(),
    )
}

fn rate_limited(result: &Result<reqwest::Response, Error>) -> Option<RateLimited> {
    match result {
        Err(Error::Middleware(e)) => e.downcast_ref::<RateLimited>().copied(),
        _ => None,
    }
}

#[tokio::test]
async fn two_replicas_share_one_quota_per_host() {
    let server = RedisServer::start();
    let up = Upstream::start(|_, _| Some(status(200))).await;
    let other = Upstream::start(|_, _| Some(status(200))).await;
    let a = replica(limiter(&server, 5, FailurePolicy::FailClosed).await);
    let b = replica(limiter(&server, 5, FailurePolicy::FailClosed).await);

    // Both replicas at once, 8 requests each, against a quota of 5 for the host.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = if i % 2 == 0 { a.clone() } else { b.clone() };
        let url = up.url("/quote?user=secret");
        tasks.push(tokio::spawn(async move { client.get(url).send().await }));
    }
    let (mut admitted, mut refused) = (0, 0);
    for task in tasks {
        let result = task.await.unwrap();
        if let Some(limited) = rate_limited(&result) {
            assert!(limited.retry_after > Duration::from_secs(60), "{limited:?}");
            refused += 1;
        } else {
            assert_eq!(result.unwrap().status(), 200);
            admitted += 1;
        }
    }
    assert_eq!(
        (admitted, refused),
        (5, 11),
        "the quota is the host's, not each replica's"
    );
    assert_eq!(up.hits(), 5, "refused requests never left");

    // Another origin has its own bucket, whichever replica asks.
    assert_eq!(b.get(other.url("/")).send().await.unwrap().status(), 200);
    assert_eq!(other.hits(), 1);
    // The buckets are keyed by origin only: no path, no query in Redis.
    let keys = server.cli(&["KEYS", "*"]);
    assert_eq!(keys.lines().count(), 2, "{keys}");
    assert!(keys.contains(&up.addr.port().to_string()), "{keys}");
    assert!(
        !keys.contains("quote") && !keys.contains("secret"),
        "{keys}"
    );
}

#[tokio::test]
async fn a_replica_waits_for_the_shared_token() {
    let server = RedisServer::start();
    let up = Upstream::start(|_, _| Some(status(200))).await;
    // One token, back every 50 ms; each replica may wait up to 2 s.
    let waiting = |limiter| {
        client(
            ResilienceMiddleware::builder()
                .no_breaker()
                .no_retry()
                .rate_limit(limiter)
                .rate_limit_wait(Duration::from_secs(2))
                .build(),
        )
    };
    let shared =
        async || limiter_refilling(&server, "fast", 1, 20.0, FailurePolicy::FailClosed).await;
    let a = waiting(shared().await);
    let b = waiting(shared().await);
    let start = Instant::now();
    for client in [&a, &b, &a, &b] {
        assert_eq!(client.get(up.url("/")).send().await.unwrap().status(), 200);
    }
    // The first token is there; the other three come 50 ms apart from the shared bucket.
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(up.hits(), 4);

    // A wait longer than allowed is refused at once (the next token is an hour away).
    let impatient = client(
        ResilienceMiddleware::builder()
            .no_breaker()
            .no_retry()
            .rate_limit(limiter(&server, 1, FailurePolicy::FailClosed).await)
            .rate_limit_wait(Duration::from_secs(1))
            .build(),
    );
    assert!(impatient.get(up.url("/")).send().await.is_ok());
    let started = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(5), impatient.get(up.url("/")).send())
        .await
        .expect("refused, not waiting for an hour");
    assert!(rate_limited(&refused).is_some(), "{refused:?}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(up.hits(), 5);
}

#[tokio::test]
async fn redis_down_fail_open_admits() {
    let mut server = RedisServer::start();
    let up = Upstream::start(|_, _| Some(status(200))).await;
    let client = replica(limiter(&server, 1, FailurePolicy::FailOpen).await);
    assert_eq!(client.get(up.url("/")).send().await.unwrap().status(), 200);
    let refused = client.get(up.url("/")).send().await;
    assert!(rate_limited(&refused).is_some(), "{refused:?}");

    server.stop();
    for _ in 0..3 {
        let response = client
            .get(up.url("/"))
            .send()
            .await
            .expect("fail open admits");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(up.hits(), 4);
}

#[tokio::test]
async fn redis_down_fail_closed_refuses_with_the_backend_error() {
    let mut server = RedisServer::start();
    let up = Upstream::start(|_, _| Some(status(200))).await;
    // A per-host breaker that one failure would open, and a wait that must not be spent.
    let middleware = ResilienceMiddleware::builder()
        .breaker_per_host(
            "http-client-fail-closed ",
            CircuitBreakerConfig::builder()
                .failure_threshold(1)
                .build()
                .unwrap(),
        )
        .no_retry()
        .rate_limit(limiter(&server, 100, FailurePolicy::FailClosed).await)
        .rate_limit_wait(Duration::from_secs(30))
        .build();
    let client = client(middleware.clone());
    assert_eq!(client.get(up.url("/")).send().await.unwrap().status(), 200);

    server.stop();
    for _ in 0..2 {
        let started = Instant::now();
        let err = client.get(up.url("/")).send().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a backend error fails at once, not after the wait: {:?}",
            started.elapsed()
        );
        let Error::Middleware(inner) = &err else {
            panic!("{err:?}")
        };
        let backend = inner
            .downcast_ref::<RateLimitError>()
            .expect("RateLimitError");
        assert!(matches!(backend, RateLimitError::Backend(_)), "{backend:?}");
        // Redis unreachable is transient: a retry around `send` asks the limiter again.
        assert!(err.is_retryable(), "{err}");
    }
    assert_eq!(
        up.hits(),
        1,
        "nothing was sent while the limiter could not decide"
    );
    let url = reqwest::Url::parse(&up.url("/")).unwrap();
    let breaker = middleware.breaker_for(&url).unwrap();
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "not the host's failure"
    );

    // Redis back: the client reconnects and requests are admitted again.
    server.start_again();
    let back = poll_until(Duration::from_secs(10), async || {
        client.get(up.url("/")).send().await.ok()
    })
    .await;
    assert_eq!(back.expect("admitted once Redis is back").status(), 200);
}
