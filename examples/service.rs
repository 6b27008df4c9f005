//! An axum service whose upstream calls go through a circuit breaker, with `/livez`, `/readyz`,
//! `/health`, `/metrics` and a graceful shutdown on SIGTERM / SIGINT.
//!
//! ```sh
//! cargo run --example service            # PORT=8080 to pick the port; 0 (default) = ephemeral
//! curl localhost:PORT/quote              # upstream call through the "upstream" breaker
//! curl 'localhost:PORT/quote?fail=true'  # five of these open the breaker: 503 + Retry-After
//! curl localhost:PORT/livez              # liveness probe: 200 while the process runs, drain included
//! curl localhost:PORT/readyz             # readiness probe: 200, then 503 as soon as shutdown begins
//! curl localhost:PORT/health             # JSON report; an open breaker degrades it; 503 in a drain
//! curl localhost:PORT/metrics            # Prometheus text
//! kill -TERM <pid>                       # readiness off, drain, hooks by priority, exit code
//! ```
//!
//! Probes, e.g. in a Kubernetes pod spec: `livenessProbe` on `/livez`, `readinessProbe` on
//! `/readyz`. Not `/health` for liveness: it turns 503 when shutdown starts (the required
//! `shutdown` check) and would get the process killed in the middle of its drain.
//!
//! Shutdown knobs (milliseconds, read from the environment; the integration tests use them):
//! `DRAIN_DELAY_MS` (default 1000), `TOTAL_TIMEOUT_MS` (30000), `HOOK_TIMEOUT_MS` (5000), and
//! `STUCK_HOOK_TIMEOUT_MS`: when set, adds a hook that never finishes, cut at that timeout.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use resilience::circuit_breaker::CircuitBreakerConfig;
use resilience::circuit_breaker::{CallError, CircuitBreaker, CircuitBreakerPreset};
use resilience::health::{BreakerCheck, HealthRegistry, ShutdownCheck};
use resilience::integration::{InFlightLayer, ServiceEndpoints, install_prometheus_recorder};
use resilience::shutdown::{
    self, Priority, ShutdownConfig, ShutdownCoordinator, server_close_hook,
};

#[derive(Clone)]
struct AppState {
    upstream: Arc<CircuitBreaker>,
}

/// The value of `key` in a query string like `a=1&b=2`.
fn query_param<'a>(query: &'a Option<String>, key: &str) -> Option<&'a str> {
    query
        .as_deref()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

fn env_ms(name: &str, default: u64) -> anyhow::Result<Duration> {
    match std::env::var(name) {
        Ok(v) => Ok(Duration::from_millis(v.parse().with_context(|| {
            format!("{name} must be milliseconds, got {v:?}")
        })?)),
        Err(_) => Ok(Duration::from_millis(default)),
    }
}

/// Stands in for a remote API: answers after a short delay, or fails on request.
async fn call_upstream(fail: bool) -> Result<String, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    if fail {
        Err(std::io::Error::other("upstream returned 502"))
    } else {
        Ok("42.17".to_owned())
    }
}

async fn quote(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let fail = query_param(&query, "fail") == Some("true");
    match state.upstream.call(|| call_upstream(fail)).await {
        Ok(price) => (StatusCode::OK, price).into_response(),
        Err(CallError::Open(open)) => {
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, open.to_string()).into_response();
            if let Some(after) = open.retry_after {
                let secs = after.as_secs().max(1).to_string();
                if let Ok(value) = HeaderValue::from_str(&secs) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            response
        }
        Err(CallError::Inner(e)) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// A slow request, to watch draining: `/work?ms=1500`.
async fn work(RawQuery(query): RawQuery) -> Response {
    let Some(Ok(ms)) = query_param(&query, "ms").map(str::parse::<u64>) else {
        return (StatusCode::BAD_REQUEST, "expected ?ms=<milliseconds>").into_response();
    };
    println!("work started");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    println!("work done");
    format!("worked {ms} ms").into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before any breaker exists: breakers resolve their metric handles at creation.
    let prometheus = install_prometheus_recorder()?;

    let coordinator = ShutdownCoordinator::global();
    shutdown::configure_shutdown(
        ShutdownConfig::builder()
            .drain_delay(env_ms("DRAIN_DELAY_MS", 1000)?)
            .total_timeout(env_ms("TOTAL_TIMEOUT_MS", 30_000)?)
            .hook_timeout(env_ms("HOOK_TIMEOUT_MS", 5000)?)
            .build()?,
    )?;

    // Before the port is announced: a SIGTERM from then on starts a graceful shutdown.
    let signals = coordinator.watch_signals()?;

    let upstream = Arc::new(CircuitBreaker::new(
        "upstream",
        CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Moderate),
    ));
    let registry = Arc::new(HealthRegistry::new());
    registry.required(ShutdownCheck::global());
    registry.optional(BreakerCheck::new(upstream.clone()));

    let app = Router::new()
        .route("/quote", get(quote))
        .route("/work", get(work))
        .with_state(AppState { upstream })
        // `/livez`, `/readyz`, `/health` (statuses and latencies only; check messages stay
        // off the public port) and `/metrics`.
        .merge(
            ServiceEndpoints::new(registry)
                .prometheus(prometheus)
                .router(),
        )
        // Every request counts as in flight, so shutdown waits for it before running hooks.
        .layer(InFlightLayer::new(coordinator.clone()));

    let port: u16 = std::env::var("PORT").map_or(Ok(0), |p| p.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;

    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(coordinator.server_close_signal())
            .into_future(),
    );
    let close_server = server_close_hook(server);
    shutdown::register_shutdown_hook("http-server", Priority::CRITICAL, move || {
        println!("hook http-server");
        close_server()
    })?;
    shutdown::register_shutdown_hook("upstream-connections", Priority::HIGH, || async {
        println!("hook upstream-connections");
    })?;
    if let Ok(ms) = std::env::var("STUCK_HOOK_TIMEOUT_MS") {
        let timeout = Duration::from_millis(ms.parse()?);
        coordinator.register_with_timeout(
            "stuck-exporter",
            Priority::NORMAL,
            timeout,
            || async {
                println!("hook stuck-exporter");
                std::future::pending::<()>().await
            },
        )?;
    }
    shutdown::register_shutdown_hook("flush-metrics", Priority::LOW, || async {
        println!("hook flush-metrics");
    })?;

    // Announced once every hook is registered, so a signal from then on runs them all.
    println!("listening on http://{addr}");
    let report = signals.await?;
    for hook in &report.hooks {
        println!(
            "report {} {} {}",
            hook.name,
            hook.priority.value(),
            hook.status
        );
    }
    println!("exit {}", report.exit_code());
    std::process::exit(report.exit_code());
}
