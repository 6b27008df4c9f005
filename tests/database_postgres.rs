//! Issue 12's failure scenarios on a real PostgreSQL server (one private server per test, from
//! `tests/support/postgres.rs`): latency classes, the server stopped or killed and restarted
//! under load, a backend killed mid-transaction, pool exhaustion, serialization conflicts and
//! deadlocks, redaction, and the shutdown hook. Measured figures are printed with `eprintln!`
//! (`cargo nextest run --test database_postgres --no-capture`).

mod support;

#[path = "database_postgres/health.rs"]
mod health;
#[path = "database_postgres/outage.rs"]
mod outage;
#[path = "database_postgres/pool.rs"]
mod pool;
#[path = "database_postgres/transactions.rs"]
mod transactions;

use std::time::Duration;

use resilience::database::sqlx::Postgres;
use resilience::database::sqlx::postgres::PgPoolOptions;
use resilience::database::{MeasuredPool, PoolStats};
use support::postgres::PostgresServer;

/// Bounds every wait a test makes on the server, so a broken case fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(20);

/// A measured pool (named `main`) of at most `max` connections on the server's `app` database,
/// with this acquire timeout; connects lazily, so it can be built while the server is down.
fn measured(pg: &PostgresServer, max: u32, acquire_timeout: Duration) -> MeasuredPool<Postgres> {
    let pool = PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        .connect_lazy(&pg.url())
        .expect("a valid URL");
    MeasuredPool::new("main", pool)
}

/// Opens `n` connections at once and waits until they are idle in the pool again. A new
/// connection costs a SCRAM handshake (tens of ms in a debug build), which would otherwise count
/// in the first latencies a test measures.
async fn warm(db: &MeasuredPool<Postgres>, n: usize) {
    let deadline = std::time::Instant::now() + LIMIT;
    let mut open = Vec::new();
    // Acquire again what timed out: a short acquire timeout can be shorter than a handshake on
    // a loaded machine.
    while open.len() < n && std::time::Instant::now() < deadline {
        let more = futures_util::future::join_all((open.len()..n).map(|_| db.acquire())).await;
        open.extend(more.into_iter().filter_map(Result::ok));
    }
    assert_eq!(
        open.len(),
        n,
        "could not open {n} connections: {:?}",
        db.stats()
    );
    drop(open);
    settled(db).await;
}

/// Waits until every connection is back idle: sqlx returns a dropped connection from a spawned
/// task, after a ping, so right after a drop it still counts as active.
async fn settled(db: &MeasuredPool<Postgres>) -> PoolStats {
    support::poll_until(LIMIT, async || {
        let s = db.stats();
        (s.idle == s.total && s.waiting == 0).then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("connections not returned: {:?}", db.stats()))
}

/// Connections role `app` has open on the server, as the server counts them.
fn app_connections(pg: &PostgresServer) -> usize {
    pg.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'")
        .parse()
        .expect("a count")
}

#[test]
fn support_server_starts_restarts_and_is_killed() {
    let mut pg = PostgresServer::start();
    assert_eq!(pg.psql("SELECT current_database()"), "app");
    pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let port = pg.port();
    pg.restart();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "1");
    pg.kill();
    assert!(pg.try_psql("SELECT 1").is_err());
    pg.start_again();
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "1");
    let dir = pg.dir().to_owned();
    assert!(!support::processes_in_dir(&dir).is_empty());
    drop(pg);
    assert!(!dir.exists(), "the temporary directory is removed");
    // SIGKILL is delivered at once but a process takes a moment to go.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !support::processes_in_dir(&dir).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        support::processes_in_dir(&dir),
        Vec::<u32>::new(),
        "no server process left"
    );
}
