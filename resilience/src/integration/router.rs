//! An axum `Router` with `/livez`, `/readyz`, `/health` and `/metrics`.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use ::axum::Router;
use ::axum::extract::State;
use ::axum::http::{StatusCode, header};
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::get;
use metrics_exporter_prometheus::{BuildError, PrometheusHandle};
use serde_json::{Value, json};

use crate::health::{HealthMonitor, HealthRegistry, HealthReport, HealthStatus, redact_secrets};
use crate::shutdown::ShutdownCoordinator;

/// Installs a Prometheus recorder as the global `metrics` recorder and returns its handle, for
/// [`ServiceEndpoints::prometheus`]. Histograms are exported as Prometheus histograms with
/// buckets per family (see [`prometheus_builder`](super::prometheus_builder)), not summaries.
/// Call it before the first call through a breaker, limiter or retry policy (each keeps the
/// metric handle it resolved first). Fails when a global recorder is already installed.
///
/// ```
/// use std::sync::Arc;
/// use resilience::health::HealthRegistry;
/// use resilience::integration::{ServiceEndpoints, install_prometheus_recorder};
/// use resilience::rate_limit::RateLimiter;
/// use resilience::retry::RetryPolicy;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let prometheus = install_prometheus_recorder()?;
/// let api = RateLimiter::builder().per_second(100).name("api").build()?;
/// let payments = RetryPolicy::builder().name("payments").build()?;
/// api.check()?;
/// assert!(prometheus.render().contains(r#"rate_limit_decisions_total{name="api",outcome="allowed"} 1"#));
/// # let _ = payments;
/// let app: axum::Router = ServiceEndpoints::new(Arc::new(HealthRegistry::new()))
///     .prometheus(prometheus)
///     .router();
/// # let _ = app;
/// # Ok(()) }
/// ```
pub fn install_prometheus_recorder() -> Result<PrometheusHandle, BuildError> {
    super::prometheus_builder()?.install_recorder()
}

/// The operational endpoints of a service:
///
/// - `GET /livez`: 200 `{"live":true}` while the process serves requests, draining included:
///   the liveness probe (a probe on `/health` or `/readyz` would kill the process mid-drain).
/// - `GET /readyz`: 200 `{"ready":true}` while accepting requests and not unhealthy; 503 once
///   shutdown has begun or when unhealthy: the readiness probe.
/// - `GET /health`: the JSON health report; 200 unless unhealthy (503). It carries the overall
///   status and each check's name, status and latency, but no check messages (they are often
///   error texts naming internal hosts): turn them on with [`details`](Self::details), or mount
///   [`details_router`](Self::details_router) behind authentication. Credentials in messages
///   are masked either way.
/// - `GET /metrics`: Prometheus text, when a [`PrometheusHandle`] was given.
///
/// ```
/// use std::sync::Arc;
/// use resilience::health::HealthRegistry;
/// use resilience::integration::ServiceEndpoints;
///
/// let registry = Arc::new(HealthRegistry::new());
/// let app: axum::Router = axum::Router::new()
///     .merge(ServiceEndpoints::new(registry).router());
/// ```
#[derive(Clone)]
pub struct ServiceEndpoints {
    registry: Arc<HealthRegistry>,
    shutdown: ShutdownCoordinator,
    prometheus: Option<PrometheusHandle>,
    monitor: Option<Arc<HealthMonitor>>,
    details: bool,
}

impl std::fmt::Debug for ServiceEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceEndpoints")
            .field("registry", &self.registry)
            .field("metrics", &self.prometheus.is_some())
            .field("details", &self.details)
            .finish_non_exhaustive()
    }
}

impl ServiceEndpoints {
    /// Endpoints over `registry`, with readiness from the global shutdown coordinator.
    pub fn new(registry: Arc<HealthRegistry>) -> Self {
        Self {
            registry,
            shutdown: ShutdownCoordinator::global().clone(),
            prometheus: None,
            monitor: None,
            details: false,
        }
    }

    /// Takes readiness from `coordinator` instead of the global one.
    pub fn shutdown(mut self, coordinator: ShutdownCoordinator) -> Self {
        self.shutdown = coordinator;
        self
    }

    /// Serves `/metrics` from `handle`.
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// Answers `/health` and `/readyz` from the monitor's last report (running the checks only
    /// when it has none yet), so probes do not hit dependencies on every request.
    pub fn monitor(mut self, monitor: Arc<HealthMonitor>) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Whether `/health` includes each check's message (default `false`). Credentials in the
    /// messages are masked, but the rest (host names, error texts) is for operators: prefer
    /// [`details_router`](Self::details_router) behind authentication on a public port.
    pub fn details(mut self, on: bool) -> Self {
        self.details = on;
        self
    }

    /// The router, mergeable into an application's router of any state type: `/livez`,
    /// `/readyz`, `/health` and, with a Prometheus handle, `/metrics`.
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let mut router = Router::new()
            .route("/livez", get(livez))
            .route("/health", get(health))
            .route("/readyz", get(readyz));
        if self.prometheus.is_some() {
            router = router.route("/metrics", get(metrics));
        }
        router.with_state(self)
    }

    /// A router with only `GET /health/details`: the `/health` report with each check's message
    /// (credentials masked). Mount it where only operators reach it, e.g. behind an auth layer:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use resilience::health::HealthRegistry;
    /// use resilience::integration::ServiceEndpoints;
    ///
    /// let endpoints = ServiceEndpoints::new(Arc::new(HealthRegistry::new()));
    /// let admin: axum::Router = endpoints.clone().details_router(); // add your auth layer here
    /// let app: axum::Router = axum::Router::new().merge(endpoints.router()).merge(admin);
    /// ```
    pub fn details_router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/health/details", get(health_details))
            .with_state(self)
    }

    async fn report(&self) -> Arc<HealthReport> {
        match &self.monitor {
            Some(monitor) => match monitor.last() {
                Some(report) => report,
                None => monitor.check_now().await,
            },
            None => Arc::new(self.registry.check().await),
        }
    }
}

/// The public JSON form of a report, as `/health` serves it by default: the overall status and
/// each check's name, status, latency and flags, without messages (the core types stay
/// serde-free).
pub fn report_json(report: &HealthReport) -> Value {
    report_value(report, false)
}

/// [`report_json`] plus each check's `message`, with credentials masked
/// ([`redact_secrets`]) even when the report was built by hand. For operators only.
pub fn report_details_json(report: &HealthReport) -> Value {
    report_value(report, true)
}

fn report_value(report: &HealthReport, details: bool) -> Value {
    let checks: Vec<Value> = report
        .checks
        .iter()
        .map(|c| {
            let mut check = json!({
                "name": c.name,
                "required": c.required,
                "status": c.status.as_str(),
                "latency_ms": c.latency.as_secs_f64() * 1000.0,
                "timed_out": c.timed_out,
            });
            if details {
                check["message"] = json!(c.message.as_deref().map(redact_secrets));
            }
            check
        })
        .collect();
    let timestamp = report
        .timestamp
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    json!({
        "status": report.status.as_str(),
        "duration_ms": report.duration.as_secs_f64() * 1000.0,
        "timestamp": timestamp,
        "checks": checks,
    })
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn livez() -> Response {
    // Nothing to check: answering at all is the proof of life, draining or not.
    json_response(StatusCode::OK, json!({"live": true}))
}

async fn health(State(endpoints): State<ServiceEndpoints>) -> Response {
    let details = endpoints.details;
    health_response(endpoints, details).await
}

async fn health_details(State(endpoints): State<ServiceEndpoints>) -> Response {
    health_response(endpoints, true).await
}

async fn health_response(endpoints: ServiceEndpoints, details: bool) -> Response {
    let report = endpoints.report().await;
    let mut body = report_value(&report, details);
    body["shutting_down"] = json!(endpoints.shutdown.is_shutting_down());
    let status = if report.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    json_response(status, body)
}

async fn readyz(State(endpoints): State<ServiceEndpoints>) -> Response {
    // The shutdown flag first: one atomic load, no checks run once draining.
    if !endpoints.shutdown.should_accept_requests() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": "shutting_down"}),
        );
    }
    let report = endpoints.report().await;
    if report.is_ready() {
        json_response(
            StatusCode::OK,
            json!({"ready": true, "status": report.status.as_str()}),
        )
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": "unhealthy"}),
        )
    }
}

async fn metrics(State(endpoints): State<ServiceEndpoints>) -> Response {
    match &endpoints.prometheus {
        Some(handle) => {
            handle.run_upkeep();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                handle.render(),
            )
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
