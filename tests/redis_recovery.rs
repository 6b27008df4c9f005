//! Recovery of the one-server client against a real redis-server that is killed and started
//! again: no call fails with an error left over from an earlier reconnect round, a command is
//! never sent on a connection known to be dead, the breaker's half-open trial is a real attempt,
//! and a client can be created while Redis is down. Also: each server error reply is typed and
//! counted (or not) by the breaker as documented, and extreme timeouts neither panic nor hang.
//!
//! The Redis I/O needs real time, so the waits here are real, but bounded: each recovery is
//! polled with a deadline and the measured time is asserted against the target.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitState};
use resilience::health::{HealthCheck, HealthStatus, RedisCheck};
use resilience::rate_limit::{FailurePolicy, KeyedRateLimiter, RedisRateLimiter};
use resilience::redis::{
    Keys, RateWindow, ReconnectBackoff, RedisClient, RedisConfig, RedisConfigBuilder, RedisError,
    RedisKey, ServerReply, driver,
};
use support::RedisServer;

/// The promise: a call succeeds within this long after the server answers again.
const RECOVERY_TARGET: Duration = Duration::from_secs(2);

/// Longer than the default background reconnect round (50 + 100 + 200 + 400 ms), so the round
/// is over and the next call is on its own, as in the report.
const QUIET: Duration = Duration::from_millis(1200);

fn breaker(name: &str, config: CircuitBreakerConfig) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(name, config))
}

/// A breaker that opens on the first counted failure: a test that must not count a reply sees
/// it open if it did.
fn touchy_breaker() -> Arc<CircuitBreaker> {
    breaker(
        "redis-recovery-touchy",
        CircuitBreakerConfig::builder()
            .failure_threshold(1)
            .reset_timeout(Duration::from_secs(600))
            .build()
            .unwrap(),
    )
}

/// A client of `server` whose own breaker is `b`.
async fn connect_with_breaker(server: &RedisServer, b: &Arc<CircuitBreaker>) -> RedisClient {
    RedisClient::connect(
        config_for(server)
            .circuit_breaker(b.clone())
            .build()
            .unwrap(),
    )
    .await
    .unwrap()
}

fn config_for(server: &RedisServer) -> RedisConfigBuilder {
    RedisConfig::builder()
        .port(server.port())
        .key_prefix("rec")
        .response_timeout(Duration::from_secs(1))
        // Tolerant enough that the few failures of a restart never open it.
        .circuit_breaker(breaker(
            "redis-recovery",
            CircuitBreakerConfig::builder()
                .failure_threshold(50)
                .build()
                .unwrap(),
        ))
}

/// One call of each operation type; `Ok` when the server answered as expected.
#[derive(Debug, Clone, Copy)]
enum Call {
    Ping,
    Get,
    Set,
    Del,
    RateLimit,
    Create,
    Update,
    GetVersioned,
    LockAcquire,
    Query,
}

const CALLS: [Call; 10] = [
    Call::Ping,
    Call::Get,
    Call::Set,
    Call::Del,
    Call::RateLimit,
    Call::Create,
    Call::Update,
    Call::GetVersioned,
    Call::LockAcquire,
    Call::Query,
];

struct Item(&'static str);
impl RedisKey for Item {
    const NAMESPACE: &'static str = "item";
    fn write_key(&self, w: &mut resilience::redis::KeyWriter) {
        w.segment(self.0);
    }
}

async fn call(redis: &RedisClient, c: Call, round: u32) -> Result<(), RedisError> {
    match c {
        Call::Ping => redis.ping().await.map(drop),
        Call::Get => redis.get::<_, String>(&Item("g")).await.map(drop),
        Call::Set => redis.set(&Item("s"), "v", None).await,
        Call::Del => redis.del(&Item("d")).await.map(drop),
        Call::RateLimit => redis
            .rate_limit(&Keys::rate_api_key("k", RateWindow::Minute), 100, 1.0, 1)
            .await
            .map(drop),
        Call::Create => redis
            .create_if_not_exists(&Item("c"), "v", None)
            .await
            .map(drop),
        Call::Update => {
            // The restarted server has no data: create, then update version 1.
            let key = Item("u");
            redis.create_if_not_exists(&key, "v", None).await?;
            redis.conditional_update(&key, 1, "w").await.map(drop)
        }
        Call::GetVersioned => redis.get_versioned::<_, String>(&Item("c")).await.map(drop),
        Call::LockAcquire => {
            let name = format!("l{round}");
            let g = redis
                .acquire_lock(&Keys::lock(&name), Duration::from_secs(5))
                .await?;
            g.release().await
        }
        Call::Query => redis
            .query::<i64>(driver::cmd("INCR").arg("rec:counter"))
            .await
            .map(drop),
    }
}

/// Kill, start again, stay quiet, then the first call of each operation type must succeed:
/// the connection died while idle, and the call must go to a new one rather than fail on the
/// dead one (not retrying is no answer for non-idempotent operations such as rate limits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_call_after_a_quiet_restart_succeeds_for_every_operation() {
    let mut server = RedisServer::start();
    let redis = RedisClient::connect(config_for(&server).build().unwrap())
        .await
        .unwrap();
    for (round, c) in CALLS.into_iter().enumerate() {
        let round = round as u32;
        call(&redis, c, round).await.unwrap();
        server.start_again();
        let back = Instant::now();
        tokio::time::sleep(QUIET).await;
        let r = call(&redis, c, round).await;
        assert!(r.is_ok(), "{c:?}, first call after a quiet restart: {r:?}");
        assert!(
            back.elapsed() <= QUIET + RECOVERY_TARGET,
            "{c:?}: {:?}",
            back.elapsed()
        );
    }
}

/// The report: kill, one call notices, the server comes back, a quiet spell, and the
/// next call failed with "Connection refused" left over from the reconnect round that ran while
/// the server was away. Every operation type, each after its own outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_connect_error_after_an_outage_that_one_call_noticed() {
    let mut server = RedisServer::start();
    let redis = RedisClient::connect(config_for(&server).build().unwrap())
        .await
        .unwrap();
    for (round, c) in CALLS.into_iter().enumerate() {
        let round = round as u32;
        call(&redis, c, round).await.unwrap();
        server.stop();
        let e = redis.ping().await.unwrap_err();
        assert!(e.is_transient(), "{e:?}");
        assert!(!redis.is_connected());
        tokio::time::sleep(QUIET).await;
        server.start_again();
        let back = Instant::now();
        tokio::time::sleep(QUIET).await;
        let r = call(&redis, c, round).await;
        assert!(r.is_ok(), "{c:?}, first call after the outage: {r:?}");
        assert!(redis.is_connected());
        assert!(back.elapsed() <= QUIET + RECOVERY_TARGET);
    }
}

/// While the server is away, calls fail fast with a connection error (never a hang) and a
/// call made right when it answers again succeeds: the outcome of every call comes from its
/// own connection attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_during_an_outage_fail_fast_and_the_first_after_it_succeeds() {
    let mut server = RedisServer::start();
    let redis = RedisClient::connect(config_for(&server).build().unwrap())
        .await
        .unwrap();
    redis.ping().await.unwrap();
    server.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let e = redis
            .rate_limit(&Keys::rate_api_key("o", RateWindow::Minute), 10, 1.0, 1)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "connection", "{e:?}");
        assert!(started.elapsed() < Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.start_again();
    let d = redis
        .rate_limit(&Keys::rate_api_key("o", RateWindow::Minute), 10, 1.0, 1)
        .await
        .expect("the first call once the server answers");
    assert!(d.allowed);
}

/// With the default "redis" breaker (3 failures, 10 s reset), a 2.5 s outage must not cost
/// more than the reset timeout + 2 s of refusals after the server is back: the half-open trial
/// is a real attempt, not an error kept from an earlier round (today: 18.5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_breaker_recovers_within_its_reset_timeout_plus_two_seconds() {
    let mut server = RedisServer::start();
    let config = CircuitBreakerConfig::for_service("redis");
    let reset = config.reset_timeout();
    let b = breaker("redis-recovery-default", config);
    let redis = RedisClient::connect(
        config_for(&server)
            .response_timeout(Duration::from_millis(500))
            .circuit_breaker(b.clone())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let key = Keys::rate_api_key("b", RateWindow::Minute);
    redis.rate_limit(&key, 1_000, 1.0, 1).await.unwrap();
    server.stop();
    // Steady traffic (every 50 ms) through the outage and after it.
    let poll = async |until: Duration| {
        let deadline = Instant::now() + until;
        while Instant::now() < deadline {
            if redis.rate_limit(&key, 1_000, 1.0, 1).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(!poll(Duration::from_millis(2500)).await);
    assert_eq!(b.state(), CircuitState::Open);
    server.start_again();
    let back = Instant::now();
    assert!(
        poll(reset + RECOVERY_TARGET).await,
        "no success within {:?} of the server's return",
        reset + RECOVERY_TARGET
    );
    let took = back.elapsed();
    eprintln!("recovered {took:?} after the server came back (reset timeout {reset:?})");
    assert!(took <= reset + RECOVERY_TARGET, "{took:?}");
    assert_eq!(b.state(), CircuitState::Closed);
}

/// Redis down at boot: the client is created, calls fail fast with a typed connection error,
/// the health check says unhealthy, a rate limiter with the `Local` policy keeps deciding in
/// memory, and when the server starts the client uses it within the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_created_while_redis_is_down_connects_when_it_comes_up() {
    let mut server = RedisServer::start();
    server.stop();
    let started = Instant::now();
    let redis = RedisClient::connect(config_for(&server).build().unwrap())
        .await
        .expect("an unreachable server is not a configuration error");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!redis.is_connected());

    let started = Instant::now();
    let e = redis.ping().await.unwrap_err();
    assert!(matches!(e, RedisError::Connect { .. }), "{e:?}");
    assert!(e.is_transient());
    assert!(started.elapsed() < Duration::from_millis(500));

    let outcome = RedisCheck::new(redis.clone()).check().await;
    assert_eq!(outcome.status, HealthStatus::Unhealthy);
    assert!(
        outcome
            .message
            .as_deref()
            .is_some_and(|m| m.contains("cannot connect")),
        "{outcome:?}"
    );

    let local = Arc::new(
        KeyedRateLimiter::builder()
            .per_second(1)
            .burst(1)
            .build()
            .unwrap(),
    );
    let limiter = RedisRateLimiter::builder(redis.clone(), "boot")
        .capacity(100)
        .refill_per_sec(1.0)
        .failure_policy(FailurePolicy::Local(local))
        .build()
        .unwrap();
    assert!(limiter.check("u", 1).await.unwrap().allowed);
    assert!(
        !limiter.check("u", 1).await.unwrap().allowed,
        "the local bucket (burst 1) decides"
    );

    server.start_again();
    let back = Instant::now();
    let mut first_ok = None;
    while back.elapsed() < RECOVERY_TARGET * 2 {
        if redis.ping().await.is_ok() {
            first_ok = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = first_ok.expect("the client never connected");
    assert!(took <= RECOVERY_TARGET, "{took:?}");
    assert!(redis.is_connected());
    // Redis decides again (its bucket is fresh: 99 left).
    let d = limiter.check("u", 1).await.unwrap();
    assert!(d.allowed && d.remaining == 99, "{d:?}");
    assert_eq!(
        RedisCheck::new(redis).check().await.status,
        HealthStatus::Healthy
    );
}

/// Configuration mistakes still fail at once while the server is up: a lazy client is only
/// for an unreachable server.
#[tokio::test]
async fn refused_credentials_still_fail_at_connect() {
    let server = RedisServer::builder().password("right").start();
    let e = RedisClient::connect(config_for(&server).password("wrong").build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::Auth { .. }), "{e:?}");
}

/// NOPERM: the ACL user may not run a command, or touch a key. Its own error, naming the user
/// and the refusal, not an authentication failure, and the breaker stays closed: the server
/// answered.
#[tokio::test]
async fn acl_refusal_is_permission_denied_and_not_a_breaker_failure() {
    let server = RedisServer::start();
    assert_eq!(
        server.cli(&[
            "ACL",
            "SETUSER",
            "limited",
            "on",
            ">pw-limited",
            "~rec:*",
            "+@all",
            "-get",
        ]),
        "OK"
    );
    let b = touchy_breaker();
    let redis = RedisClient::connect(
        config_for(&server)
            .username("limited")
            .password("pw-limited")
            .circuit_breaker(b.clone())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    redis.set(&Item("x"), "v", None).await.unwrap();
    for _ in 0..3 {
        let e = redis.get::<_, String>(&Item("x")).await.unwrap_err();
        let RedisError::PermissionDenied {
            operation,
            username,
            detail,
        } = &e
        else {
            panic!("expected PermissionDenied, got {e:?}");
        };
        assert_eq!(*operation, "get");
        assert_eq!(username.as_deref(), Some("limited"));
        assert!(detail.contains("get"), "{detail}");
        assert_eq!(e.kind(), "permission");
        assert!(!e.is_transient());
        let text = e.to_string();
        assert!(!text.to_lowercase().contains("password"), "{text}");
        assert!(!text.contains("pw-limited"), "{text}");
    }
    // A key outside `~rec:*`.
    let e = redis
        .query::<()>(driver::cmd("SET").arg("other:key").arg("v"))
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::PermissionDenied { .. }), "{e:?}");
    assert_eq!(b.state(), CircuitState::Closed, "NOPERM opened the breaker");
    redis.ping().await.unwrap();
}

fn server_reply(e: &RedisError) -> Option<ServerReply> {
    match e {
        RedisError::Server { reply, .. } => Some(*reply),
        _ => None,
    }
}

/// WRONGTYPE: typed, not counted (the server is fine; the key holds another type).
#[tokio::test]
async fn wrongtype_is_typed_and_not_counted() {
    let server = RedisServer::start();
    let b = touchy_breaker();
    let redis = connect_with_breaker(&server, &b).await;
    server.cli(&["HSET", "rec:item:h", "f", "v"]);
    let e = redis.get::<_, String>(&Item("h")).await.unwrap_err();
    assert_eq!(server_reply(&e), Some(ServerReply::WrongType), "{e:?}");
    assert!(!e.is_transient());
    assert!(e.to_string().contains("WRONGTYPE"), "{e}");
    assert_eq!(b.state(), CircuitState::Closed);
}

/// OOM (maxmemory reached, noeviction): typed, counted, transient.
#[tokio::test]
async fn oom_is_typed_and_counted() {
    let server = RedisServer::start();
    let b = touchy_breaker();
    let redis = connect_with_breaker(&server, &b).await;
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    let e = redis.set(&Item("big"), "v", None).await.unwrap_err();
    assert_eq!(server_reply(&e), Some(ServerReply::OutOfMemory), "{e:?}");
    assert!(e.is_transient());
    assert_eq!(b.state(), CircuitState::Open);
    b.reset();
    // A script that writes is refused the same way.
    let e = redis
        .rate_limit(&Keys::rate_api_key("oom", RateWindow::Minute), 10, 1.0, 1)
        .await
        .unwrap_err();
    assert_eq!(server_reply(&e), Some(ServerReply::OutOfMemory), "{e:?}");
    server.cli(&["CONFIG", "SET", "maxmemory", "0"]);
}

/// READONLY (the node became a replica) and MASTERDOWN (a replica lost its master and may not
/// serve stale data): typed, counted, transient.
#[tokio::test]
async fn readonly_and_masterdown_are_typed_and_counted() {
    let server = RedisServer::start();
    let b = touchy_breaker();
    let redis = connect_with_breaker(&server, &b).await;
    // A replica of a master that does not exist: read-only, link down.
    let nowhere = support::free_port().to_string();
    server.cli(&["REPLICAOF", "127.0.0.1", &nowhere]);
    let e = redis.set(&Item("ro"), "v", None).await.unwrap_err();
    assert_eq!(server_reply(&e), Some(ServerReply::ReadOnly), "{e:?}");
    assert!(e.is_transient());
    assert_eq!(b.state(), CircuitState::Open);
    b.reset();
    server.cli(&["CONFIG", "SET", "replica-serve-stale-data", "no"]);
    let e = redis.get::<_, String>(&Item("ro")).await.unwrap_err();
    assert_eq!(server_reply(&e), Some(ServerReply::MasterDown), "{e:?}");
    assert!(e.is_transient());
    assert_eq!(b.state(), CircuitState::Open);
}

/// BUSY: a script runs past `busy-reply-threshold`; typed, counted, transient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_is_typed_and_counted() {
    let server = RedisServer::start();
    let b = touchy_breaker();
    let redis = connect_with_breaker(&server, &b).await;
    server.cli(&["CONFIG", "SET", "busy-reply-threshold", "50"]);
    let port = server.port().to_string();
    let mut spinner = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port])
        .args(["EVAL", "while true do end", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run redis-cli");
    // Until the script is past the threshold the server just does not answer (a timeout).
    let mut reply = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        b.reset();
        match redis.ping().await {
            Err(e) if server_reply(&e).is_some() => {
                reply = Some(e);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let killed = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port, "SCRIPT", "KILL"])
        .output();
    let _ = spinner.kill();
    let _ = spinner.wait();
    let e = reply.expect("no BUSY reply within 5 s");
    assert_eq!(server_reply(&e), Some(ServerReply::Busy), "{e:?}");
    assert!(e.is_transient());
    assert_eq!(b.state(), CircuitState::Open);
    assert!(killed.is_ok());
}

/// `Duration::MAX` timeouts mean "no deadline", and extreme reconnect settings saturate:
/// nothing panics, the calls work, and an outage still recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_timeouts_and_backoff_neither_panic_nor_hang() {
    let mut server = RedisServer::start();
    for backoff in [
        ReconnectBackoff {
            min_delay: Duration::from_millis(1),
            max_delay: Duration::MAX,
            factor: f32::MAX,
            max_retries: usize::MAX,
        },
        ReconnectBackoff {
            min_delay: Duration::MAX,
            max_delay: Duration::MAX,
            factor: 1.0,
            max_retries: 1,
        },
    ] {
        let redis = RedisClient::connect(
            config_for(&server)
                .connect_timeout(Duration::MAX)
                .response_timeout(Duration::MAX)
                .reconnect(backoff)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        redis.ping().await.unwrap();
        redis.set(&Item("max"), "v", None).await.unwrap();
        server.start_again();
        // The dead connection is noticed (idle probe) and replaced; no deadline arithmetic
        // overflows on the way.
        tokio::time::sleep(Duration::from_millis(200)).await;
        redis
            .rate_limit(&Keys::rate_api_key("max", RateWindow::Minute), 10, 1.0, 1)
            .await
            .unwrap();
    }
}
