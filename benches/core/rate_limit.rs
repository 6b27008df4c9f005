//! Rate limiting, side by side with `governor`: an admitted `check` on one shared instance,
//! single-threaded and with 2 threads; keyed `check` on a tracked key as extra information; and
//! keyed `check_key` with 100 % new keys, on a table with room and on a full one (a flood).
use std::cell::Cell;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use governor::{Quota, RateLimiter as Governor};
use resilience::rate_limit::{KeyedRateLimiter, RateLimiter};

/// So fast that every check is admitted: the benchmark measures the admit path.
const RATE: u32 = 1_000_000_000;

/// Runs `op` `iters` times on each of 2 threads at once; returns the wall time divided by 2,
/// i.e. the time per call when both cores share the instance.
fn two_threads(iters: u64, op: &(impl Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..iters {
                    op();
                }
            });
        }
    });
    start.elapsed() / 2
}

/// Registers this area's benchmarks.
pub fn bench(c: &mut Criterion) {
    let ours = RateLimiter::builder()
        .per_second(RATE)
        .burst(RATE)
        .build()
        .expect("valid quota");
    let rate = NonZeroU32::new(RATE).expect("non-zero");
    let theirs = Governor::direct(Quota::per_second(rate).allow_burst(rate));
    assert!(ours.check().is_ok() && theirs.check().is_ok());

    let mut group = c.benchmark_group("rate_limit/check");
    group.bench_function(BenchmarkId::new("resilience", "1 thread"), |b| {
        b.iter(|| black_box(ours.check()))
    });
    group.bench_function(BenchmarkId::new("governor", "1 thread"), |b| {
        b.iter(|| black_box(theirs.check()))
    });
    group.bench_function(BenchmarkId::new("resilience", "2 threads"), |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                let _ = black_box(ours.check());
            })
        })
    });
    group.bench_function(BenchmarkId::new("governor", "2 threads"), |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                let _ = black_box(theirs.check());
            })
        })
    });
    group.finish();

    let ours_keyed = KeyedRateLimiter::builder()
        .per_second(RATE)
        .burst(RATE)
        .build()
        .expect("valid quota");
    let theirs_keyed = Governor::keyed(Quota::per_second(rate).allow_burst(rate));
    let key = String::from("tenant-42");
    assert!(ours_keyed.check_key(&key).is_ok() && theirs_keyed.check_key(&key).is_ok());

    let mut group = c.benchmark_group("rate_limit/keyed_check");
    group.bench_function(BenchmarkId::new("resilience", "1 thread"), |b| {
        b.iter(|| black_box(ours_keyed.check_key(&key)))
    });
    group.bench_function(BenchmarkId::new("governor", "1 thread"), |b| {
        b.iter(|| black_box(theirs_keyed.check_key(&key)))
    });
    group.bench_function(BenchmarkId::new("resilience", "2 threads"), |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                let _ = black_box(ours_keyed.check_key(&key));
            })
        })
    });
    group.bench_function(BenchmarkId::new("governor", "2 threads"), |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                let _ = black_box(theirs_keyed.check_key(&key));
            })
        })
    });
    group.finish();

    keyed_new_keys(c);
}

/// `check_key` with a key never seen before on every call: on a table with room (the key is
/// inserted; keys go idle after 1 ms, so evictions keep the table below `max_keys`), and on a
/// table full of 100 000 active keys (the key is refused with `TooManyKeys`).
fn keyed_new_keys(c: &mut Criterion) {
    const MAX_KEYS: usize = 100_000;
    let roomy = KeyedRateLimiter::<u64>::builder()
        .per_second(1_000)
        .burst(1)
        .max_keys(MAX_KEYS)
        .build()
        .expect("valid quota");
    let full = KeyedRateLimiter::<u64>::builder()
        .per_hour(1)
        .max_keys(MAX_KEYS)
        .build()
        .expect("valid quota");
    for key in 0..MAX_KEYS as u64 {
        full.check_key(&key).expect("room");
    }
    let next = Cell::new(MAX_KEYS as u64);
    let fresh = || {
        let key = next.get();
        next.set(key + 1);
        key
    };
    assert!(roomy.check_key(&fresh()).is_ok() && full.check_key(&fresh()).is_err());

    let mut group = c.benchmark_group("rate_limit/keyed_new_key");
    group.bench_function(BenchmarkId::new("resilience", "not full"), |b| {
        b.iter(|| black_box(roomy.check_key(&fresh())))
    });
    group.bench_function(BenchmarkId::new("resilience", "full (refused)"), |b| {
        b.iter(|| black_box(full.check_key(&fresh())))
    });
    group.finish();
    assert_eq!(full.len(), MAX_KEYS);
    assert!(roomy.len() < MAX_KEYS);
}
