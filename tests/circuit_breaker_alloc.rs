//! A closed breaker's success path allocates nothing: counted by a global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use futures_util::FutureExt;
use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, SlidingWindow};

struct Counting;

thread_local! {
    // Per thread, so the test harness's own threads do not disturb the count.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
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
