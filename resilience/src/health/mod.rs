//! Health checks: checks, registry, monitor.
//!
//! A [`HealthRegistry`] holds named [`HealthCheck`]s, each required or optional, and runs them
//! concurrently, each cut at its timeout. A check's status is the worse of its own verdict and its
//! latency's (defaults: below 100 ms healthy, 100–500 ms degraded, above 500 ms unhealthy). The
//! report is unhealthy when a required check is, degraded when any check is not healthy, healthy
//! otherwise. A [`HealthMonitor`] runs the registry periodically.
//!
//! A check's message is often an error's text, which may quote a connection URL: the registry
//! masks credentials in it ([`redact_secrets`]) before it reaches a report, a log or a body.

mod breaker;
mod builtin;
mod check;
mod monitor;
mod redact;
#[cfg(feature = "redis")]
mod redis;
mod registry;
#[cfg(feature = "database")]
pub(crate) use registry::grade_latency;

pub use breaker::BreakerCheck;
pub use builtin::ShutdownCheck;
pub use check::{CheckOutcome, FnCheck, HealthCheck, HealthStatus, IntoCheckOutcome, check_fn};
pub use monitor::{HealthMonitor, NoRuntime};
pub use redact::redact_secrets;
#[cfg(feature = "redis")]
pub use redis::RedisCheck;
pub use registry::{
    CheckReport, HealthConfig, HealthConfigBuilder, HealthRegistry, HealthReport, Requirement,
};
