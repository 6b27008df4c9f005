//! The limiters' hot paths allocate nothing: a counting global allocator watches them. Each
//! instrument is used once before it is watched: the first decision of each outcome resolves
//! its metric handle (once per instrument and outcome, recorder or not).

use resilience::bulkhead::Bulkhead;
use resilience::rate_limit::{KeyedRateLimiter, RateLimiter};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    counting_alloc::allocations_in(f).0
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the other tests: a counter that never counts would prove nothing.
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 64]))) >= 1);
}

#[test]
fn check_allocates_nothing() {
    let limiter = RateLimiter::builder()
        .per_second(1_000_000)
        .burst(1_000)
        .build()
        .expect("valid");
    // Both outcomes once (the loop may drain the burst and see a refusal).
    let _ = limiter.check_n(1_000);
    assert!(limiter.check_n(1_000).is_err());
    limiter.reset();
    let n = allocations_in(|| {
        for _ in 0..10_000 {
            let _ = std::hint::black_box(limiter.check());
            let _ = std::hint::black_box(limiter.check_n(3));
            let _ = std::hint::black_box(limiter.decide(2));
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn a_refusal_allocates_nothing() {
    let limiter = RateLimiter::builder().per_minute(1).build().expect("valid");
    let _ = limiter.check();
    let _ = limiter.check();
    let n = allocations_in(|| {
        for _ in 0..1_000 {
            assert!(std::hint::black_box(limiter.check()).is_err());
            assert!(std::hint::black_box(limiter.check_n(5)).is_err());
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn check_key_on_a_tracked_key_allocates_nothing() {
    let limiter = KeyedRateLimiter::builder()
        .per_second(1_000_000)
        .burst(1_000)
        .build()
        .expect("valid");
    limiter.check_key("tenant-42").expect("fresh key");
    // A refusal once (the loop may drain the burst and see one).
    let _ = limiter.check_key_n("warm-up", 1_000);
    assert!(limiter.check_key_n("warm-up", 1_000).is_err());
    let n = allocations_in(|| {
        for _ in 0..10_000 {
            let _ = std::hint::black_box(limiter.check_key("tenant-42"));
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn bulkhead_try_acquire_allocates_nothing() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(4)
        .build()
        .expect("valid");
    drop(bulkhead.try_acquire());
    let n = allocations_in(|| {
        for _ in 0..1_000 {
            let permit = bulkhead.try_acquire().expect("free slot");
            drop(std::hint::black_box(permit));
        }
    });
    assert_eq!(n, 0);
}
