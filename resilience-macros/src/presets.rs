//! The names the attributes accept. Each name also becomes a path
//! `__private::presets::<kind>::<name>` in the generated code, so a name listed here but missing
//! from the runtime fails to compile at the user's literal instead of drifting silently. (`-` in
//! a name becomes `_` in the path.)

/// Circuit-breaker presets (`#[circuit_breaker(preset = "...")]`).
pub(crate) const BREAKER: &[&str] = &["aggressive", "moderate", "tolerant", "critical"];

/// Retry presets (`#[retry(preset = "...")]`).
pub(crate) const RETRY: &[&str] = &["quick", "standard", "patient", "aggressive"];

/// Backoff strategies (`#[retry(backoff = "...")]`).
pub(crate) const BACKOFF: &[&str] = &["fixed", "linear", "exponential", "exponential-jitter"];

/// Shutdown priorities (`#[shutdown_hook(priority = "...")]`).
pub(crate) const PRIORITY: &[&str] = &["critical", "high", "normal", "low", "background"];

/// Job priorities (`#[job(priority = "...")]`), BullMQ's numbers 1 to 4; the path is
/// `__private::presets::job_priority::<name>`.
pub(crate) const JOB_PRIORITY: &[&str] = &["critical", "high", "normal", "low"];

/// Rate-limit backends (`#[rate_limit(backend = "...")]`). These select the generated code
/// rather than a runtime value, so they have no path of their own.
pub(crate) const BACKEND: &[&str] = &["memory", "redis"];

/// What a Redis-backed limiter does when Redis cannot answer
/// (`#[rate_limit(on_redis_error = "...")]`); the path is `__private::on_redis_error::<name>`.
pub(crate) const ON_REDIS_ERROR: &[&str] = &["open", "closed", "local"];

/// Retry service presets (`#[retry(service = "...")]`); the path is
/// `__private::presets::retry_service::<name>`.
pub(crate) const RETRY_SERVICE: &[&str] = &["database", "network", "kafka", "vault"];

/// Limiter presets (`#[rate_limit(preset = "...")]`); the path is
/// `__private::presets::limiter::<name>`.
pub(crate) const LIMITER: &[&str] = &["api", "database"];

/// A limiter preset's burst over its per-period count, which an overriding rate keeps. Used only
/// to reject an overflowing rate at the literal: the generated code multiplies by the runtime's
/// own `LimiterPreset::BURST_FACTOR`.
pub(crate) const LIMITER_BURST_FACTOR: u64 = 2;
