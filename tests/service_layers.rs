//! The tower layers over real runtime types (paused clock for time).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::bulkhead::{Bulkhead, BulkheadFull};
use resilience::integration::layers::{BulkheadLayer, RateLimitLayer, RetryLayer, TimeoutLayer};
use resilience::rate_limit::{RateLimited, RateLimiter, TokioClock};
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

#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error(transparent)]
    Limited(#[from] RateLimited),
    #[error(transparent)]
    Full(#[from] BulkheadFull),
}

#[tokio::test(start_paused = true)]
async fn rate_limit_state_is_shared_across_clones() {
    let limiter = RateLimiter::builder()
        .per_second(2)
        .burst(2)
        .clock(TokioClock::new())
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = RateLimitLayer::new(limiter).layer(service_fn(move |_: ()| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, AppError>(()) }
    }));
    let (a, b) = (svc.clone(), svc.clone());
    assert!(a.clone().oneshot(()).await.is_ok());
    assert!(b.clone().oneshot(()).await.is_ok());
    // The burst of two is spent by the two clones together.
    match svc.clone().oneshot(()).await {
        Err(AppError::Limited(limited)) => {
            assert_eq!(limited.retry_after, Duration::from_millis(500))
        }
        other => panic!("expected a rate-limit rejection, got {other:?}"),
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a refused call never reaches the service"
    );
    tokio::time::advance(Duration::from_millis(500)).await;
    assert!(a.oneshot(()).await.is_ok());
    assert!(matches!(b.oneshot(()).await, Err(AppError::Limited(_))));
}

#[tokio::test(start_paused = true)]
async fn bulkhead_caps_concurrency_and_refuses_without_a_queue() {
    let bulkhead = Bulkhead::builder().max_concurrent(2).build().unwrap();
    let svc = BulkheadLayer::new(bulkhead.clone()).layer(service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, AppError>(ms)
    }));
    let first = tokio::spawn(svc.clone().oneshot(1000));
    let second = tokio::spawn(svc.clone().oneshot(1000));
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.running(), 2);
    assert!(matches!(
        svc.clone().oneshot(1).await,
        Err(AppError::Full(BulkheadFull::QueueFull {
            max_concurrent: 2,
            ..
        }))
    ));
    assert_eq!(first.await.unwrap().unwrap(), 1000);
    assert_eq!(second.await.unwrap().unwrap(), 1000);
    assert_eq!(
        bulkhead.running(),
        0,
        "slots are released with the response"
    );
    assert_eq!(svc.oneshot(5).await.unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_queue_waits_for_a_slot_then_times_out() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queued(1)
        .queue_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let svc = BulkheadLayer::new(bulkhead.clone()).layer(service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, AppError>(ms)
    }));
    let started = Instant::now();
    let running = tokio::spawn(svc.clone().oneshot(1500));
    tokio::task::yield_now().await;
    // Queued behind the running call: gets the slot after 1.5 s, then runs 0.1 s.
    assert_eq!(svc.clone().oneshot(100).await.unwrap(), 100);
    assert_eq!(started.elapsed(), Duration::from_millis(1600));
    assert_eq!(running.await.unwrap().unwrap(), 1500);

    // Now a 5 s call holds the slot: a queued call gives up after the 2 s queue timeout.
    let long = tokio::spawn(svc.clone().oneshot(5000));
    tokio::task::yield_now().await;
    let waited = Instant::now();
    assert!(matches!(
        svc.oneshot(1).await,
        Err(AppError::Full(BulkheadFull::QueueTimeout { .. }))
    ));
    assert_eq!(waited.elapsed(), Duration::from_secs(2));
    long.abort();
}

#[tokio::test(start_paused = true)]
async fn dropping_a_queued_or_running_call_releases_its_place() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queued(1)
        .queue_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let svc = BulkheadLayer::new(bulkhead.clone()).layer(service_fn(|_: ()| async {
        std::future::pending::<()>().await;
        Ok::<_, AppError>(())
    }));
    let running = tokio::spawn(svc.clone().oneshot(()));
    let queued = tokio::spawn(svc.clone().oneshot(()));
    tokio::task::yield_now().await;
    assert_eq!((bulkhead.running(), bulkhead.queued()), (1, 1));
    queued.abort();
    running.abort();
    let _ = (queued.await, running.await);
    assert_eq!((bulkhead.running(), bulkhead.queued()), (0, 0));
}

mod breaker {
    use super::*;
    use resilience::circuit_breaker::{
        CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState,
    };
    use resilience::integration::layers::CircuitBreakerLayer;

    #[derive(Debug, thiserror::Error)]
    enum UpstreamError {
        #[error("upstream failed")]
        Failed,
        #[error(transparent)]
        Open(#[from] CircuitOpenError),
    }

    fn breaker(threshold: u32) -> Arc<CircuitBreaker> {
        let config = CircuitBreakerConfig::builder()
            .failure_threshold(threshold)
            .reset_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Arc::new(CircuitBreaker::new("layer-test", config))
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_and_rejects_without_calling() {
        let breaker = breaker(2);
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let svc = CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(move |ok: bool| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(UpstreamError::Failed)
                }
            }
        }));
        assert!(svc.clone().oneshot(true).await.is_ok());
        for _ in 0..2 {
            assert!(matches!(
                svc.clone().oneshot(false).await,
                Err(UpstreamError::Failed)
            ));
        }
        assert_eq!(breaker.state(), CircuitState::Open);
        match svc.clone().oneshot(true).await {
            Err(UpstreamError::Open(open)) => {
                assert_eq!(&*open.name, "layer-test");
                assert!(open.retry_after.is_some());
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "a rejected call never reaches the service"
        );
        // After the reset timeout a trial call goes through and closes it.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(svc.oneshot(true).await.is_ok());
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_classifier_counts_bad_responses_as_failures() {
        let breaker = breaker(2);
        // Responses are status codes; 5xx count as failures although they are `Ok`.
        let svc = CircuitBreakerLayer::new(breaker.clone())
            .classify(|r: &Result<u16, UpstreamError>| r.as_ref().map_or(true, |s| *s >= 500))
            .layer(service_fn(|status: u16| async move {
                Ok::<_, UpstreamError>(status)
            }));
        assert_eq!(svc.clone().oneshot(404).await.unwrap(), 404);
        assert_eq!(svc.clone().oneshot(503).await.unwrap(), 503);
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(svc.clone().oneshot(500).await.unwrap(), 500);
        assert_eq!(breaker.state(), CircuitState::Open);
        assert!(matches!(
            svc.oneshot(200).await,
            Err(UpstreamError::Open(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_call_records_nothing() {
        let breaker = breaker(1);
        let svc = CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(|_: ()| async {
            std::future::pending::<()>().await;
            Err::<(), _>(UpstreamError::Failed)
        }));
        let cut = tokio::time::timeout(Duration::from_secs(1), svc.oneshot(())).await;
        assert!(cut.is_err());
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.snapshot().failure_count, 0);
    }
}
