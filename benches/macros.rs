//! `#[circuit_breaker]` against the hand-written call it replaces, on the Closed-state hot path;
//! `#[retry]` against `RetryPolicy::run` on a shared policy, on a first-try success.
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
use resilience::retry::{RetryPolicy, Retryable};
use resilience::{CallError, CircuitOpenError, circuit_breaker, get_circuit_breaker, retry};

#[derive(Debug)]
struct Error;

impl From<CircuitOpenError> for Error {
    fn from(_: CircuitOpenError) -> Self {
        Self
    }
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        true
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

#[retry]
async fn retried(x: u64) -> Result<u64, Error> {
    Ok(black_box(x) + 1)
}

async fn retried_by_hand(policy: &RetryPolicy, x: u64) -> Result<u64, Error> {
    policy
        .run(|| async move { Ok::<_, Error>(black_box(x) + 1) })
        .await
}

/// Polls a future that never waits (the breaker is Closed), without a runtime's overhead.
fn run<F: std::future::Future>(f: F) -> F::Output {
    futures_util::FutureExt::now_or_never(f).expect("neither path waits here")
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

    let mut group = c.benchmark_group("retry_attribute");
    group.bench_function("attribute", |b| b.iter(|| run(retried(black_box(1)))));
    let policy = RetryPolicy::default();
    group.bench_function("hand_policy_run", |b| {
        b.iter(|| run(retried_by_hand(&policy, black_box(1))))
    });
    group.finish();
}

criterion_group!(macro_benches, benches);
criterion_main!(macro_benches);
