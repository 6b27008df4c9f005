//! Locks as users of Redisson and redislock expect — bounded waits, the watchdog and its loss
//! signal, release by owner id — and `RedisClient::close`, against real redis-servers.

#[path = "support/example.rs"]
mod example;
mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset};
use resilience::redis::{Keys, LockOwner, RedisClient, RedisConfig, RedisError, driver};
use support::{RedisServer, poll_until};

async fn client_with(server: &RedisServer, response_timeout: Duration) -> RedisClient {
    let config = RedisConfig::builder()
        .port(server.port())
        .key_prefix("t")
        .response_timeout(response_timeout)
        // A breaker per test: a test that stops its server cannot open another's.
        .circuit_breaker(Arc::new(CircuitBreaker::new(
            "redis-locks-test",
            CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Tolerant),
        )))
        .build()
        .unwrap();
    RedisClient::connect(config).await.unwrap()
}

async fn client(server: &RedisServer) -> RedisClient {
    client_with(server, Duration::from_secs(2)).await
}

/// EVALSHA calls the server ran since the last `CONFIG RESETSTAT` (each lock attempt is one).
fn evalsha_calls(server: &RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn a_bounded_wait_gets_the_lock_once_the_holder_releases() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("contended");
    let first = redis
        .acquire_lock(&key, Duration::from_secs(30))
        .await
        .unwrap();
    server.cli(&["CONFIG", "RESETSTAT"]);
    let waiter = {
        let redis = redis.clone();
        tokio::spawn(async move {
            redis
                .lock(&Keys::lock("contended"))
                .ttl(Duration::from_secs(30))
                .wait(Duration::from_secs(20))
                .acquire()
                .await
        })
    };
    // The waiter is retrying (not given up, not sleeping out the holder's 30 s TTL).
    poll_until(Duration::from_secs(5), async || {
        (evalsha_calls(&server) >= 3).then_some(())
    })
    .await
    .expect("the waiter retries while the lock is held");
    assert!(!waiter.is_finished());
    let first_token = first.fencing_token();
    first.release().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter gets the lock soon after the release")
        .unwrap()
        .unwrap();
    assert!(second.fencing_token() > first_token);
    second.release().await.unwrap();
}

#[tokio::test]
async fn a_bounded_wait_gives_up_at_its_bound() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("held");
    let holder = redis
        .acquire_lock(&key, Duration::from_secs(30))
        .await
        .unwrap();
    server.cli(&["CONFIG", "RESETSTAT"]);
    let bound = Duration::from_millis(200);
    let start = Instant::now();
    let e = redis
        .lock(&key)
        .wait(bound)
        .acquire()
        .await
        .expect_err("the lock stays held");
    let waited = start.elapsed();
    let RedisError::LockBusy { retry_after } = e else {
        panic!("{e:?}")
    };
    assert!(retry_after > Duration::from_secs(20), "{retry_after:?}");
    assert!(waited >= bound, "gave up early: {waited:?}");
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    let attempts = evalsha_calls(&server);
    assert!(
        (3..=30).contains(&attempts),
        "10 ms doubling to 500 ms within 200 ms, plus one at the bound: {attempts}"
    );
    // No wait (the default): one try.
    server.cli(&["CONFIG", "RESETSTAT"]);
    assert!(matches!(
        redis.acquire_lock(&key, Duration::from_secs(1)).await,
        Err(RedisError::LockBusy { .. })
    ));
    assert_eq!(evalsha_calls(&server), 1);
    holder.release().await.unwrap();
}

#[tokio::test]
async fn the_holders_ttl_caps_the_backoff() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("expiring");
    // A holder that crashed: its lock frees itself after 150 ms.
    let crashed = redis
        .acquire_lock(&key, Duration::from_millis(150))
        .await
        .unwrap();
    let _ = crashed.detach();
    server.cli(&["CONFIG", "RESETSTAT"]);
    let start = Instant::now();
    let guard = redis
        .lock(&key)
        .backoff(Duration::from_secs(30), Duration::from_secs(30))
        .wait(Duration::from_secs(60))
        .acquire()
        .await
        .unwrap();
    // Not the 30 s backoff: the busy reply said the lock expires within 150 ms.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let attempts = evalsha_calls(&server);
    assert!(
        (2..=3).contains(&attempts),
        "one busy try, one as the TTL ran out (a third if the expiry lagged): {attempts}"
    );
    guard.release().await.unwrap();
}

// redis-cli runs block a thread: the watchdog needs another one meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_keeps_a_short_lock_alive_and_stops_on_release() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("watched");
    // Short, with slack for a loaded 2-core CI machine (an extend every 50 ms, 100 ms to spare).
    let ttl = Duration::from_millis(150);
    let guard = redis
        .lock(&key)
        .ttl(ttl)
        .watchdog()
        .acquire()
        .await
        .unwrap();
    assert!(guard.has_watchdog());
    let lost = guard.lost().clone();
    // Ten TTLs: without the watchdog the lock would be long gone.
    let start = Instant::now();
    while start.elapsed() < ttl * 10 {
        tokio::time::sleep(ttl / 2).await;
        assert_eq!(
            server.cli(&["HGET", guard.key(), "owner"]),
            guard.owner().to_string()
        );
        assert!(matches!(
            redis.acquire_lock(&key, Duration::from_secs(1)).await,
            Err(RedisError::LockBusy { .. })
        ));
    }
    assert!(!guard.is_lost() && !lost.is_cancelled());
    guard.release().await.unwrap();
    assert_eq!(server.cli(&["EXISTS", "t:{lock:watched}"]), "0");
    // The watchdog task ended: nothing more is sent for this lock.
    server.cli(&["CONFIG", "RESETSTAT"]);
    tokio::time::sleep(ttl * 4).await;
    assert_eq!(evalsha_calls(&server), 0, "the watchdog still extends");
    assert!(!lost.is_cancelled(), "a release is not a loss");
}

// redis-cli runs block a thread: the watchdog needs another one meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_guard_stops_its_watchdog_and_the_lock_expires() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("dropped");
    let guard = redis
        .lock(&key)
        .ttl(Duration::from_millis(80))
        .watchdog()
        .acquire()
        .await
        .unwrap();
    drop(guard);
    poll_until(Duration::from_secs(3), async || {
        (server.cli(&["EXISTS", "t:{lock:dropped}"]) == "0").then_some(())
    })
    .await
    .expect("the lock expires once its guard is gone");
}

// redis-cli runs block a thread: the watchdog needs another one meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_watchdog_outlives_the_ttl() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("long-section");
    let token = redis
        .lock(&key)
        .ttl(Duration::from_millis(150))
        .watchdog()
        .run(async |lock| {
            tokio::time::sleep(Duration::from_millis(750)).await;
            assert!(!lock.is_lost());
            lock.fencing_token()
        })
        .await
        .expect("the watchdog kept the lock through the section");
    assert!(token > 0);
    assert_eq!(server.cli(&["EXISTS", "t:{lock:long-section}"]), "0");
}

// redis-cli runs block a thread: the watchdog needs another one meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_signals_a_lock_deleted_or_taken_behind_its_back() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    for (name, sabotage) in [
        ("deleted", vec!["DEL"]),
        ("taken", vec!["HSET", "", "owner", "someone-else"]),
        ("overwritten", vec!["SET", "", "not-a-lock"]),
    ] {
        let key = Keys::lock(name);
        let guard = redis
            .lock(&key)
            .ttl(Duration::from_millis(300))
            .watchdog()
            .acquire()
            .await
            .unwrap();
        let lost = guard.lost().clone();
        let mut args: Vec<&str> = sabotage.clone();
        if args.len() == 1 {
            args.push(guard.key());
        } else {
            args[1] = guard.key();
        }
        server.cli(&args);
        tokio::time::timeout(Duration::from_secs(3), lost.cancelled())
            .await
            .unwrap_or_else(|_| panic!("{name}: the loss was not signalled"));
        assert!(guard.is_lost(), "{name}");
        assert!(
            matches!(guard.release().await, Err(RedisError::LockLost)),
            "{name}"
        );
    }
    // Without a watchdog, an extend that finds the lock gone signals it too.
    let guard = redis
        .acquire_lock(&Keys::lock("plain"), Duration::from_secs(10))
        .await
        .unwrap();
    server.cli(&["DEL", guard.key()]);
    assert!(!guard.is_lost());
    assert!(matches!(
        guard.extend(Duration::from_secs(10)).await,
        Err(RedisError::LockLost)
    ));
    assert!(guard.is_lost());
    let _ = guard.detach();
}

// redis-cli runs block a thread: the watchdog needs another one meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_signals_loss_when_redis_is_gone_for_a_ttl() {
    let mut server = RedisServer::start();
    let redis = client_with(&server, Duration::from_millis(50)).await;
    let ttl = Duration::from_millis(200);
    let guard = redis
        .lock(&Keys::lock("outage"))
        .ttl(ttl)
        .watchdog()
        .acquire()
        .await
        .unwrap();
    let lost = guard.lost().clone();
    server.stop();
    let stopped = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), lost.cancelled())
        .await
        .expect("the loss is signalled once a TTL passed without an extend");
    // Not before the lock could have expired: at most one TTL after the last good extend,
    // which was at most TTL/3 before the server stopped.
    assert!(
        stopped.elapsed() >= ttl - ttl / 3,
        "fired after {:?}",
        stopped.elapsed()
    );
    let _ = guard.detach();
}

#[tokio::test]
async fn release_by_owner_id_needs_the_right_owner() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("handed-over");
    let owner = LockOwner::random();
    let guard = redis
        .acquire_lock_as(&key, Duration::from_secs(30), owner)
        .await
        .unwrap();
    assert_eq!(guard.detach(), owner);
    assert!(!redis.release_lock(&key, LockOwner::random()).await.unwrap());
    assert_eq!(
        server.cli(&["EXISTS", "t:{lock:handed-over}"]),
        "1",
        "a wrong owner changes nothing"
    );
    assert!(redis.release_lock(&key, owner).await.unwrap());
    assert_eq!(server.cli(&["EXISTS", "t:{lock:handed-over}"]), "0");
    assert!(
        !redis.release_lock(&key, owner).await.unwrap(),
        "already free"
    );
    // Free again for anyone.
    redis
        .acquire_lock(&key, Duration::from_secs(1))
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_abandoned_acquire_releases_what_it_took() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    // Hold the connection with a blocking command, so the acquire queues behind it and is
    // still in flight when we drop it.
    let blocker = {
        let redis = redis.clone();
        tokio::spawn(async move {
            redis
                .query::<Option<Vec<String>>>(driver::cmd("BLPOP").arg("t:nothing").arg(0.3))
                .await
        })
    };
    poll_until(Duration::from_secs(3), async || {
        server
            .cli(&["INFO", "clients"])
            .contains("blocked_clients:1")
            .then_some(())
    })
    .await
    .expect("BLPOP blocks");
    let key = Keys::lock("abandoned");
    let cut = tokio::time::timeout(
        Duration::from_millis(50),
        redis.acquire_lock(&key, Duration::from_secs(30)),
    )
    .await;
    assert!(cut.is_err(), "the acquire was still in flight");
    assert_eq!(blocker.await.unwrap().unwrap(), None);
    // The acquire ran on the server once BLPOP returned (its counter moved), and the lock it
    // took for an owner nobody knows was released rather than held for 30 s.
    poll_until(Duration::from_secs(3), async || {
        (server.cli(&["EXISTS", "t:{lock:abandoned}:fence"]) == "1"
            && server.cli(&["EXISTS", "t:{lock:abandoned}"]) == "0")
            .then_some(())
    })
    .await
    .expect("the abandoned acquire's lock is released");
}

#[tokio::test]
async fn close_refuses_new_calls_on_every_clone_and_lets_in_flight_ones_finish() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let clone = redis.clone();
    redis.ping().await.unwrap();
    let in_flight = {
        let redis = redis.clone();
        tokio::spawn(async move {
            redis
                .query::<Option<Vec<String>>>(driver::cmd("BLPOP").arg("t:nothing").arg(0.2))
                .await
        })
    };
    poll_until(Duration::from_secs(3), async || {
        server
            .cli(&["INFO", "clients"])
            .contains("blocked_clients:1")
            .then_some(())
    })
    .await
    .expect("BLPOP blocks");
    redis.close().await;
    assert!(redis.is_closed() && clone.is_closed());
    assert!(!clone.is_connected());
    assert!(matches!(clone.ping().await, Err(RedisError::Closed)));
    assert!(matches!(
        redis
            .acquire_lock(&Keys::lock("x"), Duration::from_secs(1))
            .await,
        Err(RedisError::Closed)
    ));
    assert!(matches!(
        clone.get::<_, String>(&Keys::lock("x")).await,
        Err(RedisError::Closed)
    ));
    assert_eq!(RedisError::Closed.kind(), "closed");
    // The call in flight finished on its connection.
    assert_eq!(in_flight.await.unwrap().unwrap(), None);
    // Then the connection is gone (only redis-cli's own remains).
    poll_until(Duration::from_secs(3), async || {
        (connected_clients(&server) == 1).then_some(())
    })
    .await
    .expect("the client's connection is closed");
    // Idempotent, and nothing reconnects.
    clone.close().await;
    redis.close().await;
    assert!(matches!(redis.ping().await, Err(RedisError::Closed)));
    assert_eq!(connected_clients(&server), 1);
}

/// Clients connected to the server, counting the `redis-cli` that asks.
fn connected_clients(server: &RedisServer) -> u64 {
    let info = server.cli(&["INFO", "clients"]);
    info.lines()
        .find_map(|l| l.trim().strip_prefix("connected_clients:"))
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn the_redis_example_tours_locks_and_close() {
    let server = RedisServer::start();
    let out = Command::new(example::example_binary("redis"))
        .env("REDIS_URL", server.url())
        .output()
        .expect("run the redis example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "example:sword:goal:goal_abc123",
        "lock key: example:{report:7}",
        "busy, retry in",
        "lost: false",
        "released by owner id: true",
        "after close: the Redis client was closed",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// The section's future is `Send` when the closure's is: `with_lock` / `run` work in a spawned
/// task (a borrowed guard in an async closure is where rustc's inference tends to give up).
#[tokio::test]
async fn with_lock_and_run_work_in_spawned_tasks() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let r = redis.clone();
    let token = tokio::spawn(async move {
        r.with_lock(
            &Keys::lock("spawned"),
            Duration::from_secs(5),
            async |lock| {
                tokio::time::sleep(Duration::from_millis(1)).await;
                lock.extend(Duration::from_secs(5))
                    .await
                    .map(|()| lock.fencing_token())
            },
        )
        .await
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let r = redis.clone();
    let again = tokio::spawn(async move {
        r.lock(&Keys::lock("spawned"))
            .wait(Duration::from_secs(1))
            .watchdog()
            .run(async |lock| {
                tokio::time::sleep(Duration::from_millis(1)).await;
                lock.fencing_token()
            })
            .await
    })
    .await
    .unwrap()
    .unwrap();
    assert!(again > token);
}

/// Through Sentinel, `close` drops the master connection too (and discovery stops).
#[tokio::test]
async fn close_on_a_sentinel_client_drops_its_master_connection() {
    use support::sentinel::{MASTER_NAME, SentinelSetup};
    let setup = SentinelSetup::start(5_000);
    let master = setup.master_port();
    let clients = |setup: &SentinelSetup| -> u64 {
        setup
            .cli(master, &["INFO", "clients"])
            .lines()
            .find_map(|l| l.trim().strip_prefix("connected_clients:"))
            .map_or(0, |n| n.parse().unwrap())
    };
    let before = clients(&setup);
    let redis = RedisClient::connect_sentinel(
        RedisConfig::builder()
            .key_prefix("snt")
            .response_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        MASTER_NAME,
        setup.sentinel_addrs(),
    )
    .await
    .unwrap();
    redis.ping().await.unwrap();
    assert!(
        clients(&setup) > before,
        "our connection shows on the master"
    );
    redis.close().await;
    assert!(matches!(redis.ping().await, Err(RedisError::Closed)));
    poll_until(Duration::from_secs(3), async || {
        (clients(&setup) == before).then_some(())
    })
    .await
    .expect("the master connection is closed");
}
