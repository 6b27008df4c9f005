//! `retry_transaction` against real failures: a backend terminated mid-transaction, two
//! SERIALIZABLE transactions in conflict (`40001`), and a deadlock (`40P01`).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::Retryable;
use resilience::database::sqlx::{self, Connection, PgConnection};
use resilience::database::{MeasuredPool, retry_transaction};
use resilience::retry::{AttemptFailure, RetryPolicy};
use tokio::sync::Barrier;

use crate::support::postgres::PostgresServer;
use crate::support::process::Stall;
use crate::{LIMIT, measured, settled};

/// A few quick attempts; `seen` collects each failed attempt's error.
fn policy(seen: &Arc<Mutex<Vec<String>>>) -> RetryPolicy {
    let seen = seen.clone();
    RetryPolicy::builder()
        .max_attempts(4)
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(100))
        .total_timeout(LIMIT)
        .on_retry::<sqlx::Error>(move |event| {
            let text = match &event.error {
                AttemptFailure::Error(e) => {
                    let code = e.as_database_error().and_then(|d| d.code());
                    format!("{code:?} {e} (retryable: {})", e.is_retryable())
                }
                other => format!("{other:?}"),
            };
            seen.lock().unwrap().push(text);
        })
        .build()
        .expect("a valid policy")
}

async fn setup(db: &MeasuredPool<sqlx::Postgres>, sql: &'static str) {
    sqlx::raw_sql(sql).execute(db).await.expect("setup SQL");
}

#[tokio::test]
async fn a_backend_killed_mid_transaction_is_rolled_back_and_retried_once() {
    let pg = PostgresServer::start();
    let db = measured(&pg, 2, LIMIT);
    setup(
        &db,
        "CREATE TABLE events (id serial PRIMARY KEY, attempt int NOT NULL)",
    )
    .await;

    // A superuser session that terminates the first attempt's backend once it is sleeping.
    let mut admin = PgConnection::connect(&pg.superuser_url())
        .await
        .expect("superuser connection");
    let killer = tokio::spawn(async move {
        for _ in 0..2000 {
            // Two steps: a `pg_terminate_backend` in the same WHERE clause could run before the
            // other conditions (the planner orders them) and kill the wrong statement.
            let sleeping: Option<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity \
                 WHERE usename = 'app' AND state = 'active' AND query LIKE 'SELECT pg_sleep%'",
            )
            .fetch_optional(&mut admin)
            .await
            .expect("find the sleeping backend");
            if let Some(pid) = sleeping {
                let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                    .bind(pid)
                    .fetch_one(&mut admin)
                    .await
                    .expect("terminate");
                return done.then_some(pid);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    });

    let attempts = AtomicU32::new(0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let result = tokio::time::timeout(
        LIMIT,
        retry_transaction(&db, policy(&seen), async |tx| {
            let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            sqlx::query("INSERT INTO events (attempt) VALUES ($1)")
                .bind(i32::try_from(n).unwrap_or(i32::MAX))
                .execute(&mut **tx)
                .await?;
            if n == 1 {
                // Terminated from the other session while it sleeps.
                sqlx::query("SELECT pg_sleep(30)")
                    .execute(&mut **tx)
                    .await?;
            }
            Ok::<_, sqlx::Error>(n)
        }),
    )
    .await
    .expect("retry_transaction hung");
    let killed = killer.await.expect("killer task");
    let seen = seen.lock().unwrap().clone();
    eprintln!("killed backends {killed:?}; failed attempts: {seen:?}; result {result:?}");

    assert!(
        killed.is_some(),
        "the sleeping backend was not found and terminated"
    );
    assert_eq!(result.expect("the retried transaction commits"), 2);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(seen.len(), 1, "{seen:?}");
    // The first attempt's insert was rolled back with its session; the second committed once.
    let rows: Vec<i32> = sqlx::query_scalar("SELECT attempt FROM events ORDER BY id")
        .fetch_all(&db)
        .await
        .expect("read events");
    assert_eq!(rows, [2]);
    // The dead connection left the pool; nothing is held.
    settled(&db).await;
}

/// An attempt stuck on a stalled backend (SIGSTOP: to the client, what a hung server or a
/// network partition looks like) is cut by the policy's attempt timeout. The next attempt needs a
/// connection: the cut one must not keep the pool's only slot while sqlx waits, on its way back
/// to the pool, for the stalled backend's reply.
/// (`retry_transaction` closes a cut attempt's connection.)
#[tokio::test]
async fn an_attempt_cut_on_a_stalled_backend_leaves_the_pool_usable() {
    let pg = PostgresServer::start();
    let db = measured(&pg, 1, Duration::from_secs(2));
    setup(
        &db,
        "CREATE TABLE events (id serial PRIMARY KEY, attempt int NOT NULL)",
    )
    .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let policy = policy(&seen)
        .to_builder()
        .attempt_timeout(Duration::from_millis(300))
        .total_timeout(Duration::from_secs(5))
        .build()
        .expect("policy");
    let attempts = AtomicU32::new(0);
    let stall = Mutex::new(None);
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        LIMIT,
        retry_transaction(&db, policy, async |tx| {
            let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 1 {
                let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut **tx)
                    .await?;
                let pid = u32::try_from(pid).unwrap_or_default();
                *stall.lock().unwrap() = Some(Stall::new(pid, Duration::from_secs(5)));
            }
            sqlx::query("INSERT INTO events (attempt) VALUES ($1)")
                .bind(i32::try_from(n).unwrap_or(i32::MAX))
                .execute(&mut **tx)
                .await?;
            Ok::<_, sqlx::Error>(n)
        }),
    )
    .await
    .expect("retry_transaction hung");
    let took = started.elapsed();
    let seen = seen.lock().unwrap().clone();
    eprintln!("stalled backend: {result:?} after {took:?}; failed attempts: {seen:?}");
    drop(stall.lock().unwrap().take());
    assert_eq!(
        result.expect("the second attempt commits on a new connection"),
        2
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    let rows: Vec<i32> = sqlx::query_scalar("SELECT attempt FROM events ORDER BY id")
        .fetch_all(&db)
        .await
        .expect("read events");
    assert_eq!(rows, [2]);
}

/// Two transactions that each read the whole ledger and append what they saw: serially the
/// second one sees the first one's row; concurrently under SERIALIZABLE one of them must fail
/// with `40001` and, retried, see the other's row.
#[tokio::test]
async fn serialization_conflicts_are_retried_until_both_commit_once() {
    let pg = PostgresServer::start();
    let db = measured(&pg, 4, LIMIT);
    setup(
        &db,
        "CREATE TABLE ledger (who text PRIMARY KEY, seen bigint NOT NULL)",
    )
    .await;

    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let run = |who: char| {
        let (db, barrier, attempts, policy) =
            (db.clone(), barrier.clone(), attempts.clone(), policy(&seen));
        tokio::spawn(async move {
            let mut first = true;
            retry_transaction(&db, policy, async move |tx| {
                attempts.fetch_add(1, Ordering::SeqCst);
                sqlx::query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                    .execute(&mut **tx)
                    .await?;
                let count: i64 = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ledger")
                    .fetch_one(&mut **tx)
                    .await?;
                if std::mem::take(&mut first) {
                    // Both have read before either writes: a certain conflict.
                    barrier.wait().await;
                }
                sqlx::query("INSERT INTO ledger (who, seen) VALUES ($1, $2)")
                    .bind(who.to_string())
                    .bind(count)
                    .execute(&mut **tx)
                    .await?;
                Ok::<_, sqlx::Error>(count)
            })
            .await
        })
    };
    let (a, b) = (run('a'), run('b'));
    let (a, b) = tokio::time::timeout(LIMIT, async { (a.await, b.await) })
        .await
        .expect("transactions hung");
    let (a, b) = (a.expect("task a"), b.expect("task b"));
    let seen = seen.lock().unwrap().clone();
    eprintln!(
        "serialization: a {a:?}, b {b:?}, {} attempts; failed: {seen:?}",
        attempts.load(Ordering::SeqCst)
    );
    let (a, b) = (a.expect("a commits"), b.expect("b commits"));
    let mut counts = [a, b];
    counts.sort();
    assert_eq!(
        counts,
        [0, 1],
        "one saw nothing, the other saw the first one's row"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 3, "exactly one retry");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains("40001") || seen[0].contains("serialize"),
        "{seen:?}"
    );
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT who, seen FROM ledger ORDER BY seen")
        .fetch_all(&db)
        .await
        .expect("read ledger");
    assert_eq!(rows.len(), 2, "each committed once: {rows:?}");
}

/// Two transfers locking two rows in opposite orders: PostgreSQL aborts one with `40P01`, the
/// retry commits it, and the balances show each transfer applied once.
#[tokio::test]
async fn a_deadlock_is_retried_and_both_transfers_apply_once() {
    // The deadlock detector runs after `deadlock_timeout` (1 s by default) of waiting.
    let pg = PostgresServer::builder()
        .setting("deadlock_timeout", "50ms")
        .start();
    let db = measured(&pg, 4, LIMIT);
    setup(
        &db,
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL); \
         INSERT INTO accounts VALUES (1, 100), (2, 100)",
    )
    .await;

    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let transfer = |from: i32, to: i32, amount: i32| {
        let (db, barrier, attempts, policy) =
            (db.clone(), barrier.clone(), attempts.clone(), policy(&seen));
        tokio::spawn(async move {
            let mut first = true;
            retry_transaction(&db, policy, async move |tx| {
                attempts.fetch_add(1, Ordering::SeqCst);
                sqlx::query("UPDATE accounts SET balance = balance - $2 WHERE id = $1")
                    .bind(from)
                    .bind(amount)
                    .execute(&mut **tx)
                    .await?;
                if std::mem::take(&mut first) {
                    // Each holds its first row before asking for the other's.
                    barrier.wait().await;
                }
                sqlx::query("UPDATE accounts SET balance = balance + $2 WHERE id = $1")
                    .bind(to)
                    .bind(amount)
                    .execute(&mut **tx)
                    .await?;
                Ok::<_, sqlx::Error>(())
            })
            .await
        })
    };
    let (x, y) = (transfer(1, 2, 10), transfer(2, 1, 3));
    let (x, y) = tokio::time::timeout(LIMIT, async { (x.await, y.await) })
        .await
        .expect("transfers hung");
    let seen = seen.lock().unwrap().clone();
    eprintln!(
        "deadlock: {} attempts; failed: {seen:?}",
        attempts.load(Ordering::SeqCst)
    );
    x.expect("task x").expect("transfer 1 -> 2 commits");
    y.expect("task y").expect("transfer 2 -> 1 commits");
    assert_eq!(attempts.load(Ordering::SeqCst), 3, "exactly one retry");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains("40P01") || seen[0].contains("deadlock"),
        "{seen:?}"
    );
    let balances: Vec<i32> = sqlx::query_scalar("SELECT balance FROM accounts ORDER BY id")
        .fetch_all(&db)
        .await
        .expect("read balances");
    assert_eq!(balances, [100 - 10 + 3, 100 + 10 - 3]);
}
