//! The middleware's in-memory per-host limiter costs one allocation per request (the origin
//! key), whatever `KeyedRateLimit` plumbing sits behind it: a counting allocator watches a
//! request through the middleware to a canned answer (no network, one thread).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::Extensions;
use futures_util::future::BoxFuture;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Next};
use resilience::http_client::ResilienceMiddleware;
use resilience::rate_limit::KeyedRateLimiter;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// The end of the chain: answers 200 without touching the network.
fn canned<'a>(
    _req: Request,
    _extensions: &'a mut Extensions,
    _next: Next<'a>,
) -> BoxFuture<'a, reqwest_middleware::Result<Response>> {
    Box::pin(async { Ok(Response::from(axum::http::Response::new(""))) })
}

/// Polls a future, counting the allocations its polls make on this thread.
struct Counted<F> {
    fut: Pin<Box<F>>,
    allocations: u64,
}

impl<F: Future<Output = reqwest_middleware::Result<Response>>> Future for Counted<F> {
    type Output = u64;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let this = &mut *self;
        let (n, poll) = counting_alloc::allocations_in(|| this.fut.as_mut().poll(cx));
        this.allocations += n;
        match poll {
            Poll::Ready(response) => {
                assert_eq!(response.expect("canned answer").status(), 200);
                Poll::Ready(this.allocations)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Allocations per request, building and sending it included (the same in every case).
fn allocations_per_request(middleware: ResilienceMiddleware) -> u64 {
    const REQUESTS: u64 = 200;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let client: ClientWithMiddleware = ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .with(canned)
        .build();
    runtime.block_on(async {
        let send = || client.get("http://127.0.0.1:9/path?query").send();
        // Warm up: the limiter's table gets its key, lazy statics settle.
        for _ in 0..10 {
            send().await.unwrap();
        }
        let mut total = 0;
        for _ in 0..REQUESTS {
            let (built, fut) = counting_alloc::allocations_in(send);
            // Boxing the future for counting is one allocation of the harness, not counted.
            let counted = Counted {
                fut: Box::pin(fut),
                allocations: 0,
            };
            total += built + counted.await;
        }
        total / REQUESTS
    })
}

#[test]
fn the_in_memory_limiter_adds_one_allocation_per_request() {
    let bare = allocations_per_request(
        ResilienceMiddleware::builder()
            .no_breaker()
            .no_retry()
            .build(),
    );
    let limited = allocations_per_request(
        ResilienceMiddleware::builder()
            .no_breaker()
            .no_retry()
            .rate_limit(
                KeyedRateLimiter::builder()
                    .per_second(1_000_000_000)
                    .burst(1_000_000)
                    .build()
                    .unwrap(),
            )
            .build(),
    );
    assert!(bare > 0, "the counter sees the request's own allocations");
    assert_eq!(limited, bare + 1, "the origin key, and nothing else");
}
