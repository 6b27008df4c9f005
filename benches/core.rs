//! One criterion run, side by side with the peer crates: `cargo bench --bench core`.
use criterion::{criterion_group, criterion_main};

criterion_group!(benches);
criterion_main!(benches);
