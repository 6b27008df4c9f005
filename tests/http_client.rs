//! The reqwest integration against a real local HTTP server (axum on 127.0.0.1:0) that fails on
//! demand: retries counted server-side, Retry-After hints, transport errors, per-host breakers
//! and limiters, a per-host quota shared in Redis by two replicas, bodies that cannot be cloned.
//!
//! Real sockets do not mix with tokio's paused clock, so policies use tiny delays and the tests
//! assert counts and the delays the policy reports (`on_retry`), not elapsed times — except
//! where a lower bound is the point (a limiter that waits).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Error};
use resilience::Retryable;
use resilience::TimeoutError;
use resilience::http_client::{ResilienceMiddleware, RetryableStatuses, status_of};
use resilience::retry::{Backoff, RetryEvent, RetryPolicy};

#[path = "http_client/per_host.rs"]
mod per_host;
#[path = "http_client/shared_limit.rs"]
mod shared_limit;
mod support;

/// What the server does for hit `n` (1-based) with the request body: `Some(response)`, or
/// `None` to stall forever.
type Behaviour = dyn Fn(u32, Bytes) -> Option<Response> + Send + Sync;

/// A local upstream that counts its hits; stops when dropped.
struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicU32>,
    bodies: Arc<Mutex<Vec<Bytes>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(
        behaviour: impl Fn(u32, Bytes) -> Option<Response> + Send + Sync + 'static,
    ) -> Self {
        let behaviour: Arc<Behaviour> = Arc::new(behaviour);
        let hits = Arc::new(AtomicU32::new(0));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (h, b) = (Arc::clone(&hits), Arc::clone(&bodies));
        let app = Router::new().fallback(move |body: Bytes| {
            let n = h.fetch_add(1, Ordering::SeqCst) + 1;
            b.lock().unwrap().push(body.clone());
            let reply = behaviour(n, body);
            async move {
                match reply {
                    Some(response) => response,
                    None => std::future::pending().await,
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            hits,
            bodies,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status(code: u16) -> Response {
    StatusCode::from_u16(code).unwrap().into_response()
}

fn with_retry_after(code: u16, value: &str) -> Response {
    let mut response = status(code);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
    response
}

/// `max_attempts` attempts, 1 ms apart (no jitter), 10 s in total.
fn quick(max_attempts: u32) -> RetryPolicy {
    fixed(max_attempts, Duration::from_millis(1))
}

fn fixed(max_attempts: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(max_attempts)
        .backoff(Backoff::Fixed)
        .initial_delay(delay)
        .max_delay(delay)
        .jitter(0.0)
        .total_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A policy that records every wait it announces.
fn recording(base: RetryPolicy) -> (RetryPolicy, Arc<Mutex<Vec<Duration>>>) {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&delays);
    let policy = base
        .to_builder()
        .on_retry(move |ev: &RetryEvent<'_, Error>| seen.lock().unwrap().push(ev.delay))
        .build()
        .unwrap();
    (policy, delays)
}

fn client(middleware: ResilienceMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

/// A middleware without a breaker: retry behaviour only.
fn retrying(policy: RetryPolicy) -> ClientWithMiddleware {
    client(
        ResilienceMiddleware::builder()
            .no_breaker()
            .retry(policy)
            .build(),
    )
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn retries_503_until_success() {
    let up = Upstream::start(|n, _| Some(if n <= 2 { status(503) } else { status(200) })).await;
    let response = retrying(quick(5)).get(up.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn every_default_status_is_retried_and_the_last_response_returned() {
    for code in [408, 429, 500, 502, 503, 504] {
        let up = Upstream::start(move |_, _| Some(status(code))).await;
        let response = retrying(quick(3)).get(up.url("/")).send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            code,
            "the last response, not an error"
        );
        assert_eq!(up.hits(), 3, "{code}");
    }
}

#[tokio::test]
async fn permanent_statuses_are_sent_once() {
    for code in [400, 401, 404, 409, 422, 501] {
        let up = Upstream::start(move |_, _| Some(status(code))).await;
        let response = retrying(quick(3)).get(up.url("/")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), code);
        assert_eq!(up.hits(), 1, "{code}");
    }
}

#[tokio::test]
async fn the_retryable_set_is_configurable() {
    let up = Upstream::start(|n, _| Some(if n == 1 { status(409) } else { status(503) })).await;
    let statuses = RetryableStatuses::NONE.with(reqwest::StatusCode::CONFLICT);
    let client = client(
        ResilienceMiddleware::builder()
            .no_breaker()
            .retry(quick(3))
            .retryable_statuses(statuses)
            .build(),
    );
    let response = client.get(up.url("/")).send().await.unwrap();
    // 409 was retried; 503 is not in this set, so it ends the sequence.
    assert_eq!(response.status(), 503);
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn retry_after_seconds_replaces_the_backoff() {
    let up = Upstream::start(|n, _| {
        Some(if n == 1 {
            with_retry_after(429, "1")
        } else {
            status(200)
        })
    })
    .await;
    // A backoff of 10 s: the test ends in about a second only if the hint replaced it.
    let (policy, delays) = recording(fixed(3, Duration::from_secs(10)));
    let response = retrying(policy).get(up.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(up.hits(), 2);
    assert_eq!(*delays.lock().unwrap(), [Duration::from_secs(1)]);
}

#[tokio::test]
async fn retry_after_http_date_replaces_the_backoff() {
    let up = Upstream::start(|n, _| {
        Some(if n == 1 {
            let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(1));
            with_retry_after(503, &at)
        } else {
            status(200)
        })
    })
    .await;
    let (policy, delays) = recording(fixed(3, Duration::from_secs(10)));
    let response = retrying(policy).get(up.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(up.hits(), 2);
    let delays = delays.lock().unwrap();
    assert_eq!(delays.len(), 1);
    // The date has one-second resolution: the wait is what was left of that second.
    assert!(delays[0] <= Duration::from_secs(1), "{delays:?}");
}

#[tokio::test]
async fn garbage_retry_after_falls_back_to_the_backoff() {
    let up = Upstream::start(|n, _| {
        Some(if n == 1 {
            with_retry_after(503, "soon")
        } else {
            status(200)
        })
    })
    .await;
    let (policy, delays) = recording(fixed(3, Duration::from_millis(20)));
    let response = retrying(policy).get(up.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(*delays.lock().unwrap(), [Duration::from_millis(20)]);
}

#[tokio::test]
async fn a_hint_beyond_the_deadline_returns_the_response_at_once() {
    let up = Upstream::start(|_, _| Some(with_retry_after(429, "3600"))).await;
    let start = Instant::now();
    let response = retrying(quick(5)).get(up.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()[header::RETRY_AFTER], "3600");
    assert_eq!(up.hits(), 1);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connect_errors_are_retried_then_returned() {
    let addr = closed_port().await;
    let (policy, delays) = recording(quick(3));
    let err = retrying(policy)
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(delays.lock().unwrap().len(), 2, "three attempts");
    let Error::Reqwest(inner) = &err else {
        panic!("{err:?}")
    };
    assert!(inner.is_retryable());
}

#[tokio::test]
async fn reqwest_timeouts_are_retried() {
    let up = Upstream::start(|_, _| None).await;
    let err = retrying(quick(2))
        .get(up.url("/"))
        .timeout(Duration::from_millis(250))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn an_attempt_cut_by_the_policy_ends_as_timeout_error() {
    let up = Upstream::start(|_, _| None).await;
    let policy = quick(2)
        .to_builder()
        .attempt_timeout(Duration::from_millis(250))
        .build()
        .unwrap();
    let err = retrying(policy).get(up.url("/")).send().await.unwrap_err();
    let Error::Middleware(inner) = &err else {
        panic!("{err:?}")
    };
    let timeout = inner
        .downcast_ref::<TimeoutError>()
        .expect("a TimeoutError");
    assert_eq!(timeout.after, Duration::from_millis(250));
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn decode_builder_and_status_errors_are_classified() {
    let up = Upstream::start(|n, _| {
        Some(match n {
            1 => "this is not JSON".into_response(),
            2 => status(503),
            _ => status(404),
        })
    })
    .await;
    let plain = reqwest::Client::new();
    let decode = plain
        .get(up.url("/"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap_err();
    assert!(decode.is_decode());
    assert!(!decode.is_retryable());

    let unavailable = plain
        .get(up.url("/"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap_err();
    assert!(
        unavailable.is_retryable(),
        "503 follows the status classifier"
    );
    let not_found = plain
        .get(up.url("/"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap_err();
    assert!(!not_found.is_retryable());
    assert_eq!(
        status_of(&Error::Reqwest(not_found)),
        Some(reqwest::StatusCode::NOT_FOUND)
    );

    // A builder error fails before any attempt and is not retried.
    let err = retrying(quick(3))
        .get("http://[::1:80/")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_builder(), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn a_streamed_body_is_sent_once_a_buffered_one_each_attempt() {
    let up = Upstream::start(|_, _| Some(status(503))).await;
    let client = retrying(quick(3));
    let stream = reqwest::Body::wrap(http_body_util::Full::new(bytes::Bytes::from_static(
        b"streamed",
    )));
    let response = client.post(up.url("/")).body(stream).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(up.hits(), 1, "a body that cannot be cloned is sent once");

    let response = client
        .post(up.url("/"))
        .body("buffered")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(up.hits(), 4);
    let bodies = up.bodies.lock().unwrap();
    assert_eq!(bodies[0], "streamed");
    assert!(bodies[1..].iter().all(|b| b == "buffered"), "{bodies:?}");
}

#[tokio::test]
async fn a_streamed_body_still_gets_the_attempt_timeout() {
    let up = Upstream::start(|_, _| None).await;
    let policy = quick(3)
        .to_builder()
        .attempt_timeout(Duration::from_millis(250))
        .build()
        .unwrap();
    let stream = reqwest::Body::wrap(http_body_util::Full::new(bytes::Bytes::from_static(
        b"streamed",
    )));
    let err = retrying(policy)
        .post(up.url("/"))
        .body(stream)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Middleware(e) if e.is::<TimeoutError>()),
        "{err:?}"
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn retry_if_typed_for_the_middleware_error_sees_statuses() {
    let up = Upstream::start(|_, _| Some(status(503))).await;
    let policy = quick(4)
        .to_builder()
        .retry_if(|e: &Error| status_of(e) != Some(reqwest::StatusCode::SERVICE_UNAVAILABLE))
        .build()
        .unwrap();
    let response = retrying(policy).get(up.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(up.hits(), 1, "the predicate said no");
}
