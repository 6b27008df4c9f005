//! The Prometheus recorder the service endpoints export: every histogram as a Prometheus
//! histogram (aggregatable across replicas, unlike summaries), with buckets per family.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::metrics as names;

/// Seconds, 0.5 ms to 30 s: one Redis command, one database query or acquire, and any other
/// histogram whose name ends in `_seconds`.
pub const LATENCY_SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Seconds, 5 ms to 1 h: a job's run and its wait in the queue (jobs run and wait longer than
/// calls).
pub const JOB_SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Attempts, 1 to 10: `retry_attempts_count` (policies rarely allow more).
pub const ATTEMPT_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];

/// A Prometheus builder configured as [`install_prometheus_recorder`] installs it: buckets for
/// each histogram family of this crate ([`ATTEMPT_BUCKETS`] for `retry_attempts_count`,
/// [`JOB_SECONDS_BUCKETS`] for the job queue durations, [`LATENCY_SECONDS_BUCKETS`] for the
/// rest and for any other histogram), so no histogram is exported as a summary. Add your own
/// families' buckets with `set_buckets_for_metric` before installing it.
///
/// ```
/// use resilience::integration::{Matcher, prometheus_builder};
///
/// let builder = prometheus_builder()?
///     .set_buckets_for_metric(Matcher::Full("payload_bytes".into()), &[1e3, 1e4, 1e5, 1e6])?;
/// let recorder = builder.build_recorder(); // or `.install_recorder()?`
/// # drop(recorder);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`install_prometheus_recorder`]: super::install_prometheus_recorder
pub fn prometheus_builder() -> Result<PrometheusBuilder, BuildError> {
    let full = |name: &str| Matcher::Full(name.to_owned());
    PrometheusBuilder::new()
        .set_buckets(LATENCY_SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_SECONDS_BUCKETS)?
        .set_buckets_for_metric(full(names::RETRY_ATTEMPTS_COUNT), ATTEMPT_BUCKETS)?
        .set_buckets_for_metric(
            full(names::JOB_QUEUE_PROCESSING_DURATION_SECONDS),
            JOB_SECONDS_BUCKETS,
        )?
        .set_buckets_for_metric(
            full(names::JOB_QUEUE_WAIT_DURATION_SECONDS),
            JOB_SECONDS_BUCKETS,
        )
}
