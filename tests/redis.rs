//! The Redis layer against a real, private redis-server per test.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset};
use resilience::rate_limit::{
    FailurePolicy, KeyedRateLimit, KeyedRateLimiter, RateLimitError, RedisRateLimiter,
};
use resilience::redis::{
    CacheKey, IdempotencyKey, KeyWriter, Keys, LockOwner, RateWindow, RedisClient, RedisConfig,
    RedisConfigBuilder, RedisError, RedisKey, SharedCircuitBreaker, driver,
};
use support::{RedisServer, poll_until, processes_in_dir};

/// A breaker per test, so a test that stops its server cannot open the breaker of another.
fn private_breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(
        "redis-test",
        CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Tolerant),
    ))
}

fn config_for(server: &RedisServer) -> RedisConfigBuilder {
    RedisConfig::builder()
        .port(server.port())
        .key_prefix("t")
        .response_timeout(Duration::from_secs(2))
        .circuit_breaker(private_breaker())
}

/// A client whose calls (reconnects included) give up after `deadline`.
async fn client_with_deadline(server: &RedisServer, deadline: Duration) -> RedisClient {
    RedisClient::connect(
        config_for(server)
            .response_timeout(deadline)
            .build()
            .unwrap(),
    )
    .await
    .unwrap()
}

async fn client(server: &RedisServer) -> RedisClient {
    RedisClient::connect(config_for(server).build().unwrap())
        .await
        .expect("connect to the test server")
}

struct Item<'a>(&'a str);
impl RedisKey for Item<'_> {
    const NAMESPACE: &'static str = "item";
    fn write_key(&self, w: &mut KeyWriter) {
        w.literal("id:");
        w.segment(self.0);
    }
}

#[test]
fn support_leaves_no_server_behind() {
    let server = RedisServer::start();
    let pid = server.pid().expect("running");
    let dir = server.dir().to_owned();
    assert_eq!(
        processes_in_dir(&dir),
        vec![pid],
        "the server runs in its temp dir"
    );
    drop(server);
    assert!(
        processes_in_dir(&dir).is_empty(),
        "redis-server left behind"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "not reaped"
    );
    assert!(!dir.exists(), "temp dir left behind");
}

#[tokio::test]
async fn ping_and_typed_get_set_del() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let rtt = redis.ping().await.unwrap();
    assert!(rtt < Duration::from_secs(1));

    let key = Item("a:b*{c}");
    assert_eq!(redis.key(&key).unwrap(), "t:item:id:a%3Ab%2A%7Bc%7D");
    assert_eq!(redis.get::<_, String>(&key).await.unwrap(), None);
    redis.set(&key, "v1", None).await.unwrap();
    assert_eq!(
        redis.get::<_, String>(&key).await.unwrap().as_deref(),
        Some("v1")
    );
    // The value sits under exactly the rendered key, nothing was interpreted as a pattern.
    assert_eq!(server.cli(&["GET", "t:item:id:a%3Ab%2A%7Bc%7D"]), "v1");
    assert!(redis.del(&key).await.unwrap());
    assert!(!redis.del(&key).await.unwrap());

    redis
        .set(
            &CacheKey::llm_response("h1"),
            42,
            Some(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let pttl: i64 = server.cli(&["PTTL", "t:cache:llm:h1"]).parse().unwrap();
    assert!(pttl > 0 && pttl <= 5_000, "{pttl}");
    let err = redis
        .set(&IdempotencyKey::new("pay", "k"), 1, Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RedisError::InvalidArgument { name: "ttl", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limit_takes_a_burst_then_refuses() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::rate_api_key("key-1", RateWindow::Second);
    for expected_remaining in (0..5).rev() {
        let d = redis.rate_limit(&key, 5, 1.0, 1).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, expected_remaining);
        assert_eq!(d.retry_after, Duration::ZERO);
    }
    let d = redis.rate_limit(&key, 5, 1.0, 1).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    // One token takes 1 s; a little of that second has passed.
    assert!(
        d.retry_after > Duration::from_millis(500) && d.retry_after <= Duration::from_secs(1),
        "{d:?}"
    );
    assert!(
        d.reset_after > Duration::from_secs(4) && d.reset_after <= Duration::from_secs(5),
        "{d:?}"
    );
    assert!(d.into_result().is_err());
    // Another subject is unaffected.
    let other = Keys::rate_api_key("key-2", RateWindow::Second);
    assert!(redis.rate_limit(&other, 5, 1.0, 1).await.unwrap().allowed);
}

#[tokio::test]
async fn rate_limit_edges() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::rate_api_key("edges", RateWindow::Minute);
    // cost > capacity can never pass: rejected before any round trip.
    let e = redis.rate_limit(&key, 3, 1.0, 4).await.unwrap_err();
    assert!(
        matches!(e, RedisError::InvalidArgument { name: "cost", .. }),
        "{e:?}"
    );
    for (cap, rate) in [
        (0, 1.0),
        (1, 0.0),
        (1, f64::NAN),
        (1, -1.0),
        (1, f64::INFINITY),
    ] {
        assert!(
            redis.rate_limit(&key, cap, rate, 0).await.is_err(),
            "{cap} {rate}"
        );
    }
    // cost == capacity passes on a full bucket, then cost 0 only looks.
    let d = redis.rate_limit(&key, 3, 1.0, 3).await.unwrap();
    assert!(d.allowed && d.remaining == 0);
    let d = redis.rate_limit(&key, 3, 1.0, 0).await.unwrap();
    assert!(d.allowed && d.remaining == 0, "{d:?}");
    let d = redis.rate_limit(&key, 3, 1.0, 1).await.unwrap();
    assert!(!d.allowed);
    // A refused request takes nothing: the refill is measured from the same point.
    assert!(d.retry_after <= Duration::from_secs(1));
    // A refill faster than 1 token per µs never reports more than the bucket holds.
    let fast = Keys::rate_api_key("fast", RateWindow::Second);
    let d = redis.rate_limit(&fast, 3, 2_000_000.0, 1).await.unwrap();
    assert!(d.allowed && d.remaining == 2, "{d:?}");
    let d = redis.rate_limit(&fast, 3, 2_000_000.0, 0).await.unwrap();
    assert!(d.allowed && d.remaining <= 3, "{d:?}");
}

#[tokio::test]
async fn rate_limit_refills_on_the_server_clock() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::rate_ip("10.0.0.1".parse().unwrap(), RateWindow::Second);
    // 2 tokens, 4 per second: empty after two, one token back within 250 ms.
    assert!(redis.rate_limit(&key, 2, 4.0, 1).await.unwrap().allowed);
    assert!(redis.rate_limit(&key, 2, 4.0, 1).await.unwrap().allowed);
    let refused = redis.rate_limit(&key, 2, 4.0, 1).await.unwrap();
    assert!(
        !refused.allowed && refused.retry_after <= Duration::from_millis(250),
        "{refused:?}"
    );
    let back = poll_until(Duration::from_secs(3), async || {
        let d = redis.rate_limit(&key, 2, 4.0, 1).await.unwrap();
        d.allowed.then_some(d)
    })
    .await;
    assert!(back.is_some(), "no token came back within 3 s");
    // The key expires once the bucket is full again (no garbage left behind).
    let gone = poll_until(Duration::from_secs(3), async || {
        (server.cli(&["EXISTS", "t:rate:ip:10.0.0.1:second"]) == "0").then_some(())
    })
    .await;
    assert!(gone.is_some(), "bucket key never expired");
}

#[tokio::test]
async fn rate_limit_concurrent_admissions_never_exceed_capacity() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let r = redis.clone();
        tasks.push(tokio::spawn(async move {
            // 0.001 tokens/s: no refill during the test.
            r.rate_limit(&Keys::rate_api_key("shared", RateWindow::Day), 20, 0.001, 1)
                .await
                .unwrap()
                .allowed
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 20);
}

#[tokio::test]
async fn noscript_after_script_flush_reloads() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::rate_api_key("flush", RateWindow::Minute);
    assert!(redis.rate_limit(&key, 5, 1.0, 1).await.unwrap().allowed);
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
    let sha = resilience::redis::rate_limit_script_sha();
    assert_eq!(server.cli(&["SCRIPT", "EXISTS", sha]), "0");
    let d = redis.rate_limit(&key, 5, 1.0, 1).await.unwrap();
    assert!(d.allowed && d.remaining == 3, "{d:?}");
    assert_eq!(server.cli(&["SCRIPT", "EXISTS", sha]), "1");
    // Locks and optimistic writes reload theirs too.
    server.cli(&["SCRIPT", "FLUSH"]);
    let g = redis
        .acquire_lock(&Keys::lock("flushed"), Duration::from_secs(5))
        .await
        .unwrap();
    g.release().await.unwrap();
    server.cli(&["SCRIPT", "FLUSH"]);
    assert!(
        redis
            .create_if_not_exists(&Item("f"), "x", None)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn lock_is_exclusive_idempotent_and_fenced() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("goal:42");
    let owner = LockOwner::random();
    let a = redis
        .acquire_lock_as(&key, Duration::from_secs(10), owner)
        .await
        .unwrap();
    assert_eq!(a.key(), "t:{lock:goal%3A42}");
    // Same owner again (e.g. a retry after a lost reply): same token.
    let again = redis
        .acquire_lock_as(&key, Duration::from_secs(10), owner)
        .await
        .unwrap();
    assert_eq!(again.fencing_token(), a.fencing_token());
    std::mem::forget(again); // the same lock; only `a` releases it
    // Another owner is refused, told how long to wait.
    match redis.acquire_lock(&key, Duration::from_secs(10)).await {
        Err(RedisError::LockBusy { retry_after }) => {
            assert!(retry_after > Duration::from_secs(8) && retry_after <= Duration::from_secs(10))
        }
        other => panic!("expected LockBusy, got {other:?}"),
    }
    let first = a.fencing_token();
    a.release().await.unwrap();
    let b = redis
        .acquire_lock(&key, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(b.fencing_token() > first, "fencing tokens must grow");
    b.extend(Duration::from_secs(20)).await.unwrap();
    let pttl: i64 = server.cli(&["PTTL", "t:{lock:goal%3A42}"]).parse().unwrap();
    assert!(pttl > 10_000, "{pttl}");
    b.release().await.unwrap();
    // The fencing counter never expires.
    assert_eq!(server.cli(&["PTTL", "t:{lock:goal%3A42}:fence"]), "-1");
    // ttl 0 is refused, not turned into "no expiry".
    let e = redis.acquire_lock(&key, Duration::ZERO).await.unwrap_err();
    assert!(
        matches!(e, RedisError::InvalidArgument { name: "ttl", .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn lock_release_and_extend_by_non_owner_or_after_expiry_fail() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("short");
    let a = redis
        .acquire_lock(&key, Duration::from_millis(100))
        .await
        .unwrap();
    // Wait (bounded) until it expired and someone else took it.
    let b = poll_until(Duration::from_secs(3), async || {
        redis.acquire_lock(&key, Duration::from_secs(10)).await.ok()
    })
    .await
    .expect("the lock expires after its TTL");
    assert!(b.fencing_token() > a.fencing_token());
    // `a` is no longer the owner: it can neither extend nor release b's lock.
    assert!(matches!(
        a.extend(Duration::from_secs(5)).await,
        Err(RedisError::LockLost)
    ));
    assert!(matches!(a.release().await, Err(RedisError::LockLost)));
    assert_eq!(server.cli(&["EXISTS", b.key()]), "1", "b's lock survived");
    b.release().await.unwrap();
    // Extending after expiry with nobody else holding it fails too.
    let c = redis
        .acquire_lock(&key, Duration::from_millis(30))
        .await
        .unwrap();
    let expired = poll_until(Duration::from_secs(3), async || {
        (server.cli(&["EXISTS", c.key()]) == "0").then_some(())
    })
    .await;
    assert!(expired.is_some());
    assert!(matches!(
        c.extend(Duration::from_secs(5)).await,
        Err(RedisError::LockLost)
    ));
    assert!(matches!(c.release().await, Err(RedisError::LockLost)));
}

#[tokio::test]
async fn with_lock_runs_and_releases() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("job");
    let token = redis
        .with_lock(&key, Duration::from_secs(5), async |lock| {
            lock.fencing_token()
        })
        .await
        .unwrap();
    assert!(token >= 1);
    assert_eq!(server.cli(&["EXISTS", "t:{lock:job}"]), "0", "released");
    // A lock that outlived its TTL inside the section is reported.
    let lost = redis
        .with_lock(&key, Duration::from_millis(20), async |_| {
            let _ = poll_until(Duration::from_secs(3), async || {
                (server.cli(&["EXISTS", "t:{lock:job}"]) == "0").then_some(())
            })
            .await;
        })
        .await;
    assert!(matches!(lost, Err(RedisError::LockLost)), "{lost:?}");
}

#[tokio::test]
async fn optimistic_create_and_conditional_update() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Item("doc");
    assert!(
        redis
            .create_if_not_exists(&key, "v1", Some(Duration::from_secs(60)))
            .await
            .unwrap()
    );
    assert!(
        !redis
            .create_if_not_exists(&key, "other", None)
            .await
            .unwrap()
    );
    let got = redis
        .get_versioned::<_, String>(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.value.as_str(), got.version), ("v1", 1));

    assert_eq!(redis.conditional_update(&key, 1, "v2").await.unwrap(), 2);
    match redis.conditional_update(&key, 1, "stale").await {
        Err(RedisError::VersionMismatch {
            expected: 1,
            actual: Some(2),
        }) => {}
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    let got = redis
        .get_versioned::<_, String>(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.value.as_str(), got.version), ("v2", 2));
    // The TTL set at creation is kept by updates.
    let pttl: i64 = server.cli(&["PTTL", "t:item:id:doc"]).parse().unwrap();
    assert!(pttl > 50_000, "{pttl}");

    match redis.conditional_update(&Item("missing"), 1, "x").await {
        Err(RedisError::VersionMismatch { actual: None, .. }) => {}
        other => panic!("expected a mismatch on a missing key, got {other:?}"),
    }
    assert!(
        redis
            .get_versioned::<_, String>(&Item("missing"))
            .await
            .unwrap()
            .is_none()
    );
    let e = redis
        .create_if_not_exists(&Item("z"), "x", Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::InvalidArgument { name: "ttl", .. }));
    // A foreign value under the key is reported, not overwritten.
    redis.set(&Item("plain"), "raw", None).await.unwrap();
    assert!(
        !redis
            .create_if_not_exists(&Item("plain"), "x", None)
            .await
            .unwrap()
    );
    assert!(matches!(
        redis.conditional_update(&Item("plain"), 1, "x").await,
        Err(RedisError::UnexpectedReply { .. })
    ));
}

#[tokio::test]
async fn server_restart_mid_test_reconnects() {
    let mut server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::rate_api_key("restart", RateWindow::Minute);
    assert!(redis.rate_limit(&key, 10, 1.0, 1).await.unwrap().allowed);
    server.restart();
    // The first call may see the dead connection; the client reconnects on its own.
    let ok = poll_until(Duration::from_secs(5), async || redis.ping().await.ok()).await;
    assert!(ok.is_some(), "did not reconnect within 5 s");
    // The restarted server has no scripts and no data: NOSCRIPT is handled, the bucket is new.
    let d = redis.rate_limit(&key, 10, 1.0, 1).await.unwrap();
    assert!(d.allowed && d.remaining == 9, "{d:?}");
    let g = redis
        .acquire_lock(&Keys::lock("after-restart"), Duration::from_secs(5))
        .await
        .unwrap();
    g.release().await.unwrap();
}

#[tokio::test]
async fn frozen_server_hits_the_deadline_and_limiter_policies_apply() {
    let server = RedisServer::start();
    let redis = client_with_deadline(&server, Duration::from_millis(200)).await;
    let open = RedisRateLimiter::builder(redis.clone(), "api")
        .capacity(2)
        .refill_per_sec(1.0)
        .failure_policy(FailurePolicy::FailOpen)
        .build()
        .unwrap();
    let closed = RedisRateLimiter::builder(redis.clone(), "api")
        .capacity(2)
        .refill_per_sec(1.0)
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .unwrap();
    assert!(open.check_key("u1", 1).await.unwrap().allowed);
    assert!(closed.check_key("u1", 1).await.unwrap().allowed);
    assert!(
        !closed.check_key("u1", 1).await.unwrap().allowed,
        "shared bucket"
    );
    assert!(matches!(
        closed.check_key("u1", 3).await,
        Err(RateLimitError::CostExceedsCapacity {
            cost: 3,
            capacity: 2
        })
    ));

    // SIGSTOP: connections stay open but nothing answers.
    let pid = server.pid().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    let e = redis.ping().await.unwrap_err();
    assert!(matches!(e, RedisError::Timeout { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let d = open.check_key("u1", 1).await.unwrap();
    assert!(d.allowed, "fail open admits");
    match closed.check_key("u1", 1).await {
        Err(RateLimitError::Backend(e)) => assert!(e.to_string().contains("timed out"), "{e}"),
        other => panic!("fail closed must error, got {other:?}"),
    }
    // Local: an in-memory limiter decides while Redis is away (capacity 1 here).
    let local = Arc::new(
        KeyedRateLimiter::builder()
            .per_second(1)
            .burst(1)
            .build()
            .unwrap(),
    );
    let fallback = RedisRateLimiter::builder(redis.clone(), "api")
        .capacity(2)
        .refill_per_sec(1.0)
        .failure_policy(FailurePolicy::Local(local))
        .build()
        .unwrap();
    assert!(fallback.check_key("u1", 1).await.unwrap().allowed);
    assert!(
        !fallback.check_key("u1", 1).await.unwrap().allowed,
        "local bucket spent"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    let ok = poll_until(Duration::from_secs(5), async || redis.ping().await.ok()).await;
    assert!(ok.is_some());
}

#[tokio::test]
async fn wrong_password_is_a_clear_auth_error() {
    let server = RedisServer::builder().password("correct-horse").start();
    let good = RedisClient::connect(
        config_for(&server)
            .password("correct-horse")
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    good.ping().await.unwrap();

    let e = RedisClient::connect(
        config_for(&server)
            .password("wrong-battery")
            .build()
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RedisError::Auth { .. }), "{e:?}");
    let text = format!("{e} {e:?}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(
        !text.contains("wrong-battery") && !text.contains("correct-horse"),
        "{text}"
    );

    // No password at all.
    let e = RedisClient::connect(config_for(&server).build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::Auth { .. }), "{e:?}");
}

#[tokio::test]
async fn acl_user_from_url() {
    let server = RedisServer::builder().acl_user("app", "s3cret-pw").start();
    let url = format!("redis://app:s3cret-pw@127.0.0.1:{}", server.port());
    let cfg = RedisConfig::from_url(&url)
        .unwrap()
        .circuit_breaker(private_breaker())
        .build()
        .unwrap();
    assert!(!format!("{cfg:?}").contains("s3cret-pw"));
    let redis = RedisClient::connect(cfg).await.unwrap();
    redis.ping().await.unwrap();
    let url = format!("redis://app:nope@127.0.0.1:{}", server.port());
    let cfg = RedisConfig::from_url(&url)
        .unwrap()
        .circuit_breaker(private_breaker())
        .build()
        .unwrap();
    match RedisClient::connect(cfg).await {
        Err(e @ RedisError::Auth { .. }) => {
            let text = e.to_string();
            assert!(text.contains("`app`") && !text.contains("nope"), "{text}");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_verifies_the_server_certificate() {
    let server = RedisServer::builder().tls().start();
    let tls = server.tls_files().clone();
    let tls_cfg = |ca: &std::path::Path, host: &str| {
        RedisConfig::builder()
            .host(host)
            .port(server.tls_port())
            .tls_ca_file(ca)
            .circuit_breaker(private_breaker())
            .connect_timeout(Duration::from_secs(3))
            .build()
            .unwrap()
    };
    let redis = RedisClient::connect(tls_cfg(&tls.ca_cert, "localhost"))
        .await
        .unwrap();
    redis.ping().await.unwrap();
    assert!(
        redis
            .rate_limit(&Keys::rate_api_key("tls", RateWindow::Second), 1, 1.0, 1)
            .await
            .unwrap()
            .allowed
    );
    let by_ip = RedisClient::connect(tls_cfg(&tls.ca_cert, "127.0.0.1"))
        .await
        .unwrap();
    by_ip.ping().await.unwrap();

    // A certificate from a CA we do not trust is rejected.
    let e = RedisClient::connect(tls_cfg(&tls.other_ca_cert, "localhost"))
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::Tls { .. }), "{e:?}");
    assert!(e.to_string().contains("certificate"), "{e}");
    // No CA file: the system store does not know our test CA either.
    let sys = RedisConfig::builder()
        .host("localhost")
        .port(server.tls_port())
        .tls()
        .circuit_breaker(private_breaker())
        .build()
        .unwrap();
    assert!(matches!(
        RedisClient::connect(sys).await,
        Err(RedisError::Tls { .. })
    ));

    // Bad TLS files are typed errors naming the file.
    let missing = server.dir().join("nope.pem");
    let e = RedisClient::connect(tls_cfg(&missing, "localhost"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RedisError::TlsFile { path, .. } if path == &missing),
        "{e:?}"
    );
    let garbage = server.dir().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let e = RedisClient::connect(tls_cfg(&garbage, "localhost"))
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::TlsFile { .. }), "{e:?}");
    assert!(e.to_string().contains("garbage.pem"), "{e}");
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    /// Captures this thread's `tracing` events at `level` and above until the guard drops.
    fn install(level: tracing::Level) -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(capture.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn secrets_never_reach_debug_display_or_logs() {
    const PW: &str = "pa55-Wörd-xyzzy";
    let (capture, _guard) = Capture::install(tracing::Level::TRACE);

    let server = RedisServer::builder().password(PW).start();
    let url = format!(
        "redis://:{}@127.0.0.1:{}",
        PW.replace('ö', "%C3%B6"),
        server.port()
    );
    let builder = RedisConfig::from_url(&url)
        .unwrap()
        .circuit_breaker(private_breaker());
    let cfg = builder.clone().build().unwrap();
    let redis = RedisClient::connect(cfg.clone()).await.unwrap();
    redis.ping().await.unwrap();
    // Things that log: a dropped lock guard, a fail-open limiter, errors.
    let g = redis
        .acquire_lock(&Keys::lock("l"), Duration::from_secs(1))
        .await
        .unwrap();
    drop(g);
    let wrong = RedisClient::connect(config_for(&server).password("x").build().unwrap())
        .await
        .unwrap_err();
    tracing::error!(error = %wrong, debug = ?wrong, "auth failed");
    let printed = format!(
        "{builder:?} {cfg:?} {redis:?} {wrong} {wrong:?} {}",
        capture.text()
    );
    assert!(
        printed.contains("lock guard dropped"),
        "the log capture works: {printed}"
    );
    assert!(
        !printed.contains(PW) && !printed.contains("xyzzy"),
        "{printed}"
    );
}

#[tokio::test]
async fn dropped_guard_keeps_the_lock_until_its_ttl() {
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = Keys::lock("dropped");
    drop(
        redis
            .acquire_lock(&key, Duration::from_millis(100))
            .await
            .unwrap(),
    );
    assert!(matches!(
        redis.acquire_lock(&key, Duration::from_secs(1)).await,
        Err(RedisError::LockBusy { .. })
    ));
    let freed = poll_until(Duration::from_secs(3), async || {
        redis.acquire_lock(&key, Duration::from_secs(1)).await.ok()
    })
    .await;
    freed.expect("the TTL frees it").release().await.unwrap();
}

#[tokio::test]
async fn breaker_opens_when_redis_is_down_and_then_fails_fast() {
    let mut server = RedisServer::start();
    let breaker = Arc::new(CircuitBreaker::new(
        "redis-down",
        CircuitBreakerConfig::builder()
            .failure_threshold(2)
            .reset_timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    ));
    let redis = RedisClient::connect(
        config_for(&server)
            .response_timeout(Duration::from_millis(500))
            .circuit_breaker(breaker.clone())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    redis.ping().await.unwrap();
    // A server answering with an error is healthy: no breaker failure.
    server.cli(&["SET", "t:item:id:s", "x"]);
    assert!(
        redis
            .query::<i64>(driver::cmd("INCR").arg("t:item:id:s"))
            .await
            .is_err()
    );
    assert_eq!(
        breaker.state(),
        resilience::circuit_breaker::CircuitState::Closed
    );

    server.stop();
    for _ in 0..2 {
        let e = redis.ping().await.unwrap_err();
        assert!(e.is_transient(), "{e:?}");
    }
    assert_eq!(
        breaker.state(),
        resilience::circuit_breaker::CircuitState::Open
    );
    let started = std::time::Instant::now();
    let e = redis.ping().await.unwrap_err();
    assert!(matches!(e, RedisError::CircuitOpen(_)), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "no network wait when open"
    );
    assert!(e.to_string().contains("redis-down"), "{e}");
}

#[tokio::test]
async fn shared_breaker_opens_for_every_process_and_recovers() {
    use resilience::circuit_breaker::CallError;
    use resilience::redis::SharedCircuitBreaker;
    let server = RedisServer::start();
    // Two clients: two "processes" sharing one breaker by name.
    let (c1, c2) = (client(&server).await, client(&server).await);
    let shared = |c: RedisClient| {
        SharedCircuitBreaker::builder(c, "payments")
            .failure_threshold(2)
            .reset_timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    let (p1, p2) = (shared(c1), shared(c2));
    let fail = || async { Err::<(), &str>("upstream down") };
    let ok = || async { Ok::<u32, &str>(7) };

    // Consecutive failures: a success in between clears them.
    assert!(matches!(p1.call(fail).await, Err(CallError::Inner(_))));
    assert_eq!(p2.call(ok).await.unwrap(), 7);
    assert!(matches!(p2.call(fail).await, Err(CallError::Inner(_))));
    assert_eq!(
        p1.state().await.unwrap(),
        resilience::circuit_breaker::CircuitState::Closed
    );
    // One failure in each process opens it for both.
    assert!(matches!(p1.call(fail).await, Err(CallError::Inner(_))));
    assert_eq!(
        p2.state().await.unwrap(),
        resilience::circuit_breaker::CircuitState::Open
    );
    for p in [&p1, &p2] {
        match p.call(ok).await {
            Err(CallError::Open(open)) => {
                assert_eq!(&*open.name, "payments");
                assert!(open.retry_after.unwrap() <= Duration::from_millis(300));
            }
            other => panic!("expected open, got {other:?}"),
        }
    }
    assert_eq!(server.cli(&["HGET", "t:breaker:{payments}", "state"]), "2");

    // After the reset timeout one process gets the single trial slot; the other is refused.
    let trial = poll_until(Duration::from_secs(3), async || p1.try_acquire().await.ok())
        .await
        .expect("half-open after the reset timeout");
    assert!(trial.is_trial());
    match p2.try_acquire().await {
        Err(open) => assert_eq!(open.retry_after, None),
        Ok(_) => panic!("the only trial slot is taken"),
    }
    // A failed trial reopens; a successful one closes for everyone.
    trial.failure().await;
    assert_eq!(
        p2.state().await.unwrap(),
        resilience::circuit_breaker::CircuitState::Open
    );
    let trial = poll_until(Duration::from_secs(3), async || p2.try_acquire().await.ok())
        .await
        .expect("half-open again");
    trial.success().await;
    assert_eq!(
        p1.state().await.unwrap(),
        resilience::circuit_breaker::CircuitState::Closed
    );
    assert_eq!(p1.call(ok).await.unwrap(), 7);
    assert_eq!(
        server.cli(&["EXISTS", "t:breaker:{payments}"]),
        "0",
        "closed and clean"
    );
}

#[tokio::test]
async fn shared_breaker_fails_open_when_redis_is_gone() {
    use resilience::redis::SharedCircuitBreaker;
    let mut server = RedisServer::start();
    let redis = RedisClient::connect(
        config_for(&server)
            .response_timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let e = SharedCircuitBreaker::builder(redis.clone(), "svc")
        .failure_threshold(0)
        .build()
        .unwrap_err();
    assert_eq!(e.field, "failure_threshold");
    assert!(
        SharedCircuitBreaker::builder(redis.clone(), "")
            .build()
            .is_err()
    );
    let shared = SharedCircuitBreaker::builder(redis, "svc").build().unwrap();
    server.stop();
    assert_eq!(shared.call(|| async { Ok::<_, ()>(1) }).await.unwrap(), 1);
}

#[tokio::test]
async fn derived_keys_work_against_the_server() {
    #[derive(resilience::RedisKey)]
    #[redis_key(
        namespace = "sword",
        template = "goal:{goal_id}:user:{user}",
        hash_tag = "user"
    )]
    struct GoalKey {
        goal_id: String,
        user: u64,
    }
    let server = RedisServer::start();
    let redis = client(&server).await;
    let key = GoalKey {
        goal_id: "abc:*".into(),
        user: 7,
    };
    let rendered = redis.key(&key).unwrap();
    assert_eq!(rendered, "t:sword:goal:abc%3A%2A:user:{7}");
    redis.set(&key, "v", None).await.unwrap();
    assert_eq!(server.cli(&["GET", &rendered]), "v");
}

#[tokio::test]
async fn an_outage_logs_one_warning_per_interval_not_one_per_call() {
    let (capture, _guard) = Capture::install(tracing::Level::WARN);
    let mut server = RedisServer::start();
    let redis = client_with_deadline(&server, Duration::from_millis(200)).await;
    let open = RedisRateLimiter::builder(redis.clone(), "flood")
        .capacity(5)
        .refill_per_sec(1.0)
        .failure_policy(FailurePolicy::FailOpen)
        .build()
        .unwrap();
    let shared = SharedCircuitBreaker::builder(redis.clone(), "flood")
        .build()
        .unwrap();
    assert!(open.check_key("k", 1).await.unwrap().allowed);
    server.stop();
    for _ in 0..40 {
        assert!(open.check_key("k", 1).await.unwrap().allowed, "fail open");
        let permit = shared
            .try_acquire()
            .await
            .expect("unreachable: let through");
        permit.failure().await;
    }
    let logs = capture.text();
    let count = |needle: &str| logs.lines().filter(|l| l.contains(needle)).count();
    // 40 failing calls each, well inside one 10 s interval: one warning per instance.
    assert_eq!(count("admitting (fail open)"), 1, "{logs}");
    assert_eq!(
        count("shared breaker unreachable") + count("could not record an outcome"),
        1,
        "{logs}"
    );
}
