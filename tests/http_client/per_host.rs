//! Per-host breakers and limiters: one host failing or over its limit leaves the others alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest_middleware::{ClientWithMiddleware, Error};
use resilience::http_client::ResilienceMiddleware;
use resilience::rate_limit::KeyedRateLimiter;
use resilience::{
    CircuitBreakerConfig, CircuitOpenError, CircuitState, ConfigError, RateLimited, Retryable,
};

use super::{Upstream, client, closed_port, quick, status};

fn breaker_config(failures: u32) -> CircuitBreakerConfig {
    CircuitBreakerConfig::builder()
        .failure_threshold(failures)
        .reset_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_breaker_opens_per_host() {
    let failing = Upstream::start(|_, _| Some(status(503))).await;
    let healthy = Upstream::start(|_, _| Some(status(200))).await;
    let middleware = ResilienceMiddleware::builder()
        .breaker_per_host("test-per-host ", breaker_config(2))
        .retry(quick(2))
        .build();
    let client = client(middleware.clone());

    // Each retried sequence counts once: two sequences (four attempts) open the breaker.
    for _ in 0..2 {
        let response = client.get(failing.url("/a")).send().await.unwrap();
        assert_eq!(response.status(), 503);
    }
    assert_eq!(failing.hits(), 4);
    let failing_url = reqwest::Url::parse(&failing.url("/")).unwrap();
    let breaker = middleware
        .breaker_for(&failing_url)
        .expect("a per-host breaker");
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(
        breaker.name(),
        format!("test-per-host http://{}", failing.addr),
        "named by prefix + origin"
    );

    // Open: refused without a request, with an error callers can downcast.
    let err = client
        .get(failing.url("/b?key=secret"))
        .send()
        .await
        .unwrap_err();
    let Error::Middleware(inner) = &err else {
        panic!("{err:?}")
    };
    let open = inner
        .downcast_ref::<CircuitOpenError>()
        .expect("CircuitOpenError");
    assert!(open.retry_after.is_some());
    assert!(
        !open.name.contains("secret"),
        "the breaker name carries the origin only"
    );
    assert!(!err.is_retryable());
    assert_eq!(failing.hits(), 4);

    // Another host has its own breaker, still closed.
    for _ in 0..3 {
        let response = client.get(healthy.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let healthy_url = reqwest::Url::parse(&healthy.url("/")).unwrap();
    let other = middleware.breaker_for(&healthy_url).unwrap();
    assert_eq!(other.state(), CircuitState::Closed);
    assert_eq!(healthy.hits(), 3);
}

#[tokio::test]
async fn client_errors_do_not_open_the_breaker() {
    let up = Upstream::start(|n, _| Some(if n % 2 == 1 { status(404) } else { status(429) })).await;
    let middleware = ResilienceMiddleware::builder()
        .breaker_per_host("test-4xx ", breaker_config(2))
        .no_retry()
        .build();
    let client = client(middleware.clone());
    for _ in 0..6 {
        client.get(up.url("/")).send().await.unwrap();
    }
    assert_eq!(up.hits(), 6);
    let url = reqwest::Url::parse(&up.url("/")).unwrap();
    assert_eq!(
        middleware.breaker_for(&url).unwrap().state(),
        CircuitState::Closed
    );
}

#[tokio::test]
async fn transport_errors_open_the_breaker() {
    let addr = closed_port().await;
    let middleware = ResilienceMiddleware::builder()
        .breaker_per_host("test-transport ", breaker_config(2))
        .retry(quick(2))
        .build();
    let client = client(middleware.clone());
    for _ in 0..2 {
        let err = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
    }
    let err = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    let Error::Middleware(inner) = &err else {
        panic!("{err:?}")
    };
    assert!(inner.is::<CircuitOpenError>());
}

#[tokio::test]
async fn a_fixed_breaker_is_shared_by_every_host() {
    let a = Upstream::start(|_, _| Some(status(500))).await;
    let b = Upstream::start(|_, _| Some(status(200))).await;
    let breaker = Arc::new(resilience::CircuitBreaker::new(
        "test-fixed",
        breaker_config(1),
    ));
    let client = client(
        ResilienceMiddleware::builder()
            .breaker(Arc::clone(&breaker))
            .no_retry()
            .build(),
    );
    assert_eq!(client.get(a.url("/")).send().await.unwrap().status(), 500);
    let err = client.get(b.url("/")).send().await.unwrap_err();
    assert!(matches!(&err, Error::Middleware(e) if e.is::<CircuitOpenError>()));
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn the_limiter_works_per_host_and_refuses_with_rate_limited() -> Result<(), ConfigError> {
    let a = Upstream::start(|_, _| Some(status(200))).await;
    let b = Upstream::start(|_, _| Some(status(200))).await;
    let client = client(
        ResilienceMiddleware::builder()
            .no_breaker()
            .no_retry()
            .rate_limit(KeyedRateLimiter::builder().per_minute(1).burst(2).build()?)
            .build(),
    );
    for _ in 0..2 {
        assert_eq!(client.get(a.url("/")).send().await.unwrap().status(), 200);
    }
    let err = client.get(a.url("/")).send().await.unwrap_err();
    let Error::Middleware(inner) = &err else {
        panic!("{err:?}")
    };
    let limited = inner.downcast_ref::<RateLimited>().expect("RateLimited");
    assert!(limited.retry_after > Duration::from_secs(1));
    // The refusal is retryable, with the limiter's hint, for a retry around the client.
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(limited.retry_after));
    assert_eq!(a.hits(), 2, "the refused request never left");
    // Host b has its own bucket.
    assert_eq!(client.get(b.url("/")).send().await.unwrap().status(), 200);
    assert_eq!(b.hits(), 1);
    Ok(())
}

#[tokio::test]
async fn the_limiter_can_wait_for_a_token() -> Result<(), ConfigError> {
    let up = Upstream::start(|_, _| Some(status(200))).await;
    let client = client(
        ResilienceMiddleware::builder()
            .no_breaker()
            .no_retry()
            .rate_limit(
                KeyedRateLimiter::builder()
                    .per_second(20)
                    .burst(1)
                    .build()?,
            )
            .rate_limit_wait(Duration::from_secs(2))
            .build(),
    );
    let start = Instant::now();
    for _ in 0..3 {
        assert_eq!(client.get(up.url("/")).send().await.unwrap().status(), 200);
    }
    // One token every 50 ms after the first: three requests cannot take less than 100 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(up.hits(), 3);

    // A wait longer than allowed is refused at once.
    let slow = client_with_wait(Duration::from_millis(10))?;
    assert!(slow.get(up.url("/")).send().await.is_ok());
    let err = slow.get(up.url("/")).send().await.unwrap_err();
    assert!(
        matches!(&err, Error::Middleware(e) if e.is::<RateLimited>()),
        "{err:?}"
    );
    Ok(())
}

fn client_with_wait(wait: Duration) -> Result<ClientWithMiddleware, ConfigError> {
    Ok(client(
        ResilienceMiddleware::builder()
            .no_breaker()
            .no_retry()
            .rate_limit(KeyedRateLimiter::builder().per_minute(1).burst(1).build()?)
            .rate_limit_wait(wait)
            .build(),
    ))
}
