//! The tower layers over real runtime types (paused clock for time).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::integration::layers::{RetryLayer, TimeoutLayer};
use resilience::retry::{Backoff, RetryPolicy};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

fn fixed_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .backoff(Backoff::Fixed)
        .initial_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// A service that fails with `kind` for its first `failures` calls, then echoes the request.
fn flaky(
    failures: u32,
    kind: io::ErrorKind,
) -> (
    Arc<AtomicU32>,
    impl Service<u32, Response = u32, Error = io::Error, Future: Send> + Clone + Send + 'static,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = service_fn(move |req: u32| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                Err(io::Error::from(kind))
            } else {
                Ok(req * 2)
            }
        }
    });
    (calls, svc)
}

#[tokio::test(start_paused = true)]
async fn retry_layer_retries_transient_errors_with_backoff() {
    let (calls, svc) = flaky(2, io::ErrorKind::ConnectionReset);
    let svc = RetryLayer::new(fixed_policy(3)).layer(svc);
    let started = Instant::now();
    assert_eq!(svc.oneshot(21).await.unwrap(), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(started.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn retry_layer_first_try_success_calls_once() {
    let (calls, svc) = flaky(0, io::ErrorKind::ConnectionReset);
    let mut svc = RetryLayer::new(fixed_policy(3)).layer(svc);
    for i in 0..5 {
        assert_eq!(svc.ready().await.unwrap().call(i).await.unwrap(), i * 2);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn retry_layer_gives_up_with_the_last_error() {
    let (calls, svc) = flaky(10, io::ErrorKind::TimedOut);
    let svc = RetryLayer::new(fixed_policy(4)).layer(svc);
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn retry_layer_does_not_retry_permanent_errors() {
    let (calls, svc) = flaky(10, io::ErrorKind::PermissionDenied);
    let svc = RetryLayer::new(fixed_policy(4)).layer(svc);
    let started = Instant::now();
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn timeout_layer_cuts_slow_calls() {
    let svc = service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, io::Error>(ms)
    });
    let svc = TimeoutLayer::new(Duration::from_secs(1)).layer(svc);
    assert_eq!(svc.clone().oneshot(999).await.unwrap(), 999);
    let started = Instant::now();
    let err = svc.oneshot(5000).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn timeout_inside_retry_bounds_each_attempt() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    // The first attempt hangs; the second answers at once.
    let svc = service_fn(move |req: u32| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                std::future::pending::<()>().await;
            }
            Ok::<_, io::Error>(req)
        }
    });
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(fixed_policy(3)))
        .layer(TimeoutLayer::new(Duration::from_secs(2)))
        .service(svc);
    let started = Instant::now();
    assert_eq!(svc.oneshot(7).await.unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(started.elapsed(), Duration::from_millis(2100));
}

#[tokio::test(start_paused = true)]
async fn layers_work_with_box_error_services() {
    let svc = service_fn(|_: ()| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, tower::BoxError>(())
    });
    let svc = TimeoutLayer::new(Duration::from_secs(1)).layer(svc);
    let err = svc.oneshot(()).await.unwrap_err();
    assert!(err.is::<resilience::timeout::TimeoutError>(), "{err}");
}
