//! Metric names, in one place, and the label conventions used with the [`metrics`] facade.
//!
//! Nothing is recorded unless the application installs a `metrics` recorder (for example
//! `metrics-exporter-prometheus`). Install it before creating breakers and limiters: hot paths
//! resolve their metric handles once, when the instrument is created, so that a call without a
//! recorder costs nothing.

/// Histogram, seconds, label `operation`: duration of one Redis command or script.
pub const REDIS_OPERATION_DURATION_SECONDS: &str = "redis_operation_duration_seconds";
/// Counter, labels `operation`, `kind`: Redis commands that failed.
pub const REDIS_ERRORS_TOTAL: &str = "redis_errors_total";
/// Gauge, 1 when the client's connection is up, 0 otherwise.
pub const REDIS_CONNECTED: &str = "redis_connected";
/// Gauge, label `name`: 0 closed, 1 half-open, 2 open (forced open reports 2, disabled 0).
pub const CIRCUIT_BREAKER_STATE: &str = "circuit_breaker_state";
/// Counter, labels `name`, `from`, `to`: state transitions.
pub const CIRCUIT_BREAKER_STATE_CHANGES_TOTAL: &str = "circuit_breaker_state_changes_total";
/// Counter, labels `name`, `outcome` (`success`, `failure`): calls the breaker let through.
pub const CIRCUIT_BREAKER_REQUESTS_TOTAL: &str = "circuit_breaker_requests_total";
/// Counter, label `name`: calls rejected because the breaker was open.
pub const CIRCUIT_BREAKER_REJECTIONS_TOTAL: &str = "circuit_breaker_rejections_total";
/// Counter, label `outcome` (`retry`, `success`, `exhausted`, `deadline`, `not_retryable`,
/// `cancelled`): retry decisions.
pub const RETRY_ATTEMPTS_TOTAL: &str = "retry_attempts_total";
/// Histogram, no unit: attempts a retried operation took, recorded once per operation.
pub const RETRY_ATTEMPTS_COUNT: &str = "retry_attempts_count";

/// The value of [`CIRCUIT_BREAKER_STATE`] for a closed breaker.
pub const STATE_CLOSED: f64 = 0.0;
/// The value of [`CIRCUIT_BREAKER_STATE`] for a half-open breaker.
pub const STATE_HALF_OPEN: f64 = 1.0;
/// The value of [`CIRCUIT_BREAKER_STATE`] for an open breaker.
pub const STATE_OPEN: f64 = 2.0;

/// Gauge, labels `queue`, `state` (`waiting`, `active`, `delayed`, `completed`, `failed`): jobs
/// per state, sampled by [`Queue::record_counts`](crate::jobs::Queue::record_counts) and the
/// queue's health check.
pub const JOB_QUEUE_JOBS: &str = "job_queue_jobs";
/// Counter, labels `queue`, `outcome` (`completed`, `retried`, `failed`): attempts that ended.
pub const JOB_QUEUE_PROCESSED_TOTAL: &str = "job_queue_processed_total";
/// Histogram, seconds, labels `queue`, `name`: how long one attempt's handler ran.
pub const JOB_QUEUE_PROCESSING_DURATION_SECONDS: &str = "job_queue_processing_duration_seconds";
/// Histogram, seconds, label `queue`: from when a job became ready (added + delay) to its first
/// start.
pub const JOB_QUEUE_WAIT_DURATION_SECONDS: &str = "job_queue_wait_duration_seconds";
/// Counter, label `queue`: jobs added to the in-memory fallback because Redis was unreachable.
pub const JOB_QUEUE_FALLBACK_TOTAL: &str = "job_queue_fallback_total";

/// Gauge, labels `pool`, `state` (`idle`, `active`, `total`): connections of a
/// [`MeasuredPool`](crate::database::MeasuredPool), updated on acquire, after each query and on
/// [`stats`](crate::database::MeasuredPool::stats).
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
/// Gauge, label `pool`: callers waiting in the measured pool's acquire right now.
pub const DB_POOL_WAITING: &str = "db_pool_waiting";
/// Histogram, seconds, label `pool`: how long an acquire through the measured pool took
/// (failed and timed-out ones included).
pub const DB_POOL_ACQUIRE_DURATION_SECONDS: &str = "db_pool_acquire_duration_seconds";
/// Histogram, seconds, label `pool`: how long one query run through the measured pool took,
/// from its connection being acquired to its last row (or to being dropped).
pub const DB_QUERY_DURATION_SECONDS: &str = "db_query_duration_seconds";
/// Counter, label `pool`: queries slower than the pool's slow-query threshold.
pub const DB_SLOW_QUERIES_TOTAL: &str = "db_slow_queries_total";
