//! One criterion run, side by side with the peer crates: `cargo bench --bench core`.
//! Each area's benchmarks live in `benches/core/<area>.rs`.
use criterion::{criterion_group, criterion_main};

#[path = "core/breaker.rs"]
mod breaker;
#[path = "core/rate_limit.rs"]
mod rate_limit;
#[path = "core/retry.rs"]
mod retry;

criterion_group!(benches, breaker::bench, retry::bench, rate_limit::bench);
criterion_main!(benches);
