//! `#[circuit_breaker]` against the hand-written call it replaces, on the Closed-state hot path.
//!
//! - `attribute`: a `#[circuit_breaker("bench-attr")]` async fn (breaker resolved once, in a
//!   `static` of the generated body).
//! - `hand_resolved_once`: `breaker.call(..)` on an `Arc<CircuitBreaker>` fetched once up front
//!   — the target: the attribute should cost at most 5 % more.
//! - `hand_lookup_per_call`: `get_circuit_breaker(name).call(..)`, a registry lookup per call.
//!
//! `cargo bench --bench macros -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use resilience::{CallError, CircuitOpenError, circuit_breaker, get_circuit_breaker};

#[derive(Debug)]
struct Error;

impl From<CircuitOpenError> for Error {
    fn from(_: CircuitOpenError) -> Self {
        Self
    }
}

#[circuit_breaker("bench-attr")]
async fn attribute(x: u64) -> Result<u64, Error> {
    Ok(black_box(x) + 1)
}

async fn hand_written(breaker: &resilience::CircuitBreaker, x: u64) -> Result<u64, Error> {
    breaker
        .call(|| async move { Ok::<_, Error>(black_box(x) + 1) })
        .await
        .map_err(|e| match e {
            CallError::Open(open) => Error::from(open),
            CallError::Inner(inner) => inner,
        })
}

/// Polls a future that never waits (the breaker is Closed), without a runtime's overhead.
fn run<F: std::future::Future>(f: F) -> F::Output {
    futures_util::FutureExt::now_or_never(f).expect("the Closed path never waits")
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("circuit_breaker_attribute");
    group.bench_function("attribute", |b| b.iter(|| run(attribute(black_box(1)))));
    let breaker = get_circuit_breaker("bench-hand");
    group.bench_function("hand_resolved_once", |b| {
        b.iter(|| run(hand_written(&breaker, black_box(1))))
    });
    group.bench_function("hand_lookup_per_call", |b| {
        b.iter(|| {
            run(hand_written(
                &get_circuit_breaker("bench-lookup"),
                black_box(1),
            ))
        })
    });
    group.finish();
}

criterion_group!(macro_benches, benches);
criterion_main!(macro_benches);
