//! Closed circuit breaker, success path: a direct call (baseline), ours in consecutive-failure
//! and count-window mode, `failsafe` and `recloser`; each on one thread and with two threads
//! sharing one instance (time per call as each thread sees it).
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::Criterion;
use failsafe::CircuitBreaker as _;
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, SlidingWindow};

#[inline(always)]
fn work() -> Result<u64, ()> {
    Ok(black_box(1))
}

/// Runs `call` `iters` times on this thread (the same loop as [`two_threads`], so the figures
/// compare directly).
fn one_thread<S>(shared: &S, iters: u64, call: impl Fn(&S)) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        call(black_box(shared));
    }
    start.elapsed()
}

/// Runs `call` `iters` times on each of two threads sharing `shared`; returns the slower
/// thread's time, so per-iteration time is the time per call each thread sees.
fn two_threads<S: Sync>(shared: &S, iters: u64, call: impl Fn(&S) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        call(black_box(shared));
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    })
}

/// Registers this area's benchmarks.
pub fn bench(c: &mut Criterion) {
    let ours = Arc::new(CircuitBreaker::new(
        "bench",
        CircuitBreakerConfig::default(),
    ));
    let window_config = CircuitBreakerConfig::builder()
        .failure_rate(50.0)
        .sliding_window(SlidingWindow::Count(100))
        .minimum_calls(10)
        .build()
        .unwrap_or_default();
    let ours_window = Arc::new(CircuitBreaker::new("bench-window", window_config));
    let failsafe = failsafe::Config::new().build();
    let recloser = Arc::new(recloser::Recloser::default());

    let mut g = c.benchmark_group("breaker");

    g.bench_function("direct/1t", |b| {
        b.iter_custom(|iters| {
            one_thread(&(), iters, |_| {
                let _ = black_box(work());
            })
        })
    });
    g.bench_function("ours_consecutive/1t", |b| {
        b.iter_custom(|iters| {
            one_thread(&*ours, iters, |br| {
                let _ = black_box(br.call_blocking(work));
            })
        })
    });
    g.bench_function("ours_window/1t", |b| {
        b.iter_custom(|iters| {
            one_thread(&*ours_window, iters, |br| {
                let _ = black_box(br.call_blocking(work));
            })
        })
    });
    g.bench_function("failsafe/1t", |b| {
        b.iter_custom(|iters| {
            one_thread(&failsafe, iters, |br| {
                let _ = black_box(br.call(work));
            })
        })
    });
    g.bench_function("recloser/1t", |b| {
        b.iter_custom(|iters| {
            one_thread(&*recloser, iters, |br| {
                let _ = black_box(br.call(work));
            })
        })
    });

    g.bench_function("direct/2t", |b| {
        b.iter_custom(|iters| {
            two_threads(&(), iters, |_| {
                let _ = black_box(work());
            })
        })
    });
    g.bench_function("ours_consecutive/2t", |b| {
        b.iter_custom(|iters| {
            two_threads(&*ours, iters, |br| {
                let _ = black_box(br.call_blocking(work));
            })
        })
    });
    g.bench_function("ours_window/2t", |b| {
        b.iter_custom(|iters| {
            two_threads(&*ours_window, iters, |br| {
                let _ = black_box(br.call_blocking(work));
            })
        })
    });
    g.bench_function("failsafe/2t", |b| {
        b.iter_custom(|iters| {
            two_threads(&failsafe, iters, |br| {
                let _ = black_box(br.call(work));
            })
        })
    });
    g.bench_function("recloser/2t", |b| {
        b.iter_custom(|iters| {
            two_threads(&*recloser, iters, |br| {
                let _ = black_box(br.call(work));
            })
        })
    });
    g.finish();
}
