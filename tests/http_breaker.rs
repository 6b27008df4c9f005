//! The HTTP circuit-breaker layer in an axum `Router`, served on a real socket: an open circuit
//! is answered with 503 + `Retry-After`, 5xx responses count as failures, and the circuit
//! recovers through half-open. Time is tokio's paused clock (the breaker reads it); the client
//! keeps no idle connections, so no timer makes the paused clock jump on its own.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use axum::routing::get;
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitState};
use resilience::integration::http::HttpCircuitBreakerLayer;

struct Upstream {
    status: AtomicU16,
    calls: AtomicUsize,
}

fn breaker() -> Arc<CircuitBreaker> {
    let config = CircuitBreakerConfig::builder()
        .failure_threshold(2)
        .reset_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Arc::new(CircuitBreaker::new("upstream", config))
}

/// A route answering with whatever status the test sets, counting its calls.
fn app(upstream: Arc<Upstream>) -> Router {
    Router::new().route(
        "/",
        get(move || {
            let upstream = upstream.clone();
            async move {
                upstream.calls.fetch_add(1, Ordering::SeqCst);
                StatusCode::from_u16(upstream.status.load(Ordering::SeqCst)).unwrap()
            }
        }),
    )
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .pool_idle_timeout(None)
        .build()
        .unwrap()
}

async fn get_status(client: &reqwest::Client, addr: SocketAddr) -> (u16, Option<String>, String) {
    let res = client.get(format!("http://{addr}/")).send().await.unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status().as_u16(), retry, res.text().await.unwrap())
}

fn upstream(status: u16) -> Arc<Upstream> {
    Arc::new(Upstream {
        status: AtomicU16::new(status),
        calls: AtomicUsize::new(0),
    })
}

#[tokio::test(start_paused = true)]
async fn server_errors_open_the_circuit_and_it_answers_503_with_retry_after_then_recovers() {
    let up = upstream(500);
    let breaker = breaker();
    let addr = serve(app(up.clone()).layer(HttpCircuitBreakerLayer::new(breaker.clone()))).await;
    let client = client();

    assert_eq!(get_status(&client, addr).await.0, 500);
    assert_eq!(get_status(&client, addr).await.0, 500);
    assert_eq!(breaker.state(), CircuitState::Open);

    let (status, retry, body) = get_status(&client, addr).await;
    assert_eq!(status, 503);
    assert_eq!(retry.as_deref(), Some("10"));
    assert_eq!(body, "Service Unavailable\n");
    assert_eq!(
        up.calls.load(Ordering::SeqCst),
        2,
        "an open circuit does not call the route"
    );

    // 7.5 s left: rounded up to 8.
    tokio::time::advance(Duration::from_millis(2_500)).await;
    assert_eq!(get_status(&client, addr).await.1.as_deref(), Some("8"));

    // After the reset timeout a trial goes through; the upstream is healthy again.
    tokio::time::advance(Duration::from_millis(7_500)).await;
    up.status.store(200, Ordering::SeqCst);
    assert_eq!(get_status(&client, addr).await.0, 200);
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(get_status(&client, addr).await.0, 200);
    assert_eq!(up.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_opens_the_circuit_again() {
    let up = upstream(503);
    let breaker = breaker();
    let addr = serve(app(up.clone()).layer(HttpCircuitBreakerLayer::new(breaker.clone()))).await;
    let client = client();
    get_status(&client, addr).await;
    get_status(&client, addr).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        get_status(&client, addr).await.0,
        503,
        "the trial reaches the upstream"
    );
    assert_eq!(up.calls.load(Ordering::SeqCst), 3);
    assert_eq!(breaker.state(), CircuitState::Open);
    let (status, retry, _) = get_status(&client, addr).await;
    assert_eq!((status, retry.as_deref()), (503, Some("10")));
    assert_eq!(up.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_not_failures_and_forced_open_has_no_retry_after() {
    let up = upstream(404);
    let breaker = breaker();
    let addr = serve(app(up.clone()).layer(HttpCircuitBreakerLayer::new(breaker.clone()))).await;
    let client = client();
    for _ in 0..5 {
        assert_eq!(get_status(&client, addr).await.0, 404);
    }
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "4xx is the client's fault"
    );

    breaker.force_open();
    let (status, retry, _) = get_status(&client, addr).await;
    assert_eq!(status, 503);
    assert_eq!(retry, None, "no known reopening time, no Retry-After");
}

#[tokio::test(start_paused = true)]
async fn the_classifier_is_configurable() {
    let up = upstream(500);
    let breaker = breaker();
    // Only 502 counts: a plain 500 is an application answer here.
    let layer = HttpCircuitBreakerLayer::new(breaker.clone()).classify(
        |r: &Result<Response<Body>, Infallible>| {
            r.as_ref()
                .is_ok_and(|res| res.status() == StatusCode::BAD_GATEWAY)
        },
    );
    let addr = serve(app(up.clone()).layer(layer)).await;
    let client = client();
    for _ in 0..3 {
        assert_eq!(get_status(&client, addr).await.0, 500);
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    up.status.store(502, Ordering::SeqCst);
    get_status(&client, addr).await;
    get_status(&client, addr).await;
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(get_status(&client, addr).await.0, 503);
}
