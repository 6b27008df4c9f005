//! `SELECT 1` through bare sqlx and through `MeasuredPool` (query metrics on) against one private
//! PostgreSQL, in one run; the cost of a health check in round trips; and the query metrics'
//! memory over 10^6 queries (SQLite in memory, the same histogram).
//!
//! The two sides alternate in rounds of `BATCH` sequential queries on one connection pool of 4
//! (one task: latency, not throughput), and each round's median per-query time is kept; the
//! figure is the median of the rounds' medians, so drift in the machine's load hits both sides.
//!
//! Run: `cargo bench --bench database` (`DB_BENCH_ROUNDS`, default 30).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use resilience::database::sqlx;
use resilience::database::{MeasuredPool, check_database_health};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;

const BATCH: usize = 2_000;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn bare_round(pool: &sqlx::PgPool) -> Duration {
    let mut t = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        let s = Instant::now();
        let _: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(pool)
            .await
            .expect("select");
        t.push(s.elapsed());
    }
    median(t)
}

async fn measured_round(pool: &MeasuredPool<sqlx::Postgres>) -> Duration {
    let mut t = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        let s = Instant::now();
        let _: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(pool)
            .await
            .expect("select");
        t.push(s.elapsed());
    }
    median(t)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds: usize = std::env::var("DB_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2 } else { 40 });
    let server = support::postgres::PostgresServer::start();
    // One thread: no cross-thread wake-ups in the per-query latency (they are most of the
    // run-to-run noise on this 2-core machine).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let bare = PgPoolOptions::new().max_connections(4).connect(&server.url()).await.expect("pool");
        let raw = PgPoolOptions::new().max_connections(4).connect(&server.url()).await.expect("pool");
        let measured = MeasuredPool::new("bench", raw);
        // Warm both pools and the server's caches.
        bare_round(&bare).await;
        measured_round(&measured).await;

        let (mut b, mut m) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            if round % 2 == 0 {
                b.push(bare_round(&bare).await);
                m.push(measured_round(&measured).await);
            } else {
                m.push(measured_round(&measured).await);
                b.push(bare_round(&bare).await);
            }
        }
        let (bm, mm) = (median(b), median(m));
        println!("SELECT 1, PostgreSQL on loopback, {rounds} alternating rounds of {BATCH}, median of round medians:");
        println!("  bare sqlx Pool        {bm:>10.2?}");
        println!(
            "  MeasuredPool (metrics) {mm:>10.2?}   ratio {:.3} (target <= 1.03)",
            mm.as_secs_f64() / bm.as_secs_f64()
        );
        let q = measured.query_stats();
        println!(
            "  recorded {} queries: avg {:.2?} p95 {:.2?} p99 {:.2?} max {:.2?}",
            q.count, q.avg, q.p95, q.p99, q.max
        );

        // The health check's cost, against one round trip: a simple-protocol `SELECT 1` on a
        // dedicated connection. Both are spaced 5 ms apart, as a monitor spaces
        // checks (back to back, the previous check's connection is still in sqlx's return ping, and the check
        // falls back to an acquire that pings).
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&server.url()).await.expect("connect");
        let mut one = Vec::new();
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let s = Instant::now();
            conn.execute("SELECT 1").await.expect("select");
            one.push(s.elapsed());
        }
        let mut checks = Vec::new();
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let s = Instant::now();
            let r = check_database_health(&measured).await;
            checks.push(s.elapsed());
            assert!(r.error.is_none(), "{r:?}");

        }
        let (one, check) = (median(one), median(checks));
        println!(
            "  health check {check:.2?} (median of 500) vs one round trip {one:.2?}: {:.2}x",
            check.as_secs_f64() / one.as_secs_f64()
        );
    });

    // Memory of the query metrics over 10^6 queries (SQLite in memory: same histogram, fast).
    rt.block_on(async {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("sqlite");
        let measured = MeasuredPool::new("mem", pool);
        let total = if quick { 10_000 } else { 1_000_000 };
        let mut next = 1_000;
        let mut line = Vec::new();
        for i in 1..=total {
            let _: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&measured)
                .await
                .expect("select");
            if i == next {
                line.push(format!("{i}: {} B", measured.query_metrics_memory_bytes()));
                next *= 10;
            }
        }
        assert_eq!(measured.query_stats().count, total as u64);
        println!("query metrics memory after n queries: {}", line.join(", "));
    });
}
