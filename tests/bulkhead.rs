//! Bulkhead: concurrency cap, bounded queue, queue timeout, cancellation, configuration errors.
//! Time comes from tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use resilience::bulkhead::{Bulkhead, BulkheadError, BulkheadFull};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

fn bulkhead(max_concurrent: usize, max_queued: usize, timeout: Option<Duration>) -> Bulkhead {
    let mut b = Bulkhead::builder()
        .max_concurrent(max_concurrent)
        .max_queued(max_queued);
    if let Some(t) = timeout {
        b = b.queue_timeout(t);
    }
    b.build().expect("valid bulkhead")
}

/// Lets spawned tasks run until they block.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_queue_the_call_past_the_cap_is_refused_at_once() {
    let b = bulkhead(2, 0, None);
    let p1 = b.acquire().await.expect("slot 1");
    let _p2 = b.try_acquire().expect("slot 2");
    assert_eq!((b.running(), b.available()), (2, 0));
    let full = BulkheadFull::QueueFull {
        max_concurrent: 2,
        max_queued: 0,
    };
    assert_eq!(b.try_acquire().unwrap_err(), full);
    let start = Instant::now();
    assert_eq!(b.acquire().await.unwrap_err(), full);
    assert_eq!(start.elapsed(), Duration::ZERO);
    drop(p1);
    assert_eq!(b.running(), 1);
    assert!(b.acquire().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn queued_calls_wait_in_order_and_the_queue_is_bounded() {
    let b = bulkhead(1, 2, Some(Duration::from_secs(10)));
    let holder = b.acquire().await.expect("the only slot");
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for id in 0..2 {
        let (b, order) = (b.clone(), Arc::clone(&order));
        waiters.push(tokio::spawn(async move {
            let permit = b.acquire().await;
            order.lock().expect("not poisoned").push(id);
            tokio::time::sleep(100 * MS).await;
            drop(permit);
            id
        }));
        settle().await;
    }
    assert_eq!(b.queued(), 2);
    assert_eq!(
        b.acquire().await.unwrap_err(),
        BulkheadFull::QueueFull {
            max_concurrent: 1,
            max_queued: 2
        }
    );
    let start = Instant::now();
    drop(holder);
    for w in waiters {
        w.await.expect("waiter finished");
    }
    assert_eq!(*order.lock().expect("not poisoned"), vec![0, 1]);
    // One slot: the two queued calls ran one after the other.
    assert_eq!(start.elapsed(), 200 * MS);
    assert_eq!((b.queued(), b.running()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_times_out_after_exactly_the_queue_timeout() {
    let b = bulkhead(1, 1, Some(200 * MS));
    let _holder = b.acquire().await.expect("slot");
    let start = Instant::now();
    let err = b.acquire().await.unwrap_err();
    assert_eq!(err, BulkheadFull::QueueTimeout { waited: 200 * MS });
    assert_eq!(start.elapsed(), 200 * MS);
    assert_eq!(b.queued(), 0, "the timed-out call left the queue");
    assert!(err.to_string().contains("timeout"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_slot_freed_before_the_timeout_is_taken() {
    let b = bulkhead(1, 1, Some(200 * MS));
    let holder = b.acquire().await.expect("slot");
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(150 * MS).await;
        drop(holder);
    });
    let start = Instant::now();
    let permit = b.acquire().await.expect("slot freed at 150 ms");
    assert_eq!(start.elapsed(), 150 * MS);
    assert_eq!(b.running(), 1);
    drop(permit);
    releaser.await.expect("releaser");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_queued_acquire_frees_its_queue_place() {
    let b = bulkhead(1, 1, None);
    let holder = b.acquire().await.expect("slot");
    let gave_up = tokio::time::timeout(50 * MS, b.acquire()).await;
    assert!(gave_up.is_err());
    assert_eq!(b.queued(), 0);
    // The queue place is free again: another call can wait, and gets the slot.
    let b2 = b.clone();
    let waiter = tokio::spawn(async move { b2.acquire().await.map(drop) });
    settle().await;
    assert_eq!(b.queued(), 1);
    drop(holder);
    assert_eq!(waiter.await.expect("joined"), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn call_caps_concurrency_and_passes_results_through() {
    let b = bulkhead(3, 10, None);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (b, running, peak) = (b.clone(), Arc::clone(&running), Arc::clone(&peak));
            tokio::spawn(async move {
                b.call(|| async {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(100 * MS).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(i * 2)
                })
                .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("joined").expect("admitted"));
    }
    assert_eq!(results, (0..10).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    // 10 calls, 3 at a time, 100 ms each: 4 rounds.
    assert_eq!(start.elapsed(), 400 * MS);
}

#[derive(Debug, PartialEq)]
enum AppError {
    Busy,
    Failed(&'static str),
}

impl From<BulkheadFull> for AppError {
    fn from(_: BulkheadFull) -> Self {
        AppError::Busy
    }
}

#[tokio::test(start_paused = true)]
async fn call_errors_tell_refusal_and_inner_failure_apart() {
    let b = bulkhead(1, 0, None);
    let err = b
        .call(|| async { Err::<(), _>(AppError::Failed("boom")) })
        .await
        .unwrap_err();
    assert!(err.full().is_none());
    assert_eq!(err.into_inner(), Some(AppError::Failed("boom")));

    let _holder = b.acquire().await.expect("slot");
    let ran = AtomicUsize::new(0);
    let err = b
        .call(|| async {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<_, AppError>(())
        })
        .await
        .unwrap_err();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a refused call does not run");
    assert!(matches!(
        err,
        BulkheadError::Full(BulkheadFull::QueueFull { .. })
    ));
    assert_eq!(err.flatten(), AppError::Busy);
}

#[tokio::test(start_paused = true)]
async fn an_owned_permit_moves_into_a_spawned_task() {
    let b = bulkhead(1, 0, None);
    let permit = b.acquire().await.expect("slot");
    let task = tokio::spawn(async move {
        tokio::time::sleep(10 * MS).await;
        drop(permit);
    });
    assert!(b.try_acquire().is_err());
    task.await.expect("joined");
    assert!(b.try_acquire().is_ok());
}

#[test]
fn invalid_configurations_are_rejected_naming_the_field() {
    let field = |b: resilience::bulkhead::BulkheadBuilder| b.build().unwrap_err().field;
    assert_eq!(
        field(Bulkhead::builder().max_concurrent(0)),
        "max_concurrent"
    );
    assert_eq!(
        field(Bulkhead::builder().max_concurrent(usize::MAX)),
        "max_concurrent"
    );
    assert_eq!(
        field(
            Bulkhead::builder()
                .max_queued(1)
                .queue_timeout(Duration::ZERO)
        ),
        "queue_timeout"
    );
    assert_eq!(
        field(Bulkhead::builder().queue_timeout(Duration::from_secs(1))),
        "queue_timeout"
    );
    let b = Bulkhead::builder().build().expect("defaults are valid");
    assert_eq!((b.max_concurrent(), b.max_queued()), (25, 0));
}
