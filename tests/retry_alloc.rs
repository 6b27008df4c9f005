//! A first-try success allocates nothing: counted by a global allocator that counts the
//! allocations of the measuring thread.

use std::future::Future;
use std::io;

use resilience::retry::{RetryError, RetryPolicy, RetryPreset, retry};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// Allocations made by `block_on(fut)` on this thread (the runtime is built beforehand).
fn allocations_of<F: Future>(rt: &tokio::runtime::Runtime, fut: F) -> (u64, F::Output) {
    counting_alloc::allocations_in(|| rt.block_on(fut))
}

#[test]
fn first_try_success_does_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shared = RetryPolicy::from(RetryPreset::Patient);
    let op = || async { Ok::<u64, io::Error>(7) };
    // Warm-up: one-time lazy initialisation (metric handles, thread locals) is not per call.
    let _ = rt.block_on(retry(op, RetryPolicy::default()));

    for round in 0..3 {
        let (n, out) = allocations_of(&rt, retry(op, RetryPolicy::default()));
        assert_eq!((n, out.unwrap()), (0, 7), "default policy, round {round}");
        let (n, out) = allocations_of(&rt, retry(op, RetryPreset::Quick));
        assert_eq!((n, out.unwrap()), (0, 7), "preset, round {round}");
        let (n, out) = allocations_of(&rt, shared.retry(op));
        assert_eq!((n, out.unwrap()), (0, 7), "shared policy, round {round}");
        let (n, out) = allocations_of(&rt, shared.run(op));
        assert_eq!((n, out.unwrap()), (0, 7), "run, round {round}");
    }
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (n, out) = allocations_of(&rt, async {
        let r: Result<Vec<u8>, RetryError<io::Error>> =
            retry(|| async { Ok(vec![1u8; 64]) }, RetryPolicy::default()).await;
        r
    });
    assert_eq!(out.unwrap().len(), 64);
    assert!(n >= 1, "counted {n}");
}
