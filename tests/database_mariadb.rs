//! The database module on a real MariaDB server (`tests/support/mariadb.rs`): health across a
//! stop and restart without leaking the password, and `retry_transaction` through a deadlock
//! (`ER_LOCK_DEADLOCK` 1213) and a lock wait timeout (`ER_LOCK_WAIT_TIMEOUT` 1205).

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resilience::Retryable;
use resilience::database::sqlx::mysql::MySqlPoolOptions;
use resilience::database::sqlx::{self, MySql};
use resilience::database::{
    MeasuredPool, check_database_health, check_database_health_verbose, retry_transaction,
};
use resilience::health::HealthStatus;
use resilience::retry::{AttemptFailure, RetryPolicy};
use support::mariadb::{APP_PASSWORD, MariaDbServer};
use tokio::sync::Barrier;

const LIMIT: Duration = Duration::from_secs(20);

fn measured(server: &MariaDbServer, max: u32, acquire_timeout: Duration) -> MeasuredPool<MySql> {
    let pool = MySqlPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        .connect_lazy(&server.url())
        .expect("a valid URL");
    MeasuredPool::new("maria", pool)
}

/// A few quick attempts; `seen` collects each failed attempt's error code and text.
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

async fn setup(db: &MeasuredPool<MySql>) {
    sqlx::raw_sql(
        "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL) ENGINE=InnoDB; \
         INSERT INTO accounts VALUES (1, 100), (2, 100)",
    )
    .execute(db)
    .await
    .expect("setup SQL");
}

async fn balances(db: &MeasuredPool<MySql>) -> Vec<i32> {
    sqlx::query_scalar("SELECT balance FROM accounts ORDER BY id")
        .fetch_all(db)
        .await
        .expect("read balances")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_a_stop_and_restart_without_showing_the_password() {
    let mut server = MariaDbServer::start();
    let db = measured(&server, 2, Duration::from_millis(300));
    let warm = db.acquire().await.expect("connect");
    drop(warm);

    let up = check_database_health_verbose(&db).await;
    eprintln!("MariaDB check: {:?}", up.latency);
    assert_eq!(up.error, None, "{up:?}");
    let version = up.details.as_ref().and_then(|d| d.server_version.clone());
    assert!(
        version.as_deref().is_some_and(|v| v.contains("MariaDB")),
        "{up:?}"
    );

    tokio::task::block_in_place(|| server.stop());
    let down = check_database_health(&db).await;
    assert_eq!(down.status, HealthStatus::Unhealthy, "{down:?}");
    let error = down.error.clone().expect("an error while down");
    for text in [error.clone(), format!("{down:?}"), format!("{db:?}")] {
        assert!(!text.contains(APP_PASSWORD), "password shown: {text}");
    }

    tokio::task::block_in_place(|| server.start_again());
    let started = Instant::now();
    let again = support::poll_until(Duration::from_secs(5), async || {
        let r = check_database_health(&db).await;
        (r.error.is_none()).then_some(r)
    })
    .await
    .expect("healthy again after the restart");
    eprintln!(
        "MariaDB down: {error}; healthy again {:?} after the restart",
        started.elapsed()
    );
    assert_ne!(again.status, HealthStatus::Unhealthy, "{again:?}");
}

/// Two transfers locking two rows in opposite orders: InnoDB picks a victim at once (1213,
/// SQLSTATE 40001), the retry commits it, and each transfer shows in the balances once.
#[tokio::test]
async fn a_deadlock_is_retried_and_both_transfers_apply_once() {
    let server = MariaDbServer::start();
    let db = measured(&server, 4, LIMIT);
    setup(&db).await;

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
                sqlx::query("UPDATE accounts SET balance = balance - ? WHERE id = ?")
                    .bind(amount)
                    .bind(from)
                    .execute(&mut **tx)
                    .await?;
                if std::mem::take(&mut first) {
                    barrier.wait().await;
                }
                sqlx::query("UPDATE accounts SET balance = balance + ? WHERE id = ?")
                    .bind(amount)
                    .bind(to)
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
        "MariaDB deadlock: {} attempts; failed: {seen:?}",
        attempts.load(Ordering::SeqCst)
    );
    x.expect("task x").expect("transfer 1 -> 2 commits");
    y.expect("task y").expect("transfer 2 -> 1 commits");
    assert_eq!(attempts.load(Ordering::SeqCst), 3, "exactly one retry");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains("1213") || seen[0].contains("40001"),
        "{seen:?}"
    );
    assert_eq!(balances(&db).await, [100 - 10 + 3, 100 + 10 - 3]);
}

/// A row held by another session past `innodb_lock_wait_timeout` (1 s here): the attempt fails
/// with 1205, is rolled back and retried, and commits once the other session let go.
#[tokio::test]
async fn a_lock_wait_timeout_is_retried_until_the_row_is_free() {
    let server = MariaDbServer::start_with(&["--innodb-lock-wait-timeout=1"]);
    let db = measured(&server, 4, LIMIT);
    setup(&db).await;

    let mut holder = db.begin().await.expect("holder transaction");
    sqlx::query("SELECT balance FROM accounts WHERE id = 1 FOR UPDATE")
        .execute(&mut *holder)
        .await
        .expect("lock row 1");
    let hold = Duration::from_millis(1500);
    let release = tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        holder.commit().await
    });

    let attempts = AtomicU32::new(0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let result = tokio::time::timeout(
        LIMIT,
        retry_transaction(&db, policy(&seen), async |tx| {
            attempts.fetch_add(1, Ordering::SeqCst);
            sqlx::query("UPDATE accounts SET balance = balance + 1 WHERE id = 1")
                .execute(&mut **tx)
                .await?;
            Ok::<_, sqlx::Error>(())
        }),
    )
    .await
    .expect("retry_transaction hung");
    let took = started.elapsed();
    release.await.expect("holder task").expect("holder commits");
    let seen = seen.lock().unwrap().clone();
    eprintln!(
        "MariaDB lock wait: {result:?} after {took:?}, {} attempts; failed: {seen:?}",
        attempts.load(Ordering::SeqCst)
    );
    result.expect("commits once the row is free");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert!(seen[0].contains("1205"), "{seen:?}");
    assert!(took >= hold - Duration::from_millis(100), "{took:?}");
    assert_eq!(balances(&db).await, [101, 100], "applied once");
}
