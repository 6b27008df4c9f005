//! Overhead of each of our tower layers over a bare `service_fn`, side by side with
//! tower-resilience 0.13's equivalents and tower's own `ConcurrencyLimit` and `Timeout`:
//! `cargo bench --bench layers`.
//!
//! Each iteration is one `poll_ready` + `call` + one poll of the response future (every service
//! here answers at once), on one thread, inside a tokio runtime context (timeouts need its timer).
//! Subtract `bare` from a figure to get the layer's overhead.

use std::error::Error;
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use resilience::bulkhead::{Bulkhead, BulkheadFull};
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitOpenError};
use resilience::integration::layers as ours;
use resilience::rate_limit::{RateLimited, RateLimiter};
use resilience::retry::{RetryPolicy, Retryable};
use resilience::timeout::TimeoutError;
use std::hint::black_box;
use tower::{Layer, Service, service_fn};

/// One error type every layer accepts (tower-resilience's retry wants `Clone`).
#[derive(Debug, Clone)]
struct BenchError;

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bench error")
    }
}

impl Error for BenchError {}

impl Retryable for BenchError {
    fn is_retryable(&self) -> bool {
        true
    }
}

macro_rules! from_rejection {
    ($($t:ty),*) => {$(impl From<$t> for BenchError { fn from(_: $t) -> Self { BenchError } })*};
}
from_rejection!(CircuitOpenError, RateLimited, BulkheadFull, TimeoutError);

fn bare()
-> impl Service<u64, Response = u64, Error = BenchError, Future: Send> + Clone + Send + 'static {
    service_fn(|x: u64| std::future::ready(Ok::<u64, BenchError>(x)))
}

/// `poll_ready`, `call`, one poll: `true` when the call answered `Ok` at once.
#[inline(always)]
fn drive<S: Service<u64>>(svc: &mut S, req: u64) -> bool {
    matches!(
        poll_fn(|cx| svc.poll_ready(cx)).now_or_never(),
        Some(Ok(()))
    ) && matches!(svc.call(req).now_or_never(), Some(Ok(_)))
}

fn bench_one<S: Service<u64>>(c: &mut Criterion, name: &str, mut svc: S) {
    assert!(drive(&mut svc, 1), "{name}: the call must complete at once");
    c.bench_function(name, |b| {
        b.iter(|| black_box(drive(&mut svc, black_box(7))));
    });
}

fn layers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let big: u32 = 1_000_000_000;

    bench_one(c, "layers/bare", bare());

    // Circuit breaker.
    let breaker = Arc::new(CircuitBreaker::new(
        "bench",
        CircuitBreakerConfig::default(),
    ));
    bench_one(
        c,
        "layers/breaker/ours",
        ours::CircuitBreakerLayer::new(breaker).layer(bare()),
    );
    let theirs = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .unwrap();
    bench_one(c, "layers/breaker/tower-resilience", theirs.layer(bare()));

    // Rate limit (never refusing here: the cost of admitting).
    let limiter = RateLimiter::builder()
        .per_second(big)
        .burst(big)
        .build()
        .unwrap();
    bench_one(
        c,
        "layers/rate_limit/ours",
        ours::RateLimitLayer::new(limiter).layer(bare()),
    );
    let theirs = tower_resilience::ratelimiter::RateLimiterLayer::builder()
        .limit_for_period(big as usize)
        .refresh_period(Duration::from_secs(1))
        .build()
        .unwrap();
    bench_one(
        c,
        "layers/rate_limit/tower-resilience",
        theirs.layer(bare()),
    );

    // Retry, first try succeeding.
    bench_one(
        c,
        "layers/retry/ours",
        ours::RetryLayer::new(RetryPolicy::default()).layer(bare()),
    );
    let theirs = tower_resilience::retry::RetryLayer::<u64, u64, BenchError>::builder()
        .max_attempts(3)
        .build();
    bench_one(c, "layers/retry/tower-resilience", theirs.layer(bare()));

    // Bulkhead / concurrency limit.
    let bulkhead = Bulkhead::builder().max_concurrent(100).build().unwrap();
    bench_one(
        c,
        "layers/bulkhead/ours",
        ours::BulkheadLayer::new(bulkhead).layer(bare()),
    );
    let theirs = tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(100)
        .build()
        .unwrap();
    bench_one(c, "layers/bulkhead/tower-resilience", theirs.layer(bare()));
    bench_one(
        c,
        "layers/bulkhead/tower-concurrency-limit",
        tower::limit::ConcurrencyLimitLayer::new(100).layer(bare()),
    );

    // Timeout.
    bench_one(
        c,
        "layers/timeout/ours",
        ours::TimeoutLayer::new(Duration::from_secs(1)).layer(bare()),
    );
    bench_one(
        c,
        "layers/timeout/tower",
        tower::timeout::TimeoutLayer::new(Duration::from_secs(1)).layer(bare()),
    );
}

criterion_group!(benches, layers);
criterion_main!(benches);
