//! `RedisClient` through Redis Sentinel (1 master, 1 replica, 3 sentinels on loopback), and
//! scenario (d): after a failover the client follows the new master — first a graceful
//! `SENTINEL FAILOVER` (the old master turns read-only replica), then the new master is killed
//! (its address goes dead). Run with `--nocapture` for the figures.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig};
use resilience::redis::{KeyWriter, RedisClient, RedisConfig, RedisError, RedisKey};
use support::processes_in_dir;
use support::sentinel::{MASTER_NAME, SentinelSetup};

struct Counter;
impl RedisKey for Counter {
    const NAMESPACE: &'static str = "counter";
    fn write_key(&self, w: &mut KeyWriter) {
        w.literal("writes");
    }
}

async fn connect(setup: &SentinelSetup) -> Result<RedisClient, RedisError> {
    let breaker = Arc::new(CircuitBreaker::new(
        "redis-sentinel-test",
        CircuitBreakerConfig::builder()
            .failure_threshold(5)
            .reset_timeout(Duration::from_millis(250))
            .success_threshold(1)
            .build()
            .unwrap(),
    ));
    RedisClient::connect_sentinel(
        RedisConfig::builder()
            .key_prefix("snt")
            .connect_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_millis(500))
            .circuit_breaker(breaker)
            .build()
            .unwrap(),
        MASTER_NAME,
        setup.sentinel_addrs(),
    )
    .await
}

/// Writes under load while `fault` runs; returns the figures and checks the client ends up
/// writing to `expect_master`.
async fn failover_phase(
    name: &str,
    redis: &RedisClient,
    setup: &mut SentinelSetup,
    expect_master: u16,
    fault: impl FnOnce(&mut SentinelSetup),
) {
    let stop = Arc::new(AtomicBool::new(false));
    let last_written = Arc::new(AtomicU32::new(0));
    let t0 = Instant::now();
    let load = {
        let (redis, stop, last) = (redis.clone(), stop.clone(), last_written.clone());
        tokio::spawn(async move {
            let mut samples: Vec<(Duration, Duration, Result<(), &'static str>)> = Vec::new();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && samples.len() < 50_000 {
                n += 1;
                let t = Instant::now();
                let r = redis.set(&Counter, n, None).await;
                if r.is_ok() {
                    last.store(n, Ordering::Relaxed);
                }
                samples.push((t - t0, t.elapsed(), r.map_err(|e| e.kind())));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fault_at = t0.elapsed();
    tokio::task::block_in_place(|| fault(setup));
    let switched = tokio::task::block_in_place(|| {
        setup.wait_until(
            Duration::from_secs(30),
            "the sentinels to switch master",
            |s| s.current_master_port() == Some(expect_master),
        );
        t0.elapsed()
    });
    // Until the client's latest write is on the new master (bounded), then a little longer.
    let key = redis.key(&Counter).unwrap();
    // A value written before the switch may reach the new master by replication; only a later
    // one shows the client writing there.
    let written_before_switch = last_written.load(Ordering::Relaxed);
    let limit = Instant::now() + Duration::from_secs(15);
    let followed = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The writer goes on meanwhile: the new master holding this write or a later one
        // shows the client follows it (an equality check loses the race when `redis-cli`
        // takes longer than the writer's 10 ms pace, as on a loaded machine).
        let last = last_written.load(Ordering::Relaxed);
        let there = tokio::task::block_in_place(|| setup.cli(expect_master, &["GET", &key]));
        if last > written_before_switch
            && there.trim().parse::<u32>().is_ok_and(|v| v >= last)
            && Instant::now() > t0 + switched
        {
            break Some(t0.elapsed());
        }
        if Instant::now() > limit {
            break None;
        }
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = load.await.unwrap();

    let failures: Vec<_> = samples.iter().filter(|s| s.2.is_err()).collect();
    let mut kinds: Vec<&str> = failures.iter().filter_map(|s| s.2.err()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let first_fail = failures.first().map(|s| s.0);
    let last_fail_end = failures.last().map(|s| s.0 + s.1);
    let resumed = samples
        .iter()
        .filter(|s| s.2.is_ok() && s.0 >= fault_at && Some(s.0) > first_fail)
        .map(|s| s.0 + s.1)
        .next();
    let slowest = samples.iter().map(|s| s.1).max().unwrap();
    println!("--- scenario (d): {name} ---");
    println!(
        "client writes to the new master {} ms after the fault",
        followed.map_or(-1, |f| f.saturating_sub(fault_at).as_millis() as i64)
    );
    println!(
        "writes {}, failed {} ({kinds:?}); slowest {} ms; sentinels switched {} ms after the \
         fault; error window {} ms; writes resumed {} ms after the fault",
        samples.len(),
        failures.len(),
        slowest.as_millis(),
        (switched - fault_at).as_millis(),
        match (first_fail, last_fail_end) {
            (Some(a), Some(b)) => (b - a).as_millis(),
            _ => 0,
        },
        resumed.map_or(0, |r| r.saturating_sub(fault_at).as_millis()),
    );
    assert!(
        slowest < Duration::from_millis(500 + 750),
        "a write hung: {slowest:?}"
    );
    let tail: Vec<_> = samples
        .iter()
        .filter(|s| Some(s.0) > last_fail_end.or(Some(switched)))
        .collect();
    assert!(tail.len() > 10, "too few writes after the failover");
    assert!(tail.iter().all(|s| s.2.is_ok()));
    // The client writes to the new master: the last value is there.
    let last = last_written.load(Ordering::Relaxed);
    assert!(
        followed.is_some(),
        "the client never wrote to the new master"
    );
    assert_eq!(
        setup.cli(expect_master, &["GET", &key]),
        last.to_string(),
        "the last write did not land on the new master"
    );
    assert!(
        setup
            .cli(expect_master, &["INFO", "replication"])
            .contains("role:master")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_clients_follow_the_new_master() {
    let started = Instant::now();
    let mut setup = tokio::task::block_in_place(|| SentinelSetup::start(1000));
    let dir = setup.dir().to_owned();
    println!(
        "--- sentinel setup ready in {} ms ---",
        started.elapsed().as_millis()
    );
    let redis = connect(&setup).await.expect("connect through sentinel");
    let (master, replica) = (setup.master_port(), setup.replica_port());
    redis.set(&Counter, 0u32, None).await.unwrap();
    let key = redis.key(&Counter).unwrap();
    assert_eq!(
        setup.cli(master, &["GET", &key]),
        "0",
        "discovered the master"
    );

    // Phase 1: graceful failover; the old master becomes a read-only replica.
    failover_phase(
        "SENTINEL FAILOVER (the old master stays up, writable for a while)",
        &redis,
        &mut setup,
        replica,
        |s| {
            let port = s.sentinel_port(0);
            let out = s.cli(port, &["SENTINEL", "FAILOVER", MASTER_NAME]);
            assert_eq!(out, "OK", "SENTINEL FAILOVER");
        },
    )
    .await;

    // Phase 2: the new master dies; the demoted one is promoted back.
    tokio::task::block_in_place(|| {
        setup.wait_until(Duration::from_secs(30), "the old master to resync", |s| {
            s.cli(master, &["INFO", "replication"])
                .contains("master_link_status:up")
                && (0..3).all(|i| {
                    s.cli(s.sentinel_port(i), &["SENTINEL", "REPLICAS", MASTER_NAME])
                        .contains(&master.to_string())
                })
        })
    });
    failover_phase(
        "master killed (its address goes dead)",
        &redis,
        &mut setup,
        master,
        |s| s.kill_port(replica),
    )
    .await;

    drop(redis);
    drop(setup);
    assert!(
        processes_in_dir(&dir).is_empty(),
        "a server outlived the test"
    );
}

#[tokio::test]
async fn sentinel_config_errors_are_typed() {
    let e = RedisClient::connect_sentinel(
        RedisConfig::builder().build().unwrap(),
        "",
        [("127.0.0.1", 1u16)],
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("master_name"), "{e}");
    let none: [(&str, u16); 0] = [];
    let e = RedisClient::connect_sentinel(RedisConfig::builder().build().unwrap(), "m", none)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("sentinels"), "{e}");
    // Nothing listens on port 1: a clear connect error, within the connect timeout.
    let t = Instant::now();
    let e = RedisClient::connect_sentinel(
        RedisConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
        "m",
        [("127.0.0.1", 1u16)],
    )
    .await
    .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(e, RedisError::Connect { .. } | RedisError::Timeout { .. }),
        "{e:?}"
    );
}
