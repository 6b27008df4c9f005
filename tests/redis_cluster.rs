//! `RedisClient` on a real local Redis Cluster (3 masters, 3 replicas): every operation across
//! slots, then scenario (c): a master is killed under load, its replica is promoted and the
//! operations resume. Run with `--nocapture` for the figures.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitState};
use resilience::rate_limit::{FailurePolicy, RedisRateLimiter};
use resilience::redis::{
    KeyWriter, Keys, RateWindow, RedisClient, RedisConfig, RedisError, RedisKey,
    SharedCircuitBreaker,
};
use support::cluster::RedisCluster;
use support::processes_in_dir;

struct Item(u32);
impl RedisKey for Item {
    const NAMESPACE: &'static str = "item";
    fn write_key(&self, w: &mut KeyWriter) {
        w.literal("id:");
        w.segment(&self.0);
    }
}

async fn connect(cluster: &RedisCluster) -> RedisClient {
    let breaker = Arc::new(CircuitBreaker::new(
        "redis-cluster-test",
        CircuitBreakerConfig::builder()
            .failure_threshold(5)
            .reset_timeout(Duration::from_millis(250))
            .success_threshold(1)
            .build()
            .unwrap(),
    ));
    let seed = cluster.nodes()[0].port;
    RedisClient::connect_cluster(
        RedisConfig::builder()
            .port(seed)
            .key_prefix("cl")
            .connect_timeout(Duration::from_secs(3))
            .response_timeout(Duration::from_millis(500))
            .circuit_breaker(breaker)
            .build()
            .unwrap(),
        cluster.seeds(),
    )
    .await
    .expect("connect to the cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_operations_and_master_failover() {
    let started = Instant::now();
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(1000));
    let dir = cluster.dir().to_owned();
    println!(
        "--- cluster formed in {} ms ---",
        started.elapsed().as_millis()
    );
    let redis = connect(&cluster).await;

    // Plain commands land on every master: 60 keys spread over the slots.
    for i in 0..60u32 {
        redis.set(&Item(i), i, None).await.unwrap();
    }
    for i in 0..60u32 {
        assert_eq!(redis.get::<_, u32>(&Item(i)).await.unwrap(), Some(i));
    }
    let mut masters_used = std::collections::HashSet::new();
    for i in 0..60u32 {
        let k = redis.key(&Item(i)).unwrap();
        masters_used.insert(cluster.master_for_key(&k).expect("slot owner").0);
    }
    assert_eq!(
        masters_used.len(),
        3,
        "keys did not spread over the masters"
    );
    // Scripts: one-key (rate limit, optimistic writes) and two-key under one hash tag (locks).
    let rk = Keys::rate_api_key("cluster", RateWindow::Minute);
    let d = redis.rate_limit(&rk, 3, 1.0, 1).await.unwrap();
    assert!(d.allowed && d.remaining == 2, "{d:?}");
    for n in 0..8u32 {
        let g = redis
            .acquire_lock(&Keys::lock(format!("res-{n}")), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(
            redis
                .acquire_lock(&Keys::lock(format!("res-{n}")), Duration::from_secs(5))
                .await,
            Err(RedisError::LockBusy { .. })
        ));
        g.release().await.unwrap();
    }
    let v = Keys::idempotency("orders", "o-1");
    assert!(redis.create_if_not_exists(&v, "a", None).await.unwrap());
    assert_eq!(redis.conditional_update(&v, 1, "b").await.unwrap(), 2);
    // The shared breaker's scripts, too.
    let shared = SharedCircuitBreaker::builder(redis.clone(), "cluster-shared")
        .failure_threshold(1)
        .build()
        .unwrap();
    assert_eq!(shared.state().await.unwrap(), CircuitState::Closed);
    shared.try_acquire().await.unwrap().failure().await;
    assert_eq!(shared.state().await.unwrap(), CircuitState::Open);
    shared.reset().await.unwrap();
    assert_eq!(shared.state().await.unwrap(), CircuitState::Closed);

    // Scenario (c): kill the master that owns `Item(0)`'s slot, under load.
    let victim_key = redis.key(&Item(0)).unwrap();
    let (victim, victim_id) = cluster.master_for_key(&victim_key).unwrap();
    let replica = cluster
        .replica_of(&victim_id)
        .expect("the victim has a replica");
    // Make sure the replica has the data before the master dies (replication is async).
    let acked = cluster.cli(victim, &["WAIT", "1", "2000"]);
    assert_eq!(acked, "1", "replica did not acknowledge");

    let limiter = RedisRateLimiter::builder(redis.clone(), "cl")
        .capacity(1_000_000)
        .refill_per_sec(1_000_000.0)
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let load = {
        let (redis, stop) = (redis.clone(), stop.clone());
        tokio::spawn(async move {
            // (since t0, latency, ok)
            let mut samples: Vec<(Duration, Duration, bool)> = Vec::new();
            let mut n = 1000u32;
            while !stop.load(Ordering::Relaxed) && samples.len() < 50_000 {
                let t = Instant::now();
                n += 1;
                // Writes and a script on the victim's slots and on a healthy master's.
                let ok = redis.set(&Item(0), n, None).await.is_ok()
                    && redis
                        .get::<_, u32>(&Item(0))
                        .await
                        .map(|v| v == Some(n))
                        .unwrap_or(false)
                    && limiter.check("victim", 1).await.is_ok();
                samples.push((t - t0, t.elapsed(), ok));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = t0.elapsed();
    tokio::task::block_in_place(|| cluster.kill(victim));
    // Promotion: the replica becomes master (bounded).
    let promoted = tokio::task::block_in_place(|| {
        cluster.wait_until(Duration::from_secs(20), "the replica's promotion", |c| {
            c.role(replica) == "master"
        });
        t0.elapsed()
    });
    // Keep the load up until it has run cleanly for a while (bounded).
    let resume_limit = Instant::now() + Duration::from_secs(20);
    while Instant::now() < resume_limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if redis.get::<_, u32>(&Item(0)).await.is_ok() {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = load.await.unwrap();

    let failures: Vec<_> = samples.iter().filter(|s| !s.2).collect();
    let first_fail = failures.first().map(|s| s.0);
    let last_fail_end = failures.last().map(|s| s.0 + s.1);
    let resumed = samples
        .iter()
        .filter(|s| s.2 && Some(s.0) > first_fail)
        .map(|s| s.0 + s.1)
        .next();
    let slowest = samples.iter().map(|s| s.1).max().unwrap();
    println!("--- scenario (c): master on port {victim} killed, replica {replica} ---");
    println!(
        "iterations {} (each: SET + GET + rate-limit script), failed {}; slowest {} ms",
        samples.len(),
        failures.len(),
        slowest.as_millis()
    );
    println!(
        "replica promoted {} ms after the kill; error window {} ms (first failure +{} ms, \
         last failure ended +{} ms after the kill); operations resumed {} ms after the kill",
        (promoted - killed_at).as_millis(),
        match (first_fail, last_fail_end) {
            (Some(a), Some(b)) => (b - a).as_millis(),
            _ => 0,
        },
        first_fail.map_or(0, |a| a.saturating_sub(killed_at).as_millis()),
        last_fail_end.map_or(0, |b| b.saturating_sub(killed_at).as_millis()),
        resumed.map_or(0, |r| r.saturating_sub(killed_at).as_millis()),
    );
    assert!(!failures.is_empty(), "killing a master went unnoticed");
    assert!(
        // (an iteration under way at the kill may fail: it ends after it)
        failures.iter().all(|s| s.0 + s.1 >= killed_at),
        "failures before the kill"
    );
    // Each iteration is three calls, each within its deadline (500 ms) plus slack.
    assert!(
        slowest < Duration::from_millis(3 * 500 + 750),
        "a call hung: {slowest:?}"
    );
    let resumed = resumed.expect("operations never resumed");
    assert!(
        resumed - killed_at < Duration::from_secs(15),
        "operations resumed only after {:?}",
        resumed - killed_at
    );
    // Once resumed, they stay healthy.
    let tail_from = last_fail_end.unwrap();
    assert!(samples.iter().filter(|s| s.0 > tail_from).count() > 10);
    // Data written before the failover survived on the promoted replica (it had acknowledged).
    for i in 1..60u32 {
        assert_eq!(redis.get::<_, u32>(&Item(i)).await.unwrap(), Some(i));
    }
    assert!(cluster.all_ok(), "cluster not ok after the failover");

    drop(redis);
    drop(cluster);
    assert!(
        processes_in_dir(&dir).is_empty(),
        "a cluster node outlived the test"
    );
}

#[tokio::test]
async fn cluster_checks_tls_files_and_rejects_nonzero_db() {
    // TLS options apply to the cluster: a missing CA file is reported before any connection.
    let config = RedisConfig::builder()
        .tls_ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap();
    let e = RedisClient::connect_cluster(config, [("127.0.0.1", 1u16)])
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::TlsFile { .. }), "{e:?}");
    let config = RedisConfig::builder().db(2).build().unwrap();
    let e = RedisClient::connect_cluster(config, [("127.0.0.1", 1u16)])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("db"), "{e}");
}

/// A key type with its own hash tag (empty for an empty id).
struct Tagged(String);
impl RedisKey for Tagged {
    const NAMESPACE: &'static str = "tagged";
    fn write_key(&self, w: &mut KeyWriter) {
        w.literal("x:");
        w.open_hash_tag();
        w.segment(self.0.as_str());
        w.close_hash_tag();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_keep_every_script_on_one_slot() {
    let cluster =
        tokio::task::block_in_place(|| RedisCluster::builder().masters_only().start(1000));
    let redis = connect(&cluster).await;
    let asker = cluster.nodes()[0].port;
    let slot = |key: &str| cluster.cli(asker, &["CLUSTER", "KEYSLOT", key]);
    let mut names = support::hostile_names();
    names.push("}{".to_owned());
    let mut lock_slots = std::collections::HashSet::new();
    for name in &names {
        // A lock by name and a lock on a key with its own (possibly empty) tag: lock and fence
        // in one slot, so no CROSSSLOT, whatever the name.
        for g in [
            redis
                .acquire_lock(&Keys::lock(name.as_str()), Duration::from_secs(5))
                .await,
            redis
                .acquire_lock(&Tagged(name.clone()), Duration::from_secs(5))
                .await,
        ] {
            let g = g.unwrap_or_else(|e| panic!("lock {name:?}: {e}"));
            assert!(g.key().starts_with("cl:{"), "{}", g.key());
            let fence = format!("{}:fence", g.key());
            assert_eq!(slot(g.key()), slot(&fence), "{name:?}");
            lock_slots.insert(slot(g.key()));
            g.extend(Duration::from_secs(5)).await.unwrap();
            g.release().await.unwrap();
        }
        // The key's own tag is never empty: `{}` would hash the whole key instead.
        let tagged = redis.key(&Tagged(name.clone())).unwrap();
        assert!(!tagged.contains("{}"), "{tagged}");
        // One-key scripts with the same names.
        let d = redis
            .rate_limit(
                &Keys::rate_api_key(name.as_str(), RateWindow::Minute),
                2,
                1.0,
                1,
            )
            .await
            .unwrap();
        assert!(d.allowed);
        let v = Keys::idempotency(name.as_str(), name.as_str());
        assert!(redis.create_if_not_exists(&v, "a", None).await.unwrap());
        assert_eq!(redis.conditional_update(&v, 1, "b").await.unwrap(), 2);
    }
    // The names spread over several slots (the tag is the name, not a constant).
    assert!(lock_slots.len() > 5, "{lock_slots:?}");
    // Two empty tags of different key families share a slot, as their tags promise.
    struct Other(String);
    impl RedisKey for Other {
        const NAMESPACE: &'static str = "other";
        fn write_key(&self, w: &mut KeyWriter) {
            w.open_hash_tag();
            w.segment(self.0.as_str());
            w.close_hash_tag();
        }
    }
    assert_eq!(
        slot(&redis.key(&Tagged(String::new())).unwrap()),
        slot(&redis.key(&Other(String::new())).unwrap())
    );
}
