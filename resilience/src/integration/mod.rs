//! Using the toolkit in tower / axum stacks without macros.
//!
//! - feature `tower`: `tower::Layer`s for the circuit breaker, retry, rate limit, bulkhead and
//!   timeout, and an in-flight layer that lets shutdown drain requests; in [`http`], a keyed
//!   HTTP rate limit with standard headers and a breaker that answers 503;
//! - feature `axum`: [`ServiceEndpoints`], a router with `/livez`, `/readyz`, `/health` and
//!   `/metrics`.

#[cfg(feature = "tower")]
pub mod http;
#[cfg(feature = "tower")]
pub mod layers;
#[cfg(feature = "axum")]
mod prometheus;
#[cfg(feature = "axum")]
mod router;

#[cfg(feature = "tower")]
pub use self::http::{
    ClientIp, HeaderKey, HttpCircuitBreakerLayer, HttpRateLimitLayer, MissingKey,
};
#[cfg(feature = "tower")]
pub use layers::{
    BulkheadLayer, CircuitBreakerLayer, InFlightLayer, RateLimitLayer, RetryLayer, TimeoutLayer,
};

#[cfg(feature = "axum")]
pub use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
#[cfg(feature = "axum")]
pub use prometheus::{
    ATTEMPT_BUCKETS, JOB_SECONDS_BUCKETS, LATENCY_SECONDS_BUCKETS, prometheus_builder,
};
#[cfg(feature = "axum")]
pub use router::{ServiceEndpoints, install_prometheus_recorder, report_details_json, report_json};
