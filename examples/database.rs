//! Database resilience on sqlx: `cargo run --example database` (SQLite in a temporary file, no
//! server needed), or `cargo run --example database -- --postgres postgres://user:pw@host/db`.
//!
//! The tour wraps the pool in a `MeasuredPool`, runs plain sqlx queries through it, shows the
//! health report (latency class, checks, pool figures — with the password masked), a transfer
//! in `retry_transaction` whose first attempt loses its connection (rolled back, retried,
//! committed once), a query behind the `"database"` circuit breaker, the query metrics with
//! their recommendations, and the pool closed by the shutdown hook.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::database::sqlx::{
    self, ColumnIndex, Database, Decode, Executor, IntoArguments, Type,
};
use resilience::database::{
    MeasuredPool, check_database_health_verbose, register_pool_shutdown, retry_transaction,
};
use resilience::retry::{Backoff, RetryPolicy};
use resilience::shutdown::ShutdownCoordinator;

/// The tour, the same for every driver; only the slow query differs.
async fn tour<DB>(db: MeasuredPool<DB>, slow_query: &'static str) -> anyhow::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    DB::Arguments: IntoArguments<DB>,
{
    sqlx::query("CREATE TABLE IF NOT EXISTS tour_ledger (note TEXT NOT NULL)")
        .execute(&db)
        .await?;
    sqlx::query("DELETE FROM tour_ledger").execute(&db).await?;

    println!("== health");
    let report = check_database_health_verbose(&db).await;
    let details = report.details.as_ref();
    println!(
        "{:?} in {:.1?} ({}), pool {} total / {} idle / {} active / {} waiting, server {}",
        report.status,
        report.latency,
        report
            .checks
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(" + "),
        report.pool.total,
        report.pool.idle,
        report.pool.active,
        report.pool.waiting,
        details
            .and_then(|d| d.server_version.as_deref())
            .unwrap_or("?")
            .lines()
            .next()
            .unwrap_or("?")
    );

    println!("\n== a transfer whose first attempt loses its connection");
    let attempts = AtomicU32::new(0);
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Fixed)
        .initial_delay(Duration::from_millis(50))
        .build()?;
    retry_transaction(&db, &policy, async |tx| {
        let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
        sqlx::query("INSERT INTO tour_ledger (note) VALUES ('debit')")
            .execute(&mut **tx)
            .await?;
        if n == 1 {
            println!("attempt {n}: debit written, then the connection drops (simulated)");
            return Err(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()));
        }
        sqlx::query("INSERT INTO tour_ledger (note) VALUES ('credit')")
            .execute(&mut **tx)
            .await?;
        println!("attempt {n}: debit and credit written, committing");
        Ok::<_, sqlx::Error>(())
    })
    .await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM tour_ledger")
        .fetch_one(&db)
        .await?;
    println!("rows in the ledger: {rows} (attempt 1 was rolled back, attempt 2 committed once)");

    println!("\n== behind the \"database\" breaker (5 failures / 60 s)");
    let breaker = resilience::get_circuit_breaker("database");
    let count = breaker
        .call(|| sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tour_ledger").fetch_one(&db))
        .await;
    println!(
        "count through the breaker: {:?}, breaker {:?}",
        count.ok(),
        breaker.state()
    );

    println!("\n== query metrics");
    for _ in 0..20 {
        sqlx::query("SELECT 1").execute(&db).await?;
    }
    for _ in 0..3 {
        sqlx::query(slow_query).execute(&db).await?;
    }
    let q = db.query_stats();
    println!(
        "{} queries: avg {:.1?}, min {:.1?}, max {:.1?}, p95 {:.1?}, p99 {:.1?}, {} slow (over {:?})",
        q.count, q.avg, q.min, q.max, q.p95, q.p99, q.slow, q.slow_threshold
    );
    for r in &q.recommendations {
        println!("recommendation: {r}");
    }

    println!("\n== shutdown");
    let coordinator = ShutdownCoordinator::new();
    register_pool_shutdown(&db, &coordinator)?;
    let report = coordinator.shutdown().await;
    println!(
        "shutdown {:?}; pool closed: {}",
        report.outcome,
        db.is_closed()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let postgres = args
        .iter()
        .position(|a| a == "--postgres")
        .and_then(|i| args.get(i + 1).cloned());
    match postgres {
        Some(url) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(5)
                .acquire_timeout(Duration::from_secs(2))
                .connect(&url)
                .await?;
            let db = MeasuredPool::builder("main", pool)
                .slow_query_threshold(Duration::from_millis(50))
                .build();
            println!("PostgreSQL pool `main` (5 connections)\n");
            tour(db, "SELECT pg_sleep(0.06)").await
        }
        None => {
            let dir = tempfile::tempdir()?;
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.path().join("tour.db"))
                .create_if_missing(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            let db = MeasuredPool::builder("main", pool)
                .slow_query_threshold(Duration::from_millis(5))
                .build();
            println!("SQLite pool `main` (one connection, a temporary file)\n");
            tour(
                db,
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) \
                 SELECT count(*) FROM c",
            )
            .await
        }
    }
}
