//! Benchmarks of this area, side by side with the peer crates.
use criterion::Criterion;

/// Registers this area's benchmarks.
pub fn bench(_c: &mut Criterion) {}
