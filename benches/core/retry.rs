//! Retry succeeding on the first try, side by side: a direct await (baseline), ours (default
//! policy, a preset, a shared policy), `backon` and `tokio-retry` (`Retry::start`, formerly
//! `spawn`). Two operations: one ready on its first poll, and one that returns `Pending` once
//! (waking itself) before its `Ok` — where ours starts the total deadline and arms its timer.
//! Every contender is awaited in the same way: criterion's `to_async` on a current-thread tokio
//! runtime (single thread), or a loop inside `block_on` on one current-thread runtime per thread
//! (2 threads, sharing one policy / backoff instance, `iter_custom` reporting the slower
//! thread's time per call).
use std::future::Future;
use std::hint::black_box;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable as _};
use criterion::Criterion;
use resilience::retry::{RetryPolicy, RetryPreset, retry};
use tokio_retry::Retry;
use tokio_retry::strategy::{ExponentialBackoff, jitter};

/// The operation: an immediately ready `Ok`, so the figures are the wrappers' own cost.
async fn op() -> Result<u64, io::Error> {
    Ok(black_box(1))
}

/// An operation that returns `Pending` once, waking itself, then `Ok`: the shape of a call that
/// does I/O, without the I/O.
struct PendingOnce {
    polled: bool,
}

impl Future for PendingOnce {
    type Output = Result<u64, io::Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polled {
            Poll::Ready(Ok(black_box(1)))
        } else {
            self.polled = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn pending_once() -> PendingOnce {
    PendingOnce { polled: false }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Shared between the contenders of the 2-thread group.
struct Shared {
    policy: RetryPolicy,
    backon: ExponentialBuilder,
    tokio_retry: ExponentialBackoff,
}

/// Runs `call` `iters` times on each of two threads, each with its own current-thread
/// runtime; returns the slower thread's elapsed time.
fn two_threads<F, Fut>(shared: &'static Shared, iters: u64, call: F) -> Duration
where
    F: Fn(&'static Shared) -> Fut + Send + Copy + 'static,
    Fut: Future<Output = Result<u64, ()>>,
{
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let rt = runtime();
                barrier.wait();
                let start = Instant::now();
                rt.block_on(async {
                    for _ in 0..iters {
                        let _ = black_box(call(shared).await);
                    }
                });
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

/// Registers this area's benchmarks.
pub fn bench(c: &mut Criterion) {
    let rt = runtime();
    let shared_policy = RetryPolicy::default();
    let backon_builder = ExponentialBuilder::default();

    let mut g = c.benchmark_group("retry_first_try");
    g.bench_function("direct_await", |b| b.to_async(&rt).iter(op));
    g.bench_function("resilience_default", |b| {
        b.to_async(&rt)
            .iter(|| async { retry(op, RetryPolicy::default()).await.map_err(|_| ()) })
    });
    g.bench_function("resilience_preset", |b| {
        b.to_async(&rt)
            .iter(|| async { retry(op, RetryPreset::Quick).await.map_err(|_| ()) })
    });
    g.bench_function("resilience_shared", |b| {
        b.to_async(&rt)
            .iter(|| async { shared_policy.retry(op).await.map_err(|_| ()) })
    });
    g.bench_function("resilience_run", |b| {
        b.to_async(&rt)
            .iter(|| async { shared_policy.run(op).await.map_err(|_| ()) })
    });
    g.bench_function("resilience_run_with_timeouts", |b| {
        b.to_async(&rt)
            .iter(|| async { shared_policy.run_with_timeouts(op).await.map_err(|_| ()) })
    });
    g.bench_function("backon", |b| {
        b.to_async(&rt)
            .iter(|| async { op.retry(backon_builder).await.map_err(|_| ()) })
    });
    g.bench_function("tokio_retry", |b| {
        b.to_async(&rt).iter(|| async {
            Retry::start(ExponentialBackoff::from_millis(10).map(jitter).take(3), op)
                .await
                .map_err(|_| ())
        })
    });
    g.bench_function("direct_await_pending_once", |b| {
        b.to_async(&rt).iter(pending_once)
    });
    g.bench_function("resilience_shared_pending_once", |b| {
        b.to_async(&rt)
            .iter(|| async { shared_policy.retry(pending_once).await.map_err(|_| ()) })
    });
    g.bench_function("resilience_run_pending_once", |b| {
        b.to_async(&rt)
            .iter(|| async { shared_policy.run(pending_once).await.map_err(|_| ()) })
    });
    g.bench_function("backon_pending_once", |b| {
        b.to_async(&rt)
            .iter(|| async { pending_once.retry(backon_builder).await.map_err(|_| ()) })
    });
    g.bench_function("tokio_retry_pending_once", |b| {
        b.to_async(&rt).iter(|| async {
            Retry::start(
                ExponentialBackoff::from_millis(10).map(jitter).take(3),
                pending_once,
            )
            .await
            .map_err(|_| ())
        })
    });
    g.finish();

    // Leaked once per bench run so the threads can borrow it for 'static.
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        policy: RetryPolicy::default(),
        backon: ExponentialBuilder::default(),
        tokio_retry: ExponentialBackoff::from_millis(10),
    }));
    let mut g = c.benchmark_group("retry_first_try_2_threads");
    g.bench_function("direct_await", |b| {
        b.iter_custom(|iters| two_threads(shared, iters, |_| async { op().await.map_err(|_| ()) }))
    });
    g.bench_function("resilience_default", |b| {
        b.iter_custom(|iters| {
            two_threads(shared, iters, |_| async {
                retry(op, RetryPolicy::default()).await.map_err(|_| ())
            })
        })
    });
    g.bench_function("resilience_preset", |b| {
        b.iter_custom(|iters| {
            two_threads(shared, iters, |_| async {
                retry(op, RetryPreset::Quick).await.map_err(|_| ())
            })
        })
    });
    g.bench_function("resilience_shared", |b| {
        b.iter_custom(|iters| {
            two_threads(shared, iters, |s| async move {
                s.policy.retry(op).await.map_err(|_| ())
            })
        })
    });
    g.bench_function("backon", |b| {
        b.iter_custom(|iters| {
            two_threads(shared, iters, |s| async move {
                op.retry(s.backon).await.map_err(|_| ())
            })
        })
    });
    g.bench_function("tokio_retry", |b| {
        b.iter_custom(|iters| {
            two_threads(shared, iters, |s| async move {
                Retry::start(s.tokio_retry.clone().map(jitter).take(3), op)
                    .await
                    .map_err(|_| ())
            })
        })
    });
    g.finish();
}
