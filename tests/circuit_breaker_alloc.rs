//! A closed breaker's success path allocates nothing: counted by a global allocator.

use std::time::Duration;

use futures_util::FutureExt;
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, SlidingWindow};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    counting_alloc::allocations_in(f).0
}

fn assert_success_path_allocates_nothing(breaker: &CircuitBreaker) {
    // Warm up: first use of thread-locals and the like.
    let _ = breaker.call_blocking(|| Ok::<_, std::io::Error>(0));
    let n = allocations_in(|| {
        for i in 0..1_000u64 {
            let r = breaker.call_blocking(|| Ok::<_, std::io::Error>(i));
            assert_eq!(r.ok(), Some(i));
        }
    });
    assert_eq!(n, 0, "call_blocking allocated");

    let n = allocations_in(|| {
        for i in 0..1_000u64 {
            let r = breaker
                .call(|| async move { Ok::<_, std::io::Error>(i) })
                .now_or_never()
                .expect("a ready future completes at once");
            assert_eq!(r.ok(), Some(i));
        }
    });
    assert_eq!(n, 0, "call allocated");
}

#[test]
fn closed_success_path_allocates_nothing() {
    let consecutive = CircuitBreaker::new("alloc", CircuitBreakerConfig::default());
    assert_success_path_allocates_nothing(&consecutive);

    let window = CircuitBreakerConfig::builder()
        .failure_rate(50.0)
        .sliding_window(SlidingWindow::Count(100))
        .build()
        .unwrap();
    assert_success_path_allocates_nothing(&CircuitBreaker::new("alloc-window", window));

    let timed = CircuitBreakerConfig::builder()
        .failure_rate(50.0)
        .sliding_window(SlidingWindow::Time(Duration::from_secs(10)))
        .slow_call_threshold(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_success_path_allocates_nothing(&CircuitBreaker::new("alloc-time", timed));

    // The counter works: a Vec allocates.
    assert_eq!(
        allocations_in(|| drop(std::hint::black_box(vec![1u8; 16]))),
        1
    );
}
