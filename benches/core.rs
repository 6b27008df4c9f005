//! One criterion run, side by side with the peer crates: `cargo bench --bench core`.
//! Each area's benchmarks live in `benches/core/<area>.rs`.
//!
//! With `BENCH_METRICS_RECORDER=1` in the environment the whole run records into a Prometheus
//! recorder (installed before anything is built; a thread runs its upkeep every second, as the
//! exporter would): the same figures, with every metric live instead of a no-op.
use std::time::Duration;

use criterion::{Criterion, criterion_group};

#[path = "core/breaker.rs"]
mod breaker;
#[path = "core/bulkhead.rs"]
mod bulkhead;
#[path = "core/rate_limit.rs"]
mod rate_limit;
#[path = "core/retry.rs"]
mod retry;

criterion_group!(
    benches,
    breaker::bench,
    retry::bench,
    rate_limit::bench,
    bulkhead::bench
);

/// Installs the Prometheus recorder when `BENCH_METRICS_RECORDER` is set.
fn install_recorder() {
    if std::env::var_os("BENCH_METRICS_RECORDER").is_none() {
        return;
    }
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("no recorder installed yet");
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            handle.run_upkeep();
        }
    });
    eprintln!("metrics: recording into a Prometheus recorder");
}

fn main() {
    install_recorder();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
