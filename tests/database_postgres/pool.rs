//! The pool under pressure: exhaustion (typed, retryable timeout; waiters counted; no leak), a
//! query cut by the caller's timeout not holding its slot, no password anywhere while the server
//! is down, and the shutdown hook closing the pool after the in-flight query.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resilience::Retryable;
use resilience::database::sqlx::postgres::PgPoolOptions;
use resilience::database::{
    DatabaseHealthCheck, MeasuredPool, PoolShutdownOptions, check_database_health,
    check_database_health_verbose, register_pool_shutdown_with, retry_transaction, sqlx,
};
use resilience::health::{HealthCheck, HealthRegistry, HealthStatus};
use resilience::retry::RetryPolicy;
use resilience::shutdown::{HookStatus, ShutdownConfig, ShutdownCoordinator};

use crate::support::poll_until;
use crate::support::postgres::{APP_PASSWORD, PostgresServer, SUPERUSER_PASSWORD};
use crate::{LIMIT, app_connections, measured, settled, warm};

#[tokio::test]
async fn an_exhausted_pool_times_out_typed_and_retryable_and_leaks_nothing() {
    const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(800);
    let pg = PostgresServer::start();
    let db = measured(&pg, 2, ACQUIRE_TIMEOUT);
    let held = [
        db.acquire().await.expect("first connection"),
        db.acquire().await.expect("second connection"),
    ];
    let s = db.stats();
    assert_eq!(
        (s.total, s.idle, s.active, s.waiting, s.max),
        (2, 0, 2, 0, 2),
        "{s:?}"
    );

    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = db.acquire().await.map(drop);
                (result, started.elapsed())
            })
        })
        .collect();
    let waiting = poll_until(ACQUIRE_TIMEOUT / 2, async || {
        (db.stats().waiting == 3).then_some(())
    })
    .await;
    assert!(waiting.is_some(), "waiters not counted: {:?}", db.stats());
    // A query through the pool now waits like any caller, and fails the same way.
    let query = sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&db)
        .await;
    assert!(matches!(query, Err(sqlx::Error::PoolTimedOut)), "{query:?}");

    for waiter in waiters {
        let (result, took) = waiter.await.expect("waiter task");
        let error = result.expect_err("no connection can be free");
        assert!(matches!(error, sqlx::Error::PoolTimedOut), "{error:?}");
        assert!(error.is_retryable());
        assert!(
            took >= ACQUIRE_TIMEOUT - Duration::from_millis(50),
            "{took:?}"
        );
        assert!(
            took < ACQUIRE_TIMEOUT + Duration::from_millis(500),
            "{took:?}"
        );
    }
    assert_eq!(db.stats().waiting, 0);

    // A waiter is served as soon as a connection comes back.
    let [first, second] = held;
    let waiter = {
        let db = db.clone();
        tokio::spawn(async move { db.acquire().await.map(drop) })
    };
    assert!(
        poll_until(ACQUIRE_TIMEOUT / 2, async || (db.stats().waiting == 1)
            .then_some(()))
        .await
        .is_some()
    );
    drop(first);
    waiter
        .await
        .expect("waiter task")
        .expect("served by the returned connection");
    drop(second);

    let s = settled(&db).await;
    assert_eq!(
        (s.total, s.idle, s.active, s.waiting),
        (2, 2, 0, 0),
        "{s:?}"
    );
    assert_eq!(
        app_connections(&pg),
        2,
        "the server sees the pool's two connections only"
    );
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&db)
        .await
        .expect("usable");
    assert_eq!(one, 1);
}

/// A `MakeWriter` for `tracing_subscriber` that keeps everything written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A query through `&MeasuredPool` cut by the caller's timeout: returned to the pool, its
/// connection would be pinged first, and the ping waits for the cut query's reply (the rest of
/// the sleep). It is closed instead, so the pool's only slot is free for the next query at once.
/// A query that fails, on the other hand, has its reply: its connection is kept.
#[tokio::test]
async fn a_query_cut_by_the_callers_timeout_does_not_hold_its_connection() {
    let pg = PostgresServer::start();
    let db = measured(&pg, 1, Duration::from_secs(2));
    warm(&db, 1).await;
    let pid = async || -> i32 {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&db)
            .await
            .expect("backend pid")
    };

    let first = pid().await;
    let failed = sqlx::query("SELECT * FROM no_such_table")
        .execute(&db)
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(pid().await, first, "a failed query's connection is reused");

    let cut = tokio::time::timeout(
        Duration::from_millis(300),
        sqlx::query("SELECT pg_sleep(3)").execute(&db),
    )
    .await;
    assert!(cut.is_err(), "the sleep was not cut: {cut:?}");
    let started = Instant::now();
    let next = tokio::time::timeout(LIMIT, pid())
        .await
        .expect("query after the cut hung");
    let took = started.elapsed();
    eprintln!("query after a cut pg_sleep(3): {took:?}");
    assert_ne!(
        next, first,
        "the cut connection was closed, a new one opened"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");

    // The same for a row stream dropped before its end.
    let mut rows = sqlx::query("SELECT pg_sleep(3)").fetch(&db);
    let stalled = tokio::time::timeout(
        Duration::from_millis(300),
        futures_util::TryStreamExt::try_next(&mut rows),
    )
    .await;
    assert!(stalled.is_err(), "the row came early: {stalled:?}");
    drop(rows);
    let started = Instant::now();
    let last = tokio::time::timeout(LIMIT, pid())
        .await
        .expect("query after a dropped stream hung");
    let took = started.elapsed();
    eprintln!("query after a dropped stream: {took:?}");
    assert_ne!(last, next);
    assert!(took < Duration::from_secs(1), "{took:?}");
    settled(&db).await;
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [APP_PASSWORD, SUPERUSER_PASSWORD] {
        assert!(!text.contains(secret), "{what} shows a password: {text}");
    }
}

/// Reports, errors, `Debug` of the pool and the check, and every log line (sqlx's included, at
/// TRACE) while the server is up, down, and refusing a wrong password: no password anywhere.
#[tokio::test(flavor = "current_thread")]
async fn no_password_in_reports_errors_or_logs_while_the_server_is_down() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    // This thread only (current-thread runtime): other tests' logs are not mixed in.
    let _logs = tracing::subscriber::set_default(subscriber);

    let mut pg = PostgresServer::start();
    let db = measured(&pg, 2, Duration::from_millis(300));
    let check = DatabaseHealthCheck::new(db.clone());
    let registry = HealthRegistry::new();
    registry.required(check.clone());
    let mut printed = Vec::new();
    warm(&db, 1).await;

    let verbose = check_database_health_verbose(&db).await;
    assert_eq!(verbose.status, HealthStatus::Healthy, "{verbose:?}");
    let details = verbose.details.as_ref().expect("verbose details");
    assert!(
        details
            .server_version
            .as_deref()
            .is_some_and(|v| v.starts_with("PostgreSQL 15")),
        "{details:?}"
    );
    printed.push(("verbose report", format!("{verbose:?}")));
    printed.push(("pool", format!("{db:?}")));
    printed.push(("check", format!("{check:?}")));

    // Blocking the only thread for the stop is fine: nothing else must run meanwhile.
    pg.stop();
    let down = check_database_health_verbose(&db).await;
    assert_eq!(down.status, HealthStatus::Unhealthy, "{down:?}");
    let error = down.error.clone().expect("an error while down");
    printed.push(("error while down", error));
    printed.push(("report while down", format!("{down:?}")));
    printed.push(("check outcome", format!("{:?}", check.check().await)));
    printed.push(("registry report", format!("{:?}", registry.check().await)));
    let query = sqlx::query("SELECT 1")
        .execute(&db)
        .await
        .expect_err("down");
    printed.push(("query error", format!("{query} / {query:?}")));
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .initial_delay(Duration::from_millis(10))
        .build()
        .expect("policy");
    let tx = retry_transaction(&db, policy, async |_tx| Ok::<_, sqlx::Error>(()))
        .await
        .expect_err("down");
    printed.push(("transaction error", format!("{tx} / {tx:?}")));

    // Up again, but a pool built with a wrong password.
    pg.start_again();
    let wrong_secret = "wrong-Pw-5e1f";
    let wrong = MeasuredPool::new(
        "wrong",
        PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy(&pg.url().replace(APP_PASSWORD, wrong_secret))
            .expect("a valid URL"),
    );
    let refused = check_database_health(&wrong).await;
    assert_eq!(refused.status, HealthStatus::Unhealthy, "{refused:?}");
    let reason = refused.error.clone().expect("refused");
    assert!(
        reason.contains("password authentication failed"),
        "{reason}"
    );
    printed.push(("report for a wrong password", format!("{refused:?}")));
    printed.push(("pool with a wrong password", format!("{wrong:?}")));

    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    printed.push(("logs", logs.clone()));
    for (what, text) in &printed {
        assert_no_secret(what, text);
        assert!(
            !text.contains(wrong_secret),
            "{what} shows the wrong password: {text}"
        );
    }
    eprintln!("error while down: {}", printed[3].1);
    eprintln!("wrong password: {reason}");
    eprintln!("{} bytes of TRACE logs checked", logs.len());
}

fn coordinator(hook_timeout: Duration) -> ShutdownCoordinator {
    ShutdownCoordinator::with_config(
        ShutdownConfig::builder()
            .hook_timeout(hook_timeout)
            .total_timeout(LIMIT)
            .build()
            .expect("shutdown config"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_hook_closes_the_pool_after_the_in_flight_query() {
    let pg = PostgresServer::start();
    let db = measured(&pg, 2, LIMIT);
    let shutdown = coordinator(Duration::from_secs(5));
    register_pool_shutdown_with(&db, &shutdown, PoolShutdownOptions::new().name("db"))
        .expect("register the hook");

    let in_flight = {
        let db = db.clone();
        tokio::spawn(async move {
            sqlx::query_scalar::<_, i32>("SELECT 7 FROM pg_sleep(0.4)")
                .fetch_one(&db)
                .await
        })
    };
    let busy = poll_until(LIMIT, async || (db.stats().active == 1).then_some(())).await;
    assert!(busy.is_some(), "{:?}", db.stats());

    let started = Instant::now();
    let report = shutdown.shutdown().await;
    let took = started.elapsed();
    eprintln!("shutdown with a 0.4 s query in flight took {took:?}: {report:?}");
    assert_eq!(
        in_flight
            .await
            .expect("query task")
            .expect("the query finished"),
        7
    );
    let hook = report.hook("db").expect("the pool hook ran");
    assert_eq!(hook.status, HookStatus::Completed, "{report:?}");
    assert!(
        took >= Duration::from_millis(250),
        "closed before the query ended: {took:?}"
    );
    assert!(db.is_closed());
    let after = db.acquire().await.expect_err("closed");
    assert!(matches!(after, sqlx::Error::PoolClosed), "{after:?}");
    assert!(!after.is_retryable());
    let gone = poll_until(Duration::from_secs(2), async || {
        (app_connections(&pg) == 0).then_some(())
    })
    .await;
    assert!(gone.is_some(), "connections still open on the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_hook_gives_up_at_its_timeout_on_a_query_that_runs_on() {
    let pg = PostgresServer::start();
    let db = measured(&pg, 2, LIMIT);
    let shutdown = coordinator(Duration::from_secs(5));
    register_pool_shutdown_with(
        &db,
        &shutdown,
        PoolShutdownOptions::new()
            .name("db")
            .timeout(Duration::from_millis(300)),
    )
    .expect("register the hook");
    let in_flight = {
        let db = db.clone();
        tokio::spawn(async move { sqlx::query("SELECT pg_sleep(30)").execute(&db).await })
    };
    let busy = poll_until(LIMIT, async || (db.stats().active == 1).then_some(())).await;
    assert!(busy.is_some(), "{:?}", db.stats());

    let started = Instant::now();
    let report = shutdown.shutdown().await;
    let took = started.elapsed();
    let hook = report.hook("db").expect("the pool hook ran");
    assert!(matches!(hook.status, HookStatus::TimedOut(_)), "{report:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(db.is_closed());
    in_flight.abort();
}
