//! `ServiceEndpoints` in process: status codes and JSON for healthy / degraded / unhealthy
//! registries, readiness during shutdown, `/metrics` with a local Prometheus recorder.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use resilience::health::{HealthMonitor, HealthRegistry, HealthStatus, ShutdownCheck, check_fn};
use resilience::integration::{InFlightLayer, ServiceEndpoints};
use resilience::shutdown::{ShutdownConfig, ShutdownCoordinator};
use tower::ServiceExt;

async fn get(app: &Router, path: &str) -> (StatusCode, serde_json::Value) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, value)
}

fn app(registry: Arc<HealthRegistry>, coordinator: &ShutdownCoordinator) -> Router {
    ServiceEndpoints::new(registry)
        .shutdown(coordinator.clone())
        .router()
}

#[tokio::test(start_paused = true)]
async fn status_codes_follow_the_report() {
    let coordinator = ShutdownCoordinator::new();
    // (required result, optional result, /health code, /readyz code, status)
    let cases = [
        (true, true, StatusCode::OK, StatusCode::OK, "healthy"),
        (true, false, StatusCode::OK, StatusCode::OK, "degraded"),
        (
            false,
            true,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
        ),
    ];
    for (req, opt, health_code, ready_code, status) in cases {
        let registry = Arc::new(HealthRegistry::new());
        registry.required(check_fn("db", move || async move { req }));
        registry.optional(check_fn("cache", move || async move { opt }));
        let app = app(registry, &coordinator);
        let (code, body) = get(&app, "/health").await;
        assert_eq!(code, health_code, "{body}");
        assert_eq!(body["status"], status);
        assert_eq!(body["checks"][0]["name"], "db");
        assert_eq!(body["checks"][0]["required"], true);
        assert_eq!(body["checks"][1]["required"], false);
        assert_eq!(body["shutting_down"], false);
        let (code, body) = get(&app, "/readyz").await;
        assert_eq!(code, ready_code, "{body}");
        assert_eq!(body["ready"], ready_code == StatusCode::OK);
    }
}

#[tokio::test(start_paused = true)]
async fn readiness_is_503_once_shutdown_begins() {
    let coordinator = ShutdownCoordinator::with_config(
        ShutdownConfig::builder()
            .drain_delay(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    let registry = Arc::new(HealthRegistry::new());
    registry.required(ShutdownCheck::new(coordinator.clone()));
    let app = app(registry, &coordinator).layer(InFlightLayer::new(coordinator.clone()));
    assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);

    let shutdown = tokio::spawn({
        let c = coordinator.clone();
        async move { c.shutdown().await }
    });
    coordinator.started().await;
    let (code, body) = get(&app, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["reason"], "shutting_down");
    let (code, body) = get(&app, "/health").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["shutting_down"], true);
    assert_eq!(body["checks"][0]["status"], "unhealthy");
    // Liveness is not readiness: a drain must not get the process killed.
    let (code, body) = get(&app, "/livez").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["live"], true);
    assert!(shutdown.await.unwrap().drained);
}

#[tokio::test(start_paused = true)]
async fn in_flight_layer_holds_the_drain_until_the_response_completes() {
    let coordinator = ShutdownCoordinator::new();
    let slow: Router = Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "done"
            }),
        )
        .layer(InFlightLayer::new(coordinator.clone()));
    let request = tokio::spawn({
        let app = slow.clone();
        async move {
            app.oneshot(Request::get("/slow").body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        }
    });
    tokio::task::yield_now().await;
    assert_eq!(coordinator.in_flight_count(), 1);
    let started = tokio::time::Instant::now();
    let report = coordinator.shutdown().await;
    assert!(report.drained);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(request.await.unwrap(), StatusCode::OK);
    assert_eq!(coordinator.in_flight_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_monitor_answers_from_its_last_report() {
    let coordinator = ShutdownCoordinator::new();
    let registry = Arc::new(HealthRegistry::new());
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    registry.required(check_fn("counted", move || {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { HealthStatus::Healthy }
    }));
    let monitor = Arc::new(HealthMonitor::new(registry.clone(), Duration::from_secs(60)).unwrap());
    let app = ServiceEndpoints::new(registry)
        .shutdown(coordinator)
        .monitor(monitor.clone())
        .router::<()>();
    for _ in 0..3 {
        assert_eq!(get(&app, "/health").await.0, StatusCode::OK);
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(monitor.last().is_some());
}

#[tokio::test]
async fn metrics_endpoint_renders_prometheus_text() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!(resilience::metrics::CIRCUIT_BREAKER_REJECTIONS_TOTAL, "name" => "x")
            .increment(3);
    });
    let app: Router = ServiceEndpoints::new(Arc::new(HealthRegistry::new()))
        .shutdown(ShutdownCoordinator::new())
        .prometheus(handle)
        .router();
    let response = app
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains("circuit_breaker_rejections_total{name=\"x\"} 3"),
        "{text}"
    );

    let without: Router = ServiceEndpoints::new(Arc::new(HealthRegistry::new())).router();
    let response = without
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// A check failing with an error text that quotes a connection URL and a connection string.
fn leaky_registry() -> Arc<HealthRegistry> {
    let registry = Arc::new(HealthRegistry::new());
    registry.required(check_fn("db", || async {
        Err::<(), _>(std::io::Error::other(
            "connect postgres://admin:hunter2@db.internal:5432/app failed (host=db password=hunter2)",
        ))
    }));
    registry.optional(check_fn("cache", || async { true }));
    registry
}

/// Serves `app` on a loopback port; returns the port.
async fn serve(app: Router) -> u16 {
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

#[tokio::test]
async fn health_publishes_statuses_and_latencies_but_no_check_messages() {
    let port = serve(
        ServiceEndpoints::new(leaky_registry())
            .shutdown(ShutdownCoordinator::new())
            .router(),
    )
    .await;
    let (status, body) = http_get(port, "/health").await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains("hunter2"), "{body}");
    assert!(!body.contains("db.internal"), "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["status"], "unhealthy");
    for (check, (name, state)) in report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .zip([("db", "unhealthy"), ("cache", "healthy")])
    {
        assert_eq!(check["name"], name);
        assert_eq!(check["status"], state);
        assert!(check["latency_ms"].is_number(), "{check}");
        assert!(check.get("message").is_none(), "{check}");
    }
    // The details route is not part of the public router.
    assert_eq!(http_get(port, "/health/details").await.0, 404);
    assert_eq!(
        http_get(port, "/livez").await,
        (200, r#"{"live":true}"#.to_owned())
    );
}

#[tokio::test]
async fn opt_in_details_mask_credentials() {
    let endpoints = ServiceEndpoints::new(leaky_registry()).shutdown(ShutdownCoordinator::new());
    // Both ways to opt in: the flag on `/health`, and the separate route.
    let flagged = serve(endpoints.clone().details(true).router()).await;
    let separate = serve(endpoints.details_router()).await;
    for (port, path) in [(flagged, "/health"), (separate, "/health/details")] {
        let (status, body) = http_get(port, path).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(!body.contains("hunter2"), "{path}: {body}");
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            report["checks"][0]["message"],
            "connect postgres://admin:***@db.internal:5432/app failed (host=db password=***)",
            "{path}"
        );
        assert_eq!(report["checks"][1]["message"], serde_json::Value::Null);
    }
}

#[test]
fn details_json_masks_a_report_built_by_hand() {
    let report = resilience::health::HealthReport {
        status: HealthStatus::Unhealthy,
        checks: vec![resilience::health::CheckReport {
            name: "queue".into(),
            required: true,
            status: HealthStatus::Unhealthy,
            latency: Duration::from_millis(3),
            message: Some("amqp://guest:guest@mq.internal refused".into()),
            timed_out: false,
        }],
        duration: Duration::from_millis(3),
        timestamp: std::time::SystemTime::UNIX_EPOCH,
    };
    let public = resilience::integration::report_json(&report);
    assert!(public["checks"][0].get("message").is_none(), "{public}");
    let details = resilience::integration::report_details_json(&report);
    assert_eq!(
        details["checks"][0]["message"],
        "amqp://guest:***@mq.internal refused"
    );
}
