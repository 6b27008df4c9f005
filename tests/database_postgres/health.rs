//! Latency classes: a `pg_sleep` probe, a stalled (SIGSTOPped) backend, configurable thresholds,
//! the timeout, and the check in a `HealthRegistry`.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use resilience::database::sqlx;
use resilience::database::{
    DatabaseHealthCheck, DatabaseHealthConfig, DatabaseHealthReport, check_database_health,
    check_database_health_with,
};
use resilience::health::{HealthRegistry, HealthStatus};

use crate::support::postgres::PostgresServer;
use crate::support::process::Stall;
use crate::{LIMIT, measured, warm};

fn probe(sql: &'static str) -> DatabaseHealthConfig {
    DatabaseHealthConfig {
        query: Cow::Borrowed(sql),
        ..DatabaseHealthConfig::default()
    }
}

fn names(report: &DatabaseHealthReport) -> Vec<&'static str> {
    report.checks.iter().map(|c| c.name).collect()
}

#[tokio::test]
async fn latency_classes_by_a_pg_sleep_probe() {
    let pg = PostgresServer::start();
    // One connection, opened before measuring: classes are about the round trip.
    let db = measured(&pg, 1, LIMIT);
    warm(&db, 1).await;

    let fast = check_database_health(&db).await;
    eprintln!("SELECT 1 probe: {:?}", fast.latency);
    assert_eq!(fast.status, HealthStatus::Healthy, "{fast:?}");
    assert!(fast.latency < Duration::from_millis(100), "{fast:?}");
    assert_eq!(fast.error, None);
    assert_eq!(names(&fast), ["acquire", "query"]);
    assert!(
        fast.checks
            .iter()
            .all(|c| c.status == HealthStatus::Healthy)
    );
    assert_eq!((fast.pool.total, fast.pool.waiting), (1, 0), "{fast:?}");

    let slow = check_database_health_with(&db, &probe("SELECT pg_sleep(0.2)")).await;
    eprintln!("pg_sleep(0.2) probe: {:?}", slow.latency);
    assert_eq!(slow.status, HealthStatus::Degraded, "{slow:?}");
    assert!(slow.latency >= Duration::from_millis(200), "{slow:?}");
    assert!(slow.latency <= Duration::from_millis(500), "{slow:?}");
    assert_eq!(slow.error, None);

    let too_slow = check_database_health_with(&db, &probe("SELECT pg_sleep(0.6)")).await;
    eprintln!("pg_sleep(0.6) probe: {:?}", too_slow.latency);
    assert_eq!(too_slow.status, HealthStatus::Unhealthy, "{too_slow:?}");
    assert!(
        too_slow.latency > Duration::from_millis(500),
        "{too_slow:?}"
    );
    assert_eq!(too_slow.error, None, "slow, not failed");

    // Thresholds are the caller's: 20 ms of sleep is degraded under a 10 / 50 ms scale, 80 ms
    // unhealthy, and 200 ms healthy under a 1 s / 2 s one.
    let strict = |sql| DatabaseHealthConfig {
        degraded_after: Duration::from_millis(10),
        unhealthy_after: Duration::from_millis(50),
        ..probe(sql)
    };
    let lenient = DatabaseHealthConfig {
        degraded_after: Duration::from_secs(1),
        unhealthy_after: Duration::from_secs(2),
        ..probe("SELECT pg_sleep(0.2)")
    };
    let r = check_database_health_with(&db, &strict("SELECT pg_sleep(0.02)")).await;
    assert_eq!(r.status, HealthStatus::Degraded, "{r:?}");
    let r = check_database_health_with(&db, &strict("SELECT pg_sleep(0.08)")).await;
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    let r = check_database_health_with(&db, &lenient).await;
    assert_eq!(r.status, HealthStatus::Healthy, "{r:?}");

    // A failing probe is unhealthy with the server's reason, whatever its latency.
    let r = check_database_health_with(&db, &probe("SELECT * FROM no_such_table")).await;
    assert_eq!(r.status, HealthStatus::Unhealthy, "{r:?}");
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("no_such_table")),
        "{r:?}"
    );
}

/// Returned to the pool, the cut probe's connection would be pinged first, and the ping waits
/// for the cut query's reply: the pool's only slot would stay taken for the rest of the sleep
/// and the next check time out in acquire. The probe closes a cut connection instead.
#[tokio::test]
async fn a_probe_over_the_timeout_is_cut_and_the_next_check_is_healthy() {
    let pg = PostgresServer::start();
    // One connection: the cut probe's connection is the one the next check needs.
    let db = measured(&pg, 1, LIMIT);
    warm(&db, 1).await;
    let config = DatabaseHealthConfig {
        timeout: Duration::from_millis(300),
        ..probe("SELECT pg_sleep(3)")
    };
    let started = Instant::now();
    let cut = check_database_health_with(&db, &config).await;
    let took = started.elapsed();
    eprintln!("pg_sleep(3) probe under a 300 ms timeout returned after {took:?}");
    assert_eq!(cut.status, HealthStatus::Unhealthy, "{cut:?}");
    assert!(took < Duration::from_millis(600), "{took:?}");
    assert!(
        cut.error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{cut:?}"
    );
    assert_eq!(names(&cut), ["acquire", "query"]);
    assert_eq!(cut.checks[1].status, HealthStatus::Unhealthy);

    // The connection the cut probe was using still has the sleep's reply to come: the next
    // check must not wait for it (nor, in general, a cut probe hold a pool slot until the
    // server answers — periodic checks against a slow server would pile up on the pool).
    let started = Instant::now();
    let next = check_database_health(&db).await;
    let took = started.elapsed();
    eprintln!("check after a cut probe: {took:?}: {next:?}");
    assert_eq!(next.error, None, "{next:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn a_stalled_backend_grades_degraded_then_unhealthy() {
    let pg = PostgresServer::start();
    // One connection: the stalled backend is the one the check must use.
    let db = measured(&pg, 1, LIMIT);
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&db)
        .await
        .expect("backend pid");
    let pid = u32::try_from(pid).expect("a pid");
    assert_eq!(pg.app_backend_pids(), [pid]);

    let healthy = check_database_health(&db).await;
    assert_eq!(healthy.status, HealthStatus::Healthy, "{healthy:?}");

    let stall = Stall::new(pid, Duration::from_millis(200));
    let degraded = check_database_health(&db).await;
    drop(stall);
    eprintln!("backend stopped 200 ms: check took {:?}", degraded.latency);
    assert_eq!(degraded.status, HealthStatus::Degraded, "{degraded:?}");
    assert!(
        degraded.latency >= Duration::from_millis(150),
        "{degraded:?}"
    );

    let stall = Stall::new(pid, Duration::from_millis(700));
    let unhealthy = check_database_health(&db).await;
    drop(stall);
    eprintln!("backend stopped 700 ms: check took {:?}", unhealthy.latency);
    assert_eq!(unhealthy.status, HealthStatus::Unhealthy, "{unhealthy:?}");
    assert!(
        unhealthy.latency > Duration::from_millis(500),
        "{unhealthy:?}"
    );

    // A backend that stays stopped: the check ends at its timeout, unhealthy with an error.
    let config = DatabaseHealthConfig {
        timeout: Duration::from_millis(400),
        ..DatabaseHealthConfig::default()
    };
    let stall = Stall::new(pid, Duration::from_secs(2));
    let started = Instant::now();
    let hung = check_database_health_with(&db, &config).await;
    let took = started.elapsed();
    drop(stall);
    assert_eq!(hung.status, HealthStatus::Unhealthy, "{hung:?}");
    assert!(hung.error.is_some(), "{hung:?}");
    assert!(took < Duration::from_millis(700), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_in_a_registry_follows_the_server() {
    let mut pg = PostgresServer::start();
    let db = measured(&pg, 2, Duration::from_millis(300));
    warm(&db, 1).await;
    let registry = HealthRegistry::new();
    registry.required(DatabaseHealthCheck::new(db.clone()).named("postgres"));

    let up = registry.check().await;
    assert_eq!(up.status, HealthStatus::Healthy, "{up:?}");
    assert!(up.is_ready());

    tokio::task::block_in_place(|| pg.stop());
    let down = registry.check().await;
    assert_eq!(down.status, HealthStatus::Unhealthy, "{down:?}");
    assert!(!down.is_ready());
    let check = down.check("postgres").expect("the check");
    assert!(check.message.is_some(), "{check:?}");

    tokio::task::block_in_place(|| pg.start_again());
    // The first check after the restart opens a connection, which may grade it degraded on a
    // loaded machine: back means ready, with no error.
    let again = registry.check().await;
    assert!(again.is_ready(), "{again:?}");
    let check = again.check("postgres").expect("the check");
    assert_ne!(check.status, HealthStatus::Unhealthy, "{check:?}");
}
