//! Metric names, in one place, and the label conventions used with the [`metrics`] facade.
//!
//! Nothing is recorded unless the application installs a `metrics` recorder, for example
//! `resilience::integration::install_prometheus_recorder` (feature `axum`), which also gives
//! every histogram below Prometheus buckets. Install it before the first call through an
//! instrument: each label combination is registered with the recorder the first time it is
//! recorded (a scrape shows only what happened: no zero-valued series for outcomes never seen),
//! and the handle is kept, so a call costs one atomic load plus the recorder's increment — and
//! without a recorder, nothing beyond the load. Registered up front, because their first value
//! is real: a breaker's state gauge and `redis_connected`. The database pools' handles are still
//! resolved when the pool is built.
//!
//! The instruments' families (breaker, retry, rate limit, bulkhead, timeout) carry a `name`
//! label: the name given to the builder (`.name("checkout")`), or for an attribute the
//! function's path (`my_crate::payments::charge`); an instrument built without a name records
//! under `name="unnamed"`.
//!
//! | Family | Type | Labels |
//! |---|---|---|
//! | [`CIRCUIT_BREAKER_STATE`] | gauge | `name` |
//! | [`CIRCUIT_BREAKER_STATE_CHANGES_TOTAL`] | counter | `name`, `from`, `to` |
//! | [`CIRCUIT_BREAKER_REQUESTS_TOTAL`] | counter | `name`, `outcome` |
//! | [`CIRCUIT_BREAKER_REJECTIONS_TOTAL`] | counter | `name` |
//! | [`RETRY_ATTEMPTS_TOTAL`] | counter | `name`, `outcome` |
//! | [`RETRY_ATTEMPTS_COUNT`] | histogram (attempts) | `name` |
//! | [`RATE_LIMIT_DECISIONS_TOTAL`] | counter | `name`, `outcome` |
//! | [`BULKHEAD_CALLS_TOTAL`] | counter | `name`, `outcome` |
//! | [`BULKHEAD_IN_FLIGHT`] | gauge | `name` |
//! | [`TIMEOUT_CALLS_TOTAL`] | counter | `name`, `outcome` |
//! | [`REDIS_OPERATION_DURATION_SECONDS`] | histogram (s) | `operation` |
//! | [`REDIS_ERRORS_TOTAL`] | counter | `operation`, `kind` |
//! | [`REDIS_CONNECTED`] | gauge | — |
//! | [`JOB_QUEUE_JOBS`] | gauge | `queue`, `state` |
//! | [`JOB_QUEUE_PROCESSED_TOTAL`] | counter | `queue`, `outcome` |
//! | [`JOB_QUEUE_PROCESSING_DURATION_SECONDS`] | histogram (s) | `queue`, `name` |
//! | [`JOB_QUEUE_WAIT_DURATION_SECONDS`] | histogram (s) | `queue` |
//! | [`JOB_QUEUE_FALLBACK_TOTAL`] | counter | `queue` |
//! | [`DB_POOL_CONNECTIONS`] | gauge | `pool`, `state` |
//! | [`DB_POOL_WAITING`] | gauge | `pool` |
//! | [`DB_POOL_ACQUIRE_DURATION_SECONDS`] | histogram (s) | `pool` |
//! | [`DB_QUERY_DURATION_SECONDS`] | histogram (s) | `pool` |
//! | [`DB_SLOW_QUERIES_TOTAL`] | counter | `pool` |

pub(crate) mod lazy;

/// Histogram, seconds, label `operation`: duration of one Redis command or script.
pub const REDIS_OPERATION_DURATION_SECONDS: &str = "redis_operation_duration_seconds";
/// Counter, labels `operation`, `kind`: Redis commands that failed (each combination registered
/// on its first failure).
pub const REDIS_ERRORS_TOTAL: &str = "redis_errors_total";
/// Gauge, 1 when the client's connection is up, 0 otherwise.
pub const REDIS_CONNECTED: &str = "redis_connected";
/// Gauge, label `name`: 0 closed, 1 half-open, 2 open (forced open reports 2, disabled 0).
pub const CIRCUIT_BREAKER_STATE: &str = "circuit_breaker_state";
/// Counter, labels `name`, `from`, `to`: state transitions (each pair registered on its first
/// transition).
pub const CIRCUIT_BREAKER_STATE_CHANGES_TOTAL: &str = "circuit_breaker_state_changes_total";
/// Counter, labels `name`, `outcome` (`success`, `failure`): calls the breaker let through.
pub const CIRCUIT_BREAKER_REQUESTS_TOTAL: &str = "circuit_breaker_requests_total";
/// Counter, label `name`: calls rejected because the breaker was open.
pub const CIRCUIT_BREAKER_REJECTIONS_TOTAL: &str = "circuit_breaker_rejections_total";
/// Counter, labels `name` (the policy's name, the `#[retry]` function's path, or `unnamed`),
/// `outcome` (`retry`, `success`, `exhausted`, `deadline`, `not_retryable`, `cancelled`): retry
/// decisions.
pub const RETRY_ATTEMPTS_TOTAL: &str = "retry_attempts_total";
/// Histogram, no unit, label `name`: attempts a retried operation took, recorded once per
/// operation (buckets 1–10 with the router's recorder).
pub const RETRY_ATTEMPTS_COUNT: &str = "retry_attempts_count";

/// Counter, labels `name`, `outcome`: rate-limit decisions. `allowed` and `rejected` for every
/// limiter; the Redis limiter also counts its failure paths when Redis cannot answer:
/// `fail_open` (admitted by `FailurePolicy::FailOpen`), `error` (refused to decide,
/// `FailurePolicy::FailClosed`) and `local` (decided by the local fallback limiter, which
/// counts its own `allowed` / `rejected` under its own name).
pub const RATE_LIMIT_DECISIONS_TOTAL: &str = "rate_limit_decisions_total";
/// Counter, labels `name`, `outcome` (`admitted`: got a slot, at once or after queueing;
/// `rejected`: all slots and the queue full; `timed_out`: the queue timeout passed first).
pub const BULKHEAD_CALLS_TOTAL: &str = "bulkhead_calls_total";
/// Gauge, label `name`: calls holding a bulkhead slot right now.
pub const BULKHEAD_IN_FLIGHT: &str = "bulkhead_in_flight";
/// Counter, labels `name`, `outcome` (`completed`: finished in time, `timed_out`): calls run
/// under [`timeout`](crate::timeout::timeout) / `#[timeout]`.
pub const TIMEOUT_CALLS_TOTAL: &str = "timeout_calls_total";

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
