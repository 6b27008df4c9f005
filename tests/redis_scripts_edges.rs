//! The Lua scripts at their edges, against a real redis-server: a refused call leaves nothing
//! behind (checked through the client and by calling each script with `EVAL` and hostile
//! arguments, past the Rust checks), every key starts with the prefix (an ACL user limited to
//! `~nova:*` can use everything), and fencing tokens keep growing across a restart that lost
//! the counter.

mod support;

use std::sync::Arc;
use std::time::Duration;

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset};
use resilience::rate_limit::{FailurePolicy, KeyedRateLimit, RedisRateLimiter};
use resilience::redis::{
    IdempotencyKey, KeyWriter, Keys, LockOwner, MAX_TTL, RedisClient, RedisConfig, RedisError,
    RedisKey, SharedCircuitBreaker, driver, script_source,
};
use support::RedisServer;

fn private_breaker() -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(
        "redis-edges-test",
        CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Tolerant),
    ))
}

async fn client(server: &RedisServer, prefix: &str) -> RedisClient {
    RedisClient::connect(
        RedisConfig::builder()
            .port(server.port())
            .key_prefix(prefix)
            .response_timeout(Duration::from_secs(2))
            .circuit_breaker(private_breaker())
            .build()
            .unwrap(),
    )
    .await
    .expect("connect to the test server")
}

/// Every key in the database.
fn all_keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = server
        .cli(&["--scan"])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

/// TTLs the client must refuse, all beyond `MAX_TTL` (the last ones past what Redis accepts).
fn huge_ttls() -> [Duration; 4] {
    [
        MAX_TTL + Duration::from_millis(1),
        Duration::from_millis(i64::MAX as u64),
        Duration::from_millis(u64::MAX),
        Duration::MAX,
    ]
}

fn is_ttl_error(e: &RedisError) -> bool {
    matches!(e, RedisError::InvalidArgument { name: "ttl", .. })
}

#[tokio::test]
async fn a_lock_with_a_huge_ttl_is_refused_and_writes_nothing() {
    let server = RedisServer::start();
    let redis = client(&server, "t").await;
    let key = Keys::lock("huge");
    for ttl in huge_ttls() {
        let e = redis.acquire_lock(&key, ttl).await.unwrap_err();
        assert!(is_ttl_error(&e), "{ttl:?}: {e:?}");
    }
    // Neither the lock nor its counter exists: the fence was not incremented, no owner written.
    assert_eq!(all_keys(&server), Vec::<String>::new());

    // The longest accepted TTL really expires (not "no expiry").
    let g = redis.acquire_lock(&key, MAX_TTL).await.unwrap();
    let pttl: i64 = server.cli(&["PTTL", g.key()]).parse().unwrap();
    assert!(pttl > 3_000_000_000_000, "{pttl}");
    let fence_key = format!("{}:fence", g.key());
    let fence = server.cli(&["GET", &fence_key]);
    // Extending with a huge TTL is refused and leaves the TTL alone; so is re-acquiring.
    g.extend(Duration::from_secs(60)).await.unwrap();
    for ttl in huge_ttls() {
        assert!(is_ttl_error(&g.extend(ttl).await.unwrap_err()));
        assert!(is_ttl_error(
            &redis
                .acquire_lock_as(&key, ttl, g.owner())
                .await
                .unwrap_err()
        ));
    }
    let pttl: i64 = server.cli(&["PTTL", g.key()]).parse().unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "{pttl}");
    assert_eq!(server.cli(&["GET", &fence_key]), fence);
    g.release().await.unwrap();
    // And the lock can be taken again at once.
    redis
        .acquire_lock(&key, Duration::from_secs(1))
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn create_with_a_huge_ttl_stores_nothing() {
    let server = RedisServer::start();
    let redis = client(&server, "t").await;
    let key = IdempotencyKey::new("pay", "r-1");
    for ttl in huge_ttls() {
        let e = redis
            .create_if_not_exists(&key, "v", Some(ttl))
            .await
            .unwrap_err();
        assert!(is_ttl_error(&e), "{ttl:?}: {e:?}");
        let e = redis.set(&key, "v", Some(ttl)).await.unwrap_err();
        assert!(is_ttl_error(&e), "{ttl:?}: {e:?}");
    }
    assert_eq!(all_keys(&server), Vec::<String>::new());
    assert!(
        redis
            .create_if_not_exists(&key, "v", Some(MAX_TTL))
            .await
            .unwrap()
    );
    let pttl: i64 = server
        .cli(&["PTTL", &redis.key(&key).unwrap()])
        .parse()
        .unwrap();
    assert!(pttl > 3_000_000_000_000, "{pttl}");
}

/// `EVAL` of one of the library's scripts, by name.
async fn eval<T: driver::FromRedisValue>(
    redis: &RedisClient,
    name: &str,
    keys: &[&str],
    args: &[&str],
) -> Result<T, RedisError> {
    let mut cmd = driver::cmd("EVAL");
    cmd.arg(script_source(name).expect("a script of that name"))
        .arg(keys.len())
        .arg(keys)
        .arg(args);
    redis.query(&cmd).await
}

/// Arguments a TTL must never accept: zero, negative, not a whole number, hex, blank, past
/// `MAX_TTL`, past what Redis accepts.
const BAD_TTLS: [&str; 12] = [
    "0",
    "-1",
    "1e3",
    "0x10",
    "",
    " 5",
    "5.5",
    "05",
    "nan",
    "3153600000001",
    "9223372036854775807",
    "18446744073709551616",
];

#[tokio::test]
async fn scripts_check_their_arguments_before_the_first_write() {
    let server = RedisServer::start();
    let redis = client(&server, "t").await;
    let (lock, fence) = ("t:{lock:x}", "t:{lock:x}:fence");
    for ttl in BAD_TTLS {
        let r: (i64, i64) = eval(&redis, "lock_acquire", &[lock, fence], &["owner", ttl])
            .await
            .unwrap();
        assert_eq!(r, (-1, 0), "lock_acquire ttl {ttl:?}");
        let r: (i64, i64) = eval(&redis, "create_if_not_exists", &["t:v"], &["val", ttl])
            .await
            .unwrap();
        // "0" means "no expiry" here.
        if ttl != "0" {
            assert_eq!(r, (-1, 0), "create_if_not_exists ttl {ttl:?}");
        }
        redis
            .query::<()>(driver::cmd("DEL").arg("t:v"))
            .await
            .unwrap();
    }
    assert_eq!(all_keys(&server), Vec::<String>::new());

    // Extend refuses before touching the TTL.
    let r: (i64, i64) = eval(&redis, "lock_acquire", &[lock, fence], &["me", "60000"])
        .await
        .unwrap();
    assert_eq!(r.0, 1);
    for ttl in BAD_TTLS {
        let r: i64 = eval(&redis, "lock_extend", &[lock], &["me", ttl])
            .await
            .unwrap();
        assert_eq!(r, -1, "lock_extend ttl {ttl:?}");
    }
    let pttl: i64 = server.cli(&["PTTL", lock]).parse().unwrap();
    assert!(pttl > 50_000 && pttl <= 60_000, "{pttl}");

    // A counter that holds something else is reported, and the lock is not taken.
    server.cli(&["SET", "t:{lock:y}:fence", "not-a-number"]);
    let r: (i64, i64) = eval(
        &redis,
        "lock_acquire",
        &["t:{lock:y}", "t:{lock:y}:fence"],
        &["me", "1000"],
    )
    .await
    .unwrap();
    assert_eq!(r, (-2, 0));
    assert_eq!(server.cli(&["EXISTS", "t:{lock:y}"]), "0");

    // Rate limit: capacity, emission interval and cost out of range change nothing.
    for (capacity, emission, cost) in [
        ("0", "1000", "0"),
        ("-1", "1000", "0"),
        ("1099511627777", "1", "1"),
        ("5", "0", "1"),
        ("5", "-1", "1"),
        ("5", "nan", "1"),
        ("5", "inf", "1"),
        ("5", "1e300", "1"),
        ("5", "1000", "6"),
        ("5", "1000", "-1"),
        ("5", "1000", "1.5"),
    ] {
        let r: (i64, i64, i64, i64) =
            eval(&redis, "rate_limit", &["t:rl"], &[capacity, emission, cost])
                .await
                .unwrap();
        assert_eq!(r.0, -1, "rate_limit {capacity} {emission} {cost}");
    }
    assert_eq!(server.cli(&["EXISTS", "t:rl"]), "0");
    // A TAT far in the future (a clock stepped back, a foreign value): waits stay within one
    // refill of the bucket instead of growing without bound.
    server.cli(&["SET", "t:rl", "1e300"]);
    let (allowed, _, retry_us, reset_us): (i64, i64, i64, i64) =
        eval(&redis, "rate_limit", &["t:rl"], &["5", "1000", "1"])
            .await
            .unwrap();
    assert_eq!(allowed, 0);
    assert!((0..=5_000).contains(&retry_us), "{retry_us}");
    assert!((0..=5_000).contains(&reset_us), "{reset_us}");

    // Breaker scripts: bad thresholds are refused before any write.
    server.cli(&["HSET", "t:breaker:{b}", "state", "1", "inflight", "1"]);
    let before = server.cli(&["HGETALL", "t:breaker:{b}"]);
    for (failures, successes) in [("0", "1"), ("1", "0"), ("nan", "1"), ("1", "x")] {
        let r = eval::<i64>(
            &redis,
            "breaker_record",
            &["t:breaker:{b}"],
            &["1", failures, successes, "1"],
        )
        .await;
        assert!(r.is_err(), "breaker_record {failures} {successes}: {r:?}");
    }
    for (reset, trials) in [("0", "1"), ("nan", "1"), ("1000", "0"), ("1000", "")] {
        let r = eval::<Vec<i64>>(
            &redis,
            "breaker_acquire",
            &["t:breaker:{b}"],
            &[reset, trials],
        )
        .await;
        assert!(r.is_err(), "breaker_acquire {reset} {trials}: {r:?}");
    }
    assert_eq!(server.cli(&["HGETALL", "t:breaker:{b}"]), before);
    // A reset timeout of u64::MAX ms is "never", and the wait it reports is a sane number.
    server.cli(&["HSET", "t:breaker:{c}", "state", "2", "opened_at", "1"]);
    let r: Vec<i64> = eval(
        &redis,
        "breaker_acquire",
        &["t:breaker:{c}"],
        &["18446744073709551615", "1"],
    )
    .await
    .unwrap();
    assert_eq!(&r[..2], &[0, 2]);
    assert!(r[2] > 4_000_000_000_000_000, "{r:?}");
}

#[tokio::test]
async fn conditional_update_never_writes_the_value_without_the_version() {
    let server = RedisServer::start();
    let redis = client(&server, "t").await;
    let key = IdempotencyKey::new("doc", "1");
    let k = redis.key(&key).unwrap();
    // A version that can no longer grow: the old script wrote the value, then failed.
    server.cli(&["HSET", &k, "val", "old", "ver", "9223372036854775807"]);
    let e = redis
        .conditional_update(&key, 9_223_372_036_854_775_807, "new")
        .await
        .unwrap_err();
    assert!(matches!(e, RedisError::UnexpectedReply { .. }), "{e:?}");
    assert_eq!(server.cli(&["HGET", &k, "val"]), "old");
    assert_eq!(server.cli(&["HGET", &k, "ver"]), "9223372036854775807");
    // The normal path is unchanged.
    redis.del(&key).await.unwrap();
    assert!(redis.create_if_not_exists(&key, "a", None).await.unwrap());
    assert_eq!(redis.conditional_update(&key, 1, "b").await.unwrap(), 2);
    assert_eq!(server.cli(&["HGET", &k, "val"]), "b");
}

#[tokio::test]
async fn fencing_tokens_grow_across_a_restart_that_lost_the_counter() {
    let mut server = RedisServer::start();
    let redis = client(&server, "t").await;
    let key = Keys::lock("fenced");
    let mut last = 0;
    for _ in 0..50 {
        let g = redis
            .acquire_lock(&key, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(
            g.fencing_token() > last,
            "{} after {last}",
            g.fencing_token()
        );
        last = g.fencing_token();
        g.release().await.unwrap();
    }
    // The test servers run without persistence: a restart loses the counter. (A fresh client:
    // how fast an old one recovers is another test's subject.)
    server.restart();
    assert_eq!(server.cli(&["DBSIZE"]), "0");
    drop(redis);
    let redis = client(&server, "t").await;
    let g = redis
        .acquire_lock(&key, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        g.fencing_token() > last,
        "token {} after the restart, {last} before",
        g.fencing_token()
    );
    let fence = format!("{}:fence", g.key());
    g.release().await.unwrap();

    // A counter ahead of the clock keeps counting from itself...
    let ahead: u64 = 8_000_000_000_000_000;
    server.cli(&["SET", &fence, &ahead.to_string()]);
    let g = redis
        .acquire_lock(&key, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(g.fencing_token(), ahead + 1);
    g.release().await.unwrap();
    // ...and a small one left by an older version jumps to the clock.
    server.cli(&["SET", &fence, "5"]);
    let g = redis
        .acquire_lock(&key, Duration::from_secs(10))
        .await
        .unwrap();
    let (secs, micros): (u64, u64) = redis.query(&driver::cmd("TIME")).await.unwrap();
    let now_us = secs * 1_000_000 + micros;
    assert!(
        g.fencing_token() > 5 && g.fencing_token() <= now_us,
        "{} vs TIME {now_us}",
        g.fencing_token()
    );
    assert!(now_us - g.fencing_token() < 60_000_000);
    // Re-acquiring as the owner still returns the same token.
    let again = redis
        .acquire_lock_as(&key, Duration::from_secs(10), g.owner())
        .await
        .unwrap();
    assert_eq!(again.fencing_token(), g.fencing_token());
    std::mem::forget(again);
    g.release().await.unwrap();
}

#[derive(resilience::RedisKey)]
#[redis_key(namespace = "sword", template = "goal:{goal_id}")]
struct GoalKey {
    goal_id: String,
}

#[derive(resilience::RedisKey)]
#[redis_key(
    namespace = "sword",
    template = "team:{team}:goal:{goal}",
    hash_tag = "team"
)]
struct TeamGoal {
    team: String,
    goal: String,
}

#[tokio::test]
async fn an_acl_user_limited_to_the_prefix_can_use_every_operation() {
    let server = RedisServer::builder().acl_user("admin", "admin-pw").start();
    // A user who may touch `nova:*` keys only (every command otherwise).
    assert_eq!(
        server.cli(&[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">app-pw",
            "resetkeys",
            "~nova:*",
            "+@all",
        ]),
        "OK"
    );
    let redis = RedisClient::connect(
        RedisConfig::builder()
            .port(server.port())
            .username("app")
            .password("app-pw")
            .key_prefix("nova")
            .response_timeout(Duration::from_secs(2))
            .circuit_breaker(private_breaker())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    // The ACL is real: a key outside the prefix is refused.
    assert!(
        redis
            .query::<()>(driver::cmd("SET").arg("other:x").arg(1))
            .await
            .is_err()
    );
    for name in support::hostile_names() {
        // A lock on a derived key (no tag, then an empty tag field), and a lock by name.
        let goal = GoalKey {
            goal_id: name.clone(),
        };
        let g = redis
            .acquire_lock(&goal, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(g.key().starts_with("nova:{sword:goal:"), "{}", g.key());
        g.extend(Duration::from_secs(5)).await.unwrap();
        g.release().await.unwrap();
        let team = TeamGoal {
            team: String::new(),
            goal: name.clone(),
        };
        redis
            .with_lock(&team, Duration::from_secs(5), async |_| ())
            .await
            .unwrap();
        let g = redis
            .acquire_lock(&Keys::lock(name.as_str()), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(g.key().starts_with("nova:{lock:"), "{}", g.key());
        g.release().await.unwrap();
        // A value under the key itself is not the lock: both live side by side.
        redis.set(&goal, "value", None).await.unwrap();
        redis
            .with_lock(&goal, Duration::from_secs(5), async |_| ())
            .await
            .unwrap();
        assert_eq!(
            redis.get::<_, String>(&goal).await.unwrap().as_deref(),
            Some("value")
        );
        let v = IdempotencyKey::new(name.as_str(), name.as_str());
        assert!(
            redis
                .create_if_not_exists(&v, "a", Some(Duration::from_secs(60)))
                .await
                .unwrap()
        );
        assert_eq!(redis.conditional_update(&v, 1, "b").await.unwrap(), 2);
        let d = redis
            .rate_limit(
                &Keys::rate_api_key(name.as_str(), resilience::redis::RateWindow::Minute),
                5,
                1.0,
                1,
            )
            .await
            .unwrap();
        assert!(d.allowed);
    }
    let limiter = RedisRateLimiter::builder(redis.clone(), "acl")
        .capacity(2)
        .refill_per_sec(1.0)
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .unwrap();
    assert!(limiter.check_key("", 1).await.unwrap().allowed);
    let shared = SharedCircuitBreaker::builder(redis.clone(), "acl-shared")
        .failure_threshold(1)
        .build()
        .unwrap();
    shared.try_acquire().await.unwrap().failure().await;
    assert!(shared.try_acquire().await.is_err(), "the failure opened it");
    // Every key written starts with the prefix, so `SCAN MATCH nova:*` sees them all.
    let keys = all_keys(&server);
    assert!(keys.len() > 30, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("nova:")), "{keys:?}");
    let matched = server
        .cli(&["--scan", "--pattern", "nova:*"])
        .lines()
        .count();
    assert_eq!(matched, keys.len());
}

/// A key type with its own hash tag, empty for an empty id.
struct Tagged<'a>(&'a str);
impl RedisKey for Tagged<'_> {
    const NAMESPACE: &'static str = "tagged";
    fn write_key(&self, w: &mut KeyWriter) {
        w.open_hash_tag();
        w.segment(self.0);
        w.close_hash_tag();
    }
}

#[tokio::test]
async fn lock_owner_survives_reacquire_with_a_bad_ttl() {
    // A refused re-acquire by the owner (bad TTL) neither drops nor re-times the lock.
    let server = RedisServer::start();
    let redis = client(&server, "t").await;
    let owner = LockOwner::random();
    let g = redis
        .acquire_lock_as(&Tagged(""), Duration::from_secs(30), owner)
        .await
        .unwrap();
    assert_eq!(g.key(), "t:{tagged:{%}}");
    assert!(is_ttl_error(
        &redis
            .acquire_lock_as(&Tagged(""), Duration::ZERO, owner)
            .await
            .unwrap_err()
    ));
    assert_eq!(server.cli(&["HGET", g.key(), "owner"]), owner.to_string());
    g.release().await.unwrap();
}

#[tokio::test]
async fn rate_limit_extremes_are_refused_at_build_or_decided_sanely() {
    let server = RedisServer::start();
    let redis = client(&server, "t").await;
    let capacities = [0, 1, 2, 1 << 40, (1 << 40) + 1, u64::MAX];
    let rates = [
        0.0,
        -1.0,
        f64::MIN_POSITIVE,
        1e-300,
        1e-9,
        1.0,
        1e9,
        1e300,
        f64::MAX,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let mut built = 0;
    for (i, capacity) in capacities.into_iter().enumerate() {
        for (j, rate) in rates.into_iter().enumerate() {
            let limiter = match RedisRateLimiter::builder(redis.clone(), format!("x{i}-{j}"))
                .capacity(capacity)
                .refill_per_sec(rate)
                .failure_policy(FailurePolicy::FailClosed)
                .build()
            {
                Ok(l) => l,
                Err(_) => {
                    // The direct call refuses the same values with a typed error, before any
                    // network call.
                    let e = redis
                        .rate_limit(
                            &Keys::rate_api_key("k", resilience::redis::RateWindow::Second),
                            capacity,
                            rate,
                            0,
                        )
                        .await
                        .unwrap_err();
                    assert!(
                        matches!(e, RedisError::InvalidArgument { .. }),
                        "{capacity} {rate}: {e:?}"
                    );
                    continue;
                }
            };
            built += 1;
            // A full refill takes at most 1e15 µs (~31.7 years, the documented bound), so every
            // wait does (plus rounding).
            let bound = Duration::from_micros(1_000_000_000_000_000 + 1_000);
            for cost in [0, 1, u32::MAX] {
                for _ in 0..3 {
                    match limiter.check_key("k", cost).await {
                        Ok(d) => {
                            assert!(d.remaining <= capacity, "{capacity} {rate}: {d:?}");
                            assert!(d.retry_after <= bound && d.reset_after <= bound, "{d:?}");
                            assert!(d.allowed || d.retry_after > Duration::ZERO, "{d:?}");
                            if cost == 0 {
                                assert!(d.allowed, "{capacity} {rate}: {d:?}");
                            }
                        }
                        Err(resilience::rate_limit::RateLimitError::CostExceedsCapacity {
                            ..
                        }) => assert!(u64::from(cost) > capacity),
                        Err(e) => panic!("{capacity} {rate} cost {cost}: {e:?}"),
                    }
                }
            }
        }
    }
    assert!(built >= 10, "{built}");
    // A bucket of 1 refilled once in ~30 years admits once, then says when, in range.
    let slow = RedisRateLimiter::builder(redis.clone(), "slow")
        .capacity(1)
        .refill_per_sec(1.0 / (30.0 * 365.0 * 24.0 * 3600.0))
        .failure_policy(FailurePolicy::FailClosed)
        .build()
        .unwrap();
    assert!(slow.check_key("k", 1).await.unwrap().allowed);
    let d = slow.check_key("k", 1).await.unwrap();
    assert!(
        !d.allowed && d.retry_after > Duration::from_secs(29 * 365 * 24 * 3600),
        "{d:?}"
    );
}
