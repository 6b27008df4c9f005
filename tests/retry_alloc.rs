//! A first-try success allocates nothing: counted by a global allocator wrapper that counts only
//! while the measuring thread has switched counting on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use resilience::retry::{RetryError, RetryPolicy, RetryPreset, retry};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `block_on(fut)` on this thread (the runtime is built beforehand).
fn allocations_of<F: Future>(rt: &tokio::runtime::Runtime, fut: F) -> (usize, F::Output) {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let out = rt.block_on(fut);
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.load(Ordering::Relaxed), out)
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
