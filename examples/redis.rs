//! The Redis layer in one tour: typed keys, a distributed rate limit, locks with fencing tokens
//! (a bounded wait, a watchdog, release by owner id), an optimistic (versioned) write, and
//! closing the client at shutdown.
//!
//! ```sh
//! redis-server --port 6380 --save '' &           # or any Redis 6+
//! REDIS_URL=redis://127.0.0.1:6380 cargo run --example redis
//! ```

use std::time::Duration;

use resilience::RedisKey;
use resilience::rate_limit::{FailurePolicy, KeyedRateLimit, RedisRateLimiter};
use resilience::redis::{Keys, LockOwner, RateWindow, RedisClient, RedisConfig, RedisError};

/// A key type of our own: `<prefix>:sword:goal:<goal_id>`, the value percent-encoded.
#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "goal:{goal_id}")]
struct GoalKey<'a> {
    goal_id: &'a str,
}

/// The lock on one report: `<prefix>:{report:<id>}` (a lock key is wrapped in a hash tag so its
/// fencing counter `...:fence` lands in the same Cluster slot).
#[derive(RedisKey)]
#[redis_key(namespace = "report", template = "{id}")]
struct ReportLock {
    id: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(url) = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) else {
        println!("This example needs a Redis server. Start one and point REDIS_URL at it:");
        println!();
        println!("    redis-server --port 6380 --save '' &");
        println!("    REDIS_URL=redis://127.0.0.1:6380 cargo run --example redis");
        println!();
        println!("(`rediss://user:password@host:port` for TLS with an ACL user.)");
        return Ok(());
    };
    tracing_subscriber::fmt().with_env_filter("info").init();

    let config = RedisConfig::from_url(&url)?
        .key_prefix("example")
        .response_timeout(Duration::from_secs(1))
        .build()?;
    println!("config: {config:?}"); // the password, if any, prints as <redacted>
    let redis = RedisClient::connect(config).await?;
    println!("PING round trip: {:?}", redis.ping().await?);

    // Typed keys: user input cannot inject separators, hash tags or glob characters.
    let goal = GoalKey {
        goal_id: "goal_abc123",
    };
    redis
        .set(&goal, "learn rust", Some(Duration::from_secs(60)))
        .await?;
    let sneaky = GoalKey { goal_id: "x:*{y}" };
    println!("{} / {}", redis.key(&goal)?, redis.key(&sneaky)?);
    println!("goal = {:?}", redis.get::<_, String>(&goal).await?);

    // A distributed rate limit: 5 requests burst, 1 per second refill, shared by every process.
    let ip = "192.168.1.1".parse()?;
    for i in 1..=7 {
        let d = redis
            .rate_limit(&Keys::rate_ip(ip, RateWindow::Second), 5, 1.0, 1)
            .await?;
        println!(
            "request {i}: allowed={} remaining={} retry_after={:?}",
            d.allowed, d.remaining, d.retry_after
        );
    }
    // The same through the limiter trait, falling open if Redis stops answering.
    let limiter = RedisRateLimiter::builder(redis.clone(), "api")
        .capacity(100)
        .refill_per_sec(10.0)
        .failure_policy(FailurePolicy::FailOpen)
        .build()?;
    println!("limiter: {:?}", limiter.check_key("user-42", 1).await?);

    // A lock with a fencing token: pass the token to whatever you write.
    let written = redis
        .with_lock(
            &Keys::lock("goal_abc123"),
            Duration::from_secs(10),
            async |lock| format!("wrote with fencing token {}", lock.fencing_token()),
        )
        .await?;
    println!("{written}");
    let report = ReportLock { id: 7 };
    let held = redis
        .lock(&report)
        .ttl(Duration::from_millis(300))
        .watchdog() // extended every 100 ms while `held` lives
        .acquire()
        .await?;
    println!("lock key: {}", held.key());
    match redis.acquire_lock(&report, Duration::from_secs(5)).await {
        Err(RedisError::LockBusy { retry_after }) => println!("busy, retry in {retry_after:?}"),
        other => println!("unexpected: {other:?}"),
    }
    // A bounded wait: retried with backoff until the holder lets go (or 2 s pass).
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let lost = held.is_lost();
        held.release().await.map(|()| lost)
    });
    let waited = redis
        .lock(&report)
        .ttl(Duration::from_secs(5))
        .wait(Duration::from_secs(2))
        .acquire()
        .await?;
    println!(
        "waited for the lock (the watchdog kept it past its 300 ms TTL; lost: {})",
        releaser.await??
    );
    // Release by owner id, without the guard (e.g. from another process).
    let owner: LockOwner = waited.detach(); // no guard any more; the lock stays held
    println!(
        "released by owner id: {}",
        redis.release_lock(&report, owner).await?
    );

    // Optimistic writes: create once, then update only from the version you read.
    let doc = Keys::idempotency("payments", "order-1001");
    redis.del(&doc).await?;
    println!(
        "created: {}",
        redis.create_if_not_exists(&doc, "pending", None).await?
    );
    let v = redis
        .get_versioned::<_, String>(&doc)
        .await?
        .map(|v| v.version)
        .unwrap_or(0);
    println!(
        "updated to version {}",
        redis.conditional_update(&doc, v, "paid").await?
    );
    match redis.conditional_update(&doc, v, "paid twice").await {
        Err(e @ RedisError::VersionMismatch { .. }) => println!("stale write refused: {e}"),
        other => println!("unexpected: {other:?}"),
    }

    // At shutdown (e.g. a `#[shutdown_hook]`): every clone stops sending.
    redis.close().await;
    match redis.ping().await {
        Err(e @ RedisError::Closed) => println!("after close: {e}"),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
