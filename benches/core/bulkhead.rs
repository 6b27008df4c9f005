//! Bulkhead and timeout, ours only (no peer with the same shape): a slot taken and released
//! with `try_acquire` on one thread, and `timeout` around a ready future on a current-thread
//! tokio runtime — the per-call cost the metrics of these two instruments add to.
use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use resilience::bulkhead::Bulkhead;
use resilience::timeout::timeout;

/// Registers this area's benchmarks.
pub fn bench(c: &mut Criterion) {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(8)
        .build()
        .expect("valid bulkhead");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut g = c.benchmark_group("instruments");
    g.bench_function("bulkhead_try_acquire", |b| {
        b.iter(|| black_box(bulkhead.try_acquire().is_ok()))
    });
    g.bench_function("timeout_ready", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(timeout(Duration::from_secs(1), async { black_box(1_u64) }).await)
        })
    });
    g.finish();
}
