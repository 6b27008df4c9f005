//! One behaviour suite for job queues, run against both backends through the facade only
//! (`Queue`, `Worker`, `JobOptions`, `Handler`, `JobContext`): each case is an `async fn`
//! taking a fresh `Queue`; `suite!` instantiates it in memory (tokio's paused clock drives
//! delays, backoffs and timeouts) and on Redis (a private redis-server, real time).

mod support;

#[path = "jobs_behaviour/failures.rs"]
mod failures;
#[path = "jobs_behaviour/flow.rs"]
mod flow;
#[path = "jobs_behaviour/memory_only.rs"]
mod memory_only;

use failures::*;
use flow::*;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::jobs::{
    BackendKind, Handler, JobContext, JobError, JobInfo, JobOptions, JobPriority, JobState,
    MemoryBroker, Queue, QueueError, Retention, Worker, WorkerBuilder,
};
use resilience::retry::{Backoff, RetryPolicy, Retryable};
use resilience::shutdown::ShutdownCoordinator;
use serde_json::json;
use tokio::time::Instant;

/// Generous for Redis (real time); instant under the paused clock.
const LIMIT: Duration = Duration::from_secs(20);

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(start_paused = true)]
                async fn $case() {
                    super::$case(super::memory_queue(stringify!($case))).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let server = super::support::RedisServer::start();
                    super::$case(super::redis_queue(&server, stringify!($case)).await).await;
                }
            )*
        }
    };
}

suite!(
    processed_with_result_stored,
    counts_and_job_info,
    priority_order,
    lifo_first_in_its_level,
    delay_order,
    bulk_add,
    idempotent_id,
    retry_then_complete,
    non_retryable_fails_at_once,
    exhausted_attempts_fail_with_the_last_reason,
    retry_after_hint_honoured,
    bad_payload_fails_that_job_and_the_next_runs,
    timeout_fails_the_attempt,
    concurrency_cap_respected,
    pause_and_resume,
    close_waits_for_in_flight,
    close_timeout,
    retention_count,
);

fn memory_queue(name: &str) -> Queue {
    Queue::in_memory(name, &MemoryBroker::new()).expect("valid queue name")
}

/// The queue `name` on `server`, through the Redis backend.
async fn redis_queue(server: &support::RedisServer, name: &str) -> Queue {
    let config = resilience::RedisConfig::from_url(&server.url())
        .expect("url")
        .build()
        .expect("config");
    Queue::redis(name, &config).await.expect("queue on redis")
}

/// A worker builder that registers with a private coordinator, not the global one.
fn worker(queue: &Queue) -> WorkerBuilder {
    Worker::builder(queue).shutdown(&ShutdownCoordinator::new())
}

/// Retry `attempts` times in all, `delay` apart (no jitter), within a minute.
fn fixed(attempts: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .backoff(Backoff::Fixed)
        .initial_delay(delay)
        .total_timeout(Duration::from_secs(60))
        .build()
        .expect("valid policy")
}

/// How early a Redis job may start relative to our clock: BullMQ stamps jobs in whole ms of
/// the wall clock. The paused clock is exact.
fn slack(queue: &Queue) -> Duration {
    match queue.backend_kind() {
        BackendKind::Memory => Duration::ZERO,
        _ => Duration::from_millis(5),
    }
}

/// Waits until `f` holds, failing the test with `what` after [`LIMIT`].
async fn wait_for(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let reached = support::poll_until(LIMIT, async || f().await.then_some(())).await;
    assert!(reached.is_some(), "timed out waiting for {what}");
}

/// Waits until job `id` has completed or failed, and returns it.
async fn finished(queue: &Queue, id: &str) -> JobInfo {
    let mut last = None;
    let found = support::poll_until(LIMIT, async || {
        let info = queue.job(id).await.expect("job lookup");
        let done = info
            .as_ref()
            .is_some_and(|j| matches!(j.state, JobState::Completed | JobState::Failed));
        last = info.clone();
        if done { info } else { None }
    })
    .await;
    found.unwrap_or_else(|| panic!("job {id} did not finish: {last:?}"))
}

/// A log shared with handlers.
type Log<T> = Arc<Mutex<Vec<T>>>;

fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

fn entries<T: Clone>(log: &Log<T>) -> Vec<T> {
    log.lock().unwrap().clone()
}
