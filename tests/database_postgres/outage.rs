//! PostgreSQL stopped (fast shutdown) or killed (SIGKILL, crash recovery on restart) while tasks
//! query in a loop: no call outlives its deadline, every failure is typed and retryable, health
//! is unhealthy while the server is down, and the first success comes soon after it is back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resilience::Retryable;
use resilience::database::{check_database_health, sqlx};
use resilience::health::HealthStatus;

use crate::support::poll_until;
use crate::support::postgres::PostgresServer;
use crate::{LIMIT, measured, warm};

/// Concurrent callers, more than the pool's connections so some wait in acquire.
const TASKS: usize = 6;
const MAX_CONNECTIONS: u32 = 4;
/// The pool's acquire timeout: the deadline of a call while the server is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);
/// What a call may take beyond the acquire timeout (a `SELECT 1`, and scheduling on 2 cores).
const CALL_SLACK: Duration = Duration::from_millis(500);
const DOWN_FOR: Duration = Duration::from_secs(1);
/// The target: a success within 2 s of the server accepting again.
const RECOVERY_TARGET: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
enum Outage {
    /// `pg_ctl stop -m fast`: backends end their sessions with `57P01`, then the postmaster exits.
    Stop,
    /// SIGKILL to the postmaster and every backend: connections reset, crash recovery on start.
    Kill,
}

#[derive(Debug)]
struct Call {
    started: Instant,
    ended: Instant,
    /// `None` on success; the error text and whether it was retryable otherwise.
    error: Option<(String, bool)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_mid_load() {
    outage_mid_load(Outage::Stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_and_restarted_mid_load() {
    outage_mid_load(Outage::Kill).await;
}

async fn outage_mid_load(outage: Outage) {
    let mut pg = PostgresServer::start();
    // Opened warm: the figures are about the outage, not the first handshakes.
    let db = measured(&pg, MAX_CONNECTIONS, ACQUIRE_TIMEOUT);
    warm(&db, MAX_CONNECTIONS as usize).await;
    let calls = Arc::new(Mutex::new(Vec::<Call>::new()));
    let running = Arc::new(AtomicBool::new(true));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (db, calls, running) = (db.clone(), calls.clone(), running.clone());
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    // LIMIT only stops a hung call from hanging the test; the assertion on call
                    // durations below is what checks the deadline.
                    let result = tokio::time::timeout(
                        LIMIT,
                        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&db),
                    )
                    .await;
                    let error = match result {
                        Ok(Ok(1)) => None,
                        Ok(Ok(n)) => Some((format!("SELECT 1 returned {n}"), false)),
                        Ok(Err(e)) => Some((e.to_string(), e.is_retryable())),
                        Err(_) => Some(("hung past LIMIT".to_owned(), false)),
                    };
                    let ended = Instant::now();
                    calls.lock().unwrap().push(Call {
                        started,
                        ended,
                        error,
                    });
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();

    let before = poll_until(LIMIT, async || {
        let calls = calls.lock().unwrap();
        (calls.len() >= 2 * TASKS).then_some(calls.len())
    })
    .await;
    assert!(
        before.is_some(),
        "calls did not get going before the outage"
    );

    match outage {
        Outage::Stop => tokio::task::block_in_place(|| pg.stop()),
        Outage::Kill => tokio::task::block_in_place(|| pg.kill()),
    }
    let down_at = Instant::now();
    let down = check_database_health(&db).await;
    assert_eq!(down.status, HealthStatus::Unhealthy, "{down:?}");
    assert!(down.error.is_some(), "{down:?}");
    assert!(
        down.latency <= ACQUIRE_TIMEOUT + CALL_SLACK,
        "the check waited past the acquire timeout: {down:?}"
    );
    tokio::time::sleep(DOWN_FOR.saturating_sub(down_at.elapsed())).await;

    tokio::task::block_in_place(|| pg.start_again());
    let up_at = Instant::now();
    let first_success = poll_until(Duration::from_secs(10), async || {
        let calls = calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.error.is_none() && c.ended >= up_at)
            .map(|c| c.ended)
            .min()
    })
    .await
    .expect("no call succeeded within 10 s of the restart");
    let recovery = first_success - up_at;
    let up = check_database_health(&db).await;
    assert_eq!(up.status, HealthStatus::Healthy, "{up:?}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("caller task");
    }

    let calls = std::mem::take(&mut *calls.lock().unwrap());
    let max_call = calls
        .iter()
        .map(|c| c.ended - c.started)
        .max()
        .unwrap_or_default();
    let failures: Vec<&(String, bool)> = calls.iter().filter_map(|c| c.error.as_ref()).collect();
    let kinds: BTreeSet<&str> = failures.iter().map(|(e, _)| e.as_str()).collect();
    eprintln!(
        "{outage:?}: {} calls, {} failed; longest call {max_call:?} (acquire timeout \
         {ACQUIRE_TIMEOUT:?}); down {:?}; first success {recovery:?} after the server was \
         ready again; errors seen: {kinds:?}",
        calls.len(),
        failures.len(),
        up_at - down_at,
    );

    assert!(
        max_call <= ACQUIRE_TIMEOUT + CALL_SLACK,
        "a call took {max_call:?}, past its deadline"
    );
    assert!(!failures.is_empty(), "the outage was not seen by any call");
    for (error, retryable) in &failures {
        assert!(retryable, "not retryable: {error}");
    }
    assert!(
        recovery <= RECOVERY_TARGET,
        "first success {recovery:?} after the restart"
    );
    // Once one call succeeded the pool has replaced its dead connections: no later failures.
    let late: Vec<&Call> = calls
        .iter()
        .filter(|c| c.started > first_success && c.error.is_some())
        .collect();
    assert!(late.is_empty(), "failures after recovery: {late:?}");

    // Nothing leaked: every connection back in the pool, no waiter left.
    let stats = db.stats();
    assert_eq!(stats.waiting, 0, "{stats:?}");
    assert_eq!(stats.idle, stats.total, "{stats:?}");
    assert!(stats.total <= MAX_CONNECTIONS, "{stats:?}");
}
