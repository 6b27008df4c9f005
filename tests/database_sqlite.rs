//! The `database` module on real SQLite (a temporary file per test): query and pool metrics
//! through `&MeasuredPool` as an executor, waiters, acquire timeouts, health reports and the
//! registry check, `retry_transaction` against a real `SQLITE_BUSY`, the shutdown hook, and
//! redaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use resilience::database::sqlx::sqlite::{
    SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use resilience::database::sqlx::{self, Connection, Sqlite, SqliteConnection};
use resilience::database::{
    DatabaseHealthCheck, DatabaseHealthConfig, MeasuredPool, PoolShutdownOptions, PoolStats,
    check_database_health, check_database_health_verbose, check_database_health_with,
    register_pool_shutdown, register_pool_shutdown_with, retry_transaction,
};
use resilience::health::{HealthRegistry, HealthStatus};
use resilience::metrics::{
    DB_POOL_ACQUIRE_DURATION_SECONDS, DB_POOL_CONNECTIONS, DB_POOL_WAITING,
    DB_QUERY_DURATION_SECONDS, DB_SLOW_QUERIES_TOTAL,
};
use resilience::retry::{Backoff, RetryPolicy, Retryable};
use resilience::shutdown::{HookStatus, ShutdownConfig, ShutdownCoordinator};
use tempfile::TempDir;

/// A query SQLite spends a while on (a recursive count; ~50 ms and more even optimised).
const SLOW: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400000) SELECT count(*) FROM c";

struct Db {
    _dir: TempDir,
    options: SqliteConnectOptions,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("test.db"))
            .create_if_missing(true)
            // Fail at once on a lock held by another connection (no busy waiting): the test
            // sees SQLITE_BUSY and the retry engine does the waiting.
            .busy_timeout(Duration::ZERO)
            // No fsync per commit: statements take microseconds, only `SLOW` is slow.
            .synchronous(SqliteSynchronous::Off);
        Self { _dir: dir, options }
    }

    async fn pool(&self, max: u32) -> SqlitePool {
        self.pool_with(SqlitePoolOptions::new().max_connections(max))
            .await
    }

    async fn pool_with(&self, options: SqlitePoolOptions) -> SqlitePool {
        options
            .connect_with(self.options.clone())
            .await
            .expect("open sqlite")
    }

    async fn connection(&self) -> SqliteConnection {
        SqliteConnection::connect_with(&self.options)
            .await
            .expect("open sqlite")
    }
}

async fn setup(db: &MeasuredPool<Sqlite>) {
    sqlx::query("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .execute(db)
        .await
        .unwrap();
}

async fn count(db: &MeasuredPool<Sqlite>) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// Polls `f` every millisecond until it holds, for at most 5 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..5_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn queries_through_the_executor_are_counted_and_timed() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let file = Db::new();
    let pool = file.pool(2).await;
    // Handles are resolved when the pool is built: under this recorder.
    let db = metrics::with_local_recorder(&recorder, || {
        MeasuredPool::builder("main", pool)
            .slow_query_threshold(Duration::from_millis(20))
            .build()
    });

    setup(&db).await;
    for i in 0..20 {
        sqlx::query("INSERT INTO t (v) VALUES ($1)")
            .bind(format!("row {i}"))
            .execute(&db)
            .await
            .unwrap();
    }
    let rows = sqlx::query("SELECT * FROM t").fetch_all(&db).await.unwrap();
    assert_eq!(rows.len(), 20);
    let none = sqlx::query("SELECT * FROM t WHERE id = -1")
        .fetch_optional(&db)
        .await
        .unwrap();
    assert!(none.is_none());
    let n: i64 = sqlx::query_scalar(SLOW).fetch_one(&db).await.unwrap();
    assert_eq!(n, 400_000);

    let q = db.query_stats();
    // create + 20 inserts + fetch_all + fetch_optional + slow.
    assert_eq!(q.count, 24);
    assert_eq!(q.slow, 1, "{q:?}");
    assert!(q.max >= Duration::from_millis(20), "{q:?}");
    assert!(q.min < Duration::from_millis(20), "{q:?}");
    assert!(q.min <= q.avg && q.avg <= q.max, "{q:?}");
    assert!(q.min <= q.p95 && q.p95 <= q.p99 && q.p99 <= q.max, "{q:?}");
    // 1 slow of 24: the p95 (rank 23) is a fast query, the p99 (rank 24) the slow one.
    assert!(q.p95 < Duration::from_millis(20), "{q:?}");
    assert!(q.p99 >= Duration::from_millis(19), "{q:?}");
    assert_eq!(q.slow_threshold, Duration::from_millis(20));
    // 1 of 24 is not "high" (the seed's 12/150 is); its p99 is a long tail.
    assert!(
        !q.recommendations
            .iter()
            .any(|r| r.starts_with("High number")),
        "{:?}",
        q.recommendations
    );

    // Enough slow ones for the seed's advice.
    for _ in 0..2 {
        let _: i64 = sqlx::query_scalar(SLOW).fetch_one(&db).await.unwrap();
    }
    let q = db.query_stats();
    assert_eq!((q.slow, q.count), (3, 26));
    assert!(
        q.recommendations
            .iter()
            .any(|r| r.starts_with("High number of slow queries detected (3/26)")),
        "{:?}",
        q.recommendations
    );

    // The exported series; `stats()` refreshes the gauges once the connections are back.
    eventually("connections back", || db.stats().active == 0).await;
    let stats = db.stats();
    let mut seen = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        seen.insert(format!("{}{{{}}}", key.name(), labels.join(",")), value);
    }
    let get = |k: &str| {
        seen.get(k)
            .unwrap_or_else(|| panic!("{k} missing: {seen:?}"))
    };
    match get(&format!("{DB_QUERY_DURATION_SECONDS}{{pool=main}}")) {
        DebugValue::Histogram(v) => assert_eq!(v.len(), 26),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        get(&format!("{DB_SLOW_QUERIES_TOTAL}{{pool=main}}")),
        &DebugValue::Counter(3)
    );
    match get(&format!("{DB_POOL_ACQUIRE_DURATION_SECONDS}{{pool=main}}")) {
        DebugValue::Histogram(v) => assert_eq!(v.len(), 26),
        other => panic!("{other:?}"),
    }
    let gauge =
        |state: &str| match get(&format!("{DB_POOL_CONNECTIONS}{{pool=main,state={state}}}")) {
            DebugValue::Gauge(g) => g.into_inner(),
            other => panic!("{other:?}"),
        };
    assert_eq!(gauge("total"), f64::from(stats.total));
    assert_eq!(gauge("idle"), f64::from(stats.idle));
    assert_eq!(gauge("active"), 0.0);
    assert_eq!(
        get(&format!("{DB_POOL_WAITING}{{pool=main}}")),
        &DebugValue::Gauge(0.0.into())
    );
}

#[tokio::test]
async fn a_stream_is_timed_until_dropped_and_its_connection_returns() {
    let file = Db::new();
    let db = MeasuredPool::new("stream", file.pool(2).await);
    let before = db.query_stats().count;
    {
        let mut rows = sqlx::query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT x FROM c")
            .fetch(&db);
        assert!(rows.next().await.unwrap().is_ok());
        assert_eq!(db.query_stats().count, before, "still running");
        assert_eq!(db.stats().active, 1);
    }
    assert_eq!(db.query_stats().count, before + 1);
    // sqlx returns the connection from a background task.
    eventually("connection back", || db.stats().active == 0).await;
    // Run to its end: counted once.
    let all = sqlx::query("SELECT 1 UNION ALL SELECT 2")
        .fetch(&db)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(all.len(), 2);
    assert_eq!(db.query_stats().count, before + 2);
    db.reset_query_stats();
    assert_eq!(db.query_stats().count, 0);
}

#[tokio::test]
async fn query_metrics_can_be_turned_off() {
    let file = Db::new();
    let db = MeasuredPool::builder("off", file.pool(1).await)
        .query_metrics(false)
        .build();
    let _: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&db).await.unwrap();
    let q = db.query_stats();
    assert_eq!(q.count, 0);
    assert_eq!(q.slow_threshold, Duration::from_millis(100));
    assert_eq!(db.query_metrics_memory_bytes(), 0);
}

#[tokio::test]
async fn sqlite_single_connection_reports_the_seed_figures() {
    let file = Db::new();
    let db = MeasuredPool::new("single", file.pool(1).await);
    let _: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&db).await.unwrap();
    assert_eq!(
        db.stats(),
        PoolStats {
            total: 1,
            idle: 0,
            active: 1,
            waiting: 0,
            max: 1,
        }
    );
    // An always-busy single connection is not advice-worthy; waiting callers are.
    assert!(db.query_stats().recommendations.is_empty());
}

#[tokio::test]
async fn waiters_are_counted_while_the_pool_is_exhausted() {
    let file = Db::new();
    let db = MeasuredPool::new("waiters", file.pool(1).await);
    let held = db.acquire().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let _: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&db).await.unwrap();
        }));
    }
    eventually("two waiters", || db.stats().waiting == 2).await;
    let q = db.query_stats();
    assert!(
        q.recommendations
            .iter()
            .any(|r| r.starts_with("Connection pool saturated: 2 caller(s) waiting")),
        "{:?}",
        q.recommendations
    );
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(db.stats().waiting, 0);
    assert_eq!(db.query_stats().count, 2);
}

#[tokio::test]
async fn acquire_timeout_is_typed_retryable_and_leaks_nothing() {
    let file = Db::new();
    let pool = file
        .pool_with(
            SqlitePoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_millis(150)),
        )
        .await;
    let db = MeasuredPool::new("timeout", pool);
    let a = db.acquire().await.unwrap();
    let b = db.acquire().await.unwrap();
    assert_eq!(db.stats().active, 2);
    let err = db.acquire().await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
    assert!(err.is_retryable());
    // Through the executor too.
    let err = sqlx::query("SELECT 1").execute(&db).await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
    assert_eq!(db.stats().waiting, 0);
    drop((a, b));
    eventually("both connections back", || {
        let s = db.stats();
        (s.total, s.idle, s.active, s.waiting) == (2, 2, 0, 0)
    })
    .await;
    // Both connections serve again.
    let (x, y) = tokio::join!(db.acquire(), db.acquire());
    assert!(x.is_ok() && y.is_ok());
}

#[tokio::test]
async fn health_report_and_verbose_details() {
    let file = Db::new();
    let pool = file
        .pool_with(
            SqlitePoolOptions::new()
                .max_connections(3)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(4))
                .idle_timeout(Duration::from_secs(60)),
        )
        .await;
    let db = MeasuredPool::new("health", pool);
    let r = check_database_health(&db).await;
    assert_eq!(r.status, HealthStatus::Healthy, "{r:?}");
    assert!(r.error.is_none());
    assert!(r.latency < Duration::from_millis(100), "{r:?}");
    let names: Vec<_> = r.checks.iter().map(|c| c.name).collect();
    assert_eq!(names, ["acquire", "query"]);
    assert!(r.checks.iter().all(|c| c.status == HealthStatus::Healthy));
    assert_eq!(r.pool.max, 3);
    assert_eq!(r.pool.active, 0);
    assert!(r.details.is_none());

    let v = check_database_health_verbose(&db).await;
    assert_eq!(v.status, HealthStatus::Healthy, "{v:?}");
    let d = v.details.expect("details");
    assert_eq!(d.database, "SQLite");
    assert!(
        d.server_version
            .as_deref()
            .is_some_and(|s| s.starts_with("3.")),
        "{d:?}"
    );
    assert_eq!((d.max_connections, d.min_connections), (3, 1));
    assert_eq!(d.acquire_timeout, Duration::from_secs(4));
    assert_eq!(d.idle_timeout, Some(Duration::from_secs(60)));
    let names: Vec<_> = v.checks.iter().map(|c| c.name).collect();
    assert_eq!(names, ["acquire", "query", "version"]);

    // A slow probe: graded by latency.
    let slow = DatabaseHealthConfig {
        degraded_after: Duration::from_millis(5),
        unhealthy_after: Duration::from_secs(60),
        query: SLOW.into(),
        ..DatabaseHealthConfig::default()
    };
    let r = check_database_health_with(&db, &slow).await;
    assert_eq!(r.status, HealthStatus::Degraded, "{r:?}");
    assert!(r.error.is_none());
    let r = check_database_health_with(
        &db,
        &DatabaseHealthConfig {
            degraded_after: Duration::from_millis(1),
            unhealthy_after: Duration::from_millis(2),
            ..slow.clone()
        },
    )
    .await;
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");

    // Cut at the timeout: never waits past it.
    let hang = DatabaseHealthConfig {
        timeout: Duration::from_millis(5),
        query: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) SELECT count(*) FROM c".into(),
        ..DatabaseHealthConfig::default()
    };
    let start = std::time::Instant::now();
    let r = check_database_health_with(&db, &hang).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(r.status, HealthStatus::Unhealthy);
    assert!(
        r.error.as_deref().is_some_and(|e| e.contains("timed out")),
        "{r:?}"
    );
    assert_eq!(r.checks.last().map(|c| c.name), Some("query"), "{r:?}");
}

#[tokio::test]
async fn health_errors_are_redacted() {
    let file = Db::new();
    let db = MeasuredPool::new("redact", file.pool(1).await);
    // SQLite quotes the missing table's name in its error text.
    let config = DatabaseHealthConfig {
        query: "SELECT * FROM \"postgres://app:hunter2@db.internal/app\"".into(),
        ..DatabaseHealthConfig::default()
    };
    let r = check_database_health_with(&db, &config).await;
    assert_eq!(r.status, HealthStatus::Unhealthy);
    let error = r.error.clone().expect("error");
    assert!(error.contains("no such table"), "{error}");
    assert!(error.contains("app:***@db.internal"), "{error}");
    assert!(!format!("{r:?}").contains("hunter2"), "{r:?}");

    let registry = HealthRegistry::new();
    registry.required(DatabaseHealthCheck::new(db.clone()).with_config(config));
    let report = registry.check().await;
    let check = report.check("database").expect("database check");
    assert!(
        !check
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("hunter2")
    );
}

#[tokio::test]
async fn health_check_in_a_registry() {
    let file = Db::new();
    let db = MeasuredPool::new("registry", file.pool(2).await);
    let registry = HealthRegistry::new();
    registry.required(DatabaseHealthCheck::new(db.clone()));
    registry.optional(DatabaseHealthCheck::new(db.clone()).named("replica"));
    let report = registry.check().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert!(report.is_ready());
    assert_eq!(
        report.check("database").unwrap().status,
        HealthStatus::Healthy
    );
    assert_eq!(
        report.check("replica").unwrap().status,
        HealthStatus::Healthy
    );

    db.close().await;
    let report = registry.check().await;
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    let check = report.check("database").unwrap();
    assert!(
        check
            .message
            .as_deref()
            .is_some_and(|m| m.contains("closed pool")),
        "{check:?}"
    );
}

#[tokio::test]
async fn retry_transaction_waits_out_sqlite_busy_and_commits_once() {
    let file = Db::new();
    let db = MeasuredPool::new("busy", file.pool(2).await);
    setup(&db).await;

    // Another connection holds the write lock until the first retry.
    let mut holder = file.connection().await;
    sqlx::raw_sql("BEGIN IMMEDIATE; INSERT INTO t (v) VALUES ('holder')")
        .execute(&mut holder)
        .await
        .unwrap();
    let (retried_tx, retried) = tokio::sync::oneshot::channel::<()>();
    let retried_tx = std::sync::Mutex::new(Some(retried_tx));
    let release = tokio::spawn(async move {
        retried.await.unwrap();
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut holder)
            .await
            .unwrap();
    });

    let policy = RetryPolicy::builder()
        .max_attempts(20)
        .backoff(Backoff::Fixed)
        .initial_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(10))
        .on_retry(move |e: &resilience::retry::RetryEvent<'_, sqlx::Error>| {
            assert!(e.error.error().is_some_and(|e| e.is_retryable()));
            if let Some(tx) = retried_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
        })
        .build()
        .unwrap();
    let attempts = AtomicU32::new(0);
    let id = retry_transaction(&db, &policy, async |tx| {
        attempts.fetch_add(1, Ordering::Relaxed);
        let id: i64 = sqlx::query_scalar("INSERT INTO t (v) VALUES ('mine') RETURNING id")
            .fetch_one(&mut **tx)
            .await?;
        Ok::<_, sqlx::Error>(id)
    })
    .await
    .unwrap();
    release.await.unwrap();

    assert!(attempts.load(Ordering::Relaxed) >= 2, "never hit BUSY");
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, v FROM t")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(rows, vec![(id, "mine".to_owned())]);
}

#[tokio::test]
async fn real_sqlite_errors_are_classified() {
    let file = Db::new();
    let db = MeasuredPool::new("classify", file.pool(1).await);
    setup(&db).await;
    let mut holder = file.connection().await;
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let busy = sqlx::query("INSERT INTO t (v) VALUES ('x')")
        .execute(&db)
        .await
        .unwrap_err();
    let code = busy.as_database_error().and_then(|e| e.code()).unwrap();
    assert_eq!(code, "5", "{busy:?}");
    assert!(busy.is_retryable());
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();

    let syntax = sqlx::query("SELEC 1").execute(&db).await.unwrap_err();
    assert!(!syntax.is_retryable(), "{syntax:?}");
    let missing = sqlx::query("SELECT * FROM nope")
        .execute(&db)
        .await
        .unwrap_err();
    assert!(!missing.is_retryable(), "{missing:?}");
    let none = sqlx::query("SELECT 1 WHERE 0")
        .fetch_one(&db)
        .await
        .unwrap_err();
    assert!(matches!(none, sqlx::Error::RowNotFound) && !none.is_retryable());
}

#[tokio::test]
async fn retry_transaction_rolls_back_on_a_permanent_error() {
    let file = Db::new();
    let db = MeasuredPool::new("rollback", file.pool(2).await);
    setup(&db).await;
    let attempts = AtomicU32::new(0);
    let err = retry_transaction(&db, RetryPolicy::default(), async |tx| {
        attempts.fetch_add(1, Ordering::Relaxed);
        sqlx::query("INSERT INTO t (id, v) VALUES (1, 'a')")
            .execute(&mut **tx)
            .await?;
        // A unique violation: permanent.
        sqlx::query("INSERT INTO t (id, v) VALUES (1, 'b')")
            .execute(&mut **tx)
            .await?;
        Ok::<_, sqlx::Error>(())
    })
    .await
    .unwrap_err();
    assert!(
        err.as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{err:?}"
    );
    assert_eq!(attempts.load(Ordering::Relaxed), 1);
    assert_eq!(count(&db).await, 0, "the first insert was rolled back");
    // The connection went back to the pool clean: a new transaction commits.
    retry_transaction(db.pool(), RetryPolicy::default(), async |tx| {
        sqlx::query("INSERT INTO t (id, v) VALUES (1, 'c')")
            .execute(&mut **tx)
            .await
            .map(drop)
    })
    .await
    .unwrap();
    assert_eq!(count(&db).await, 1);
}

/// An application error type works as `E`, and the retried future can be spawned (`Send`).
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("insufficient funds")]
    Funds,
}

impl Retryable for AppError {
    fn is_retryable(&self) -> bool {
        matches!(self, AppError::Sql(e) if e.is_retryable())
    }
}

#[tokio::test]
async fn retry_transaction_with_an_app_error_in_a_spawned_task() {
    let file = Db::new();
    let db = MeasuredPool::new("app", file.pool(2).await);
    setup(&db).await;
    let calls = Arc::new(AtomicU32::new(0));
    let task = {
        let db = db.clone();
        let calls = Arc::clone(&calls);
        tokio::spawn(async move {
            retry_transaction(&db, RetryPolicy::default(), async move |tx| {
                calls.fetch_add(1, Ordering::Relaxed);
                sqlx::query("INSERT INTO t (v) VALUES ('x')")
                    .execute(&mut **tx)
                    .await?;
                Err::<(), _>(AppError::Funds)
            })
            .await
        })
    };
    assert!(matches!(task.await.unwrap(), Err(AppError::Funds)));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(count(&db).await, 0);
}

#[tokio::test]
async fn shutdown_hook_waits_for_the_query_in_flight_then_closes() {
    let file = Db::new();
    let db = MeasuredPool::new("shutdown", file.pool(2).await);
    let coordinator = ShutdownCoordinator::with_config(ShutdownConfig::default());
    register_pool_shutdown(&db, &coordinator).unwrap();

    let running = {
        let db = db.clone();
        tokio::spawn(async move { sqlx::query_scalar::<_, i64>(SLOW).fetch_one(&db).await })
    };
    eventually("query running", || db.stats().active == 1).await;
    let report = coordinator.shutdown().await;
    let hook = report.hook("db-pool:shutdown").expect("hook");
    assert_eq!(hook.status, HookStatus::Completed, "{report:?}");
    assert_eq!(hook.priority, resilience::Priority::HIGH);
    // The query finished before the hook did.
    assert!(running.is_finished());
    assert_eq!(running.await.unwrap().unwrap(), 400_000);
    assert!(db.is_closed());
    let err = sqlx::query("SELECT 1").execute(&db).await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolClosed), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(db.stats().total, 0);
}

#[tokio::test]
async fn shutdown_hook_is_bounded_by_its_timeout() {
    let file = Db::new();
    let db = MeasuredPool::new("bounded", file.pool(2).await);
    let coordinator = ShutdownCoordinator::new();
    register_pool_shutdown_with(
        &db,
        &coordinator,
        PoolShutdownOptions::new()
            .timeout(Duration::from_millis(50))
            .name("close-db")
            .priority(resilience::Priority::LOW),
    )
    .unwrap();
    // A connection that is never given back.
    let held = db.acquire().await.unwrap();
    let start = std::time::Instant::now();
    let report = coordinator.shutdown().await;
    assert!(start.elapsed() < Duration::from_secs(2));
    let hook = report.hook("close-db").expect("hook");
    assert_eq!(hook.status, HookStatus::TimedOut(Duration::from_millis(50)));
    assert_eq!(hook.priority, resilience::Priority::LOW);
    assert!(db.is_closed());
    drop(held);
}

/// Borrowing locals works where the future need not be `Send` (see `retry_transaction`'s docs
/// for spawned tasks: the closure then owns what it captures).
#[tokio::test]
async fn retry_transaction_closure_borrowing_locals() {
    let file = Db::new();
    let db = MeasuredPool::new("borrow", file.pool(2).await);
    setup(&db).await;
    let value = String::from("borrowed");
    let attempts = AtomicU32::new(0);
    retry_transaction(&db, RetryPolicy::default(), async |tx| {
        attempts.fetch_add(1, Ordering::Relaxed);
        sqlx::query("INSERT INTO t (v) VALUES ($1)")
            .bind(&value)
            .execute(&mut **tx)
            .await
            .map(drop)
    })
    .await
    .unwrap();
    assert_eq!(attempts.load(Ordering::Relaxed), 1);
    assert_eq!(count(&db).await, 1);
}
