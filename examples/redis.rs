//! The Redis layer in one tour: typed keys, a distributed rate limit, a lock with a fencing
//! token, and an optimistic (versioned) write.
//!
//! ```sh
//! redis-server --port 6380 --save '' &           # or any Redis 6+
//! REDIS_URL=redis://127.0.0.1:6380 cargo run --example redis
//! ```

use std::time::Duration;

use resilience::rate_limit::{FailurePolicy, KeyedRateLimit, RedisRateLimiter};
use resilience::redis::{
    KeyWriter, Keys, RateWindow, RedisClient, RedisConfig, RedisError, RedisKey,
};

/// A key type of our own: `<prefix>:sword:goal:<goal_id>` (what `#[derive(RedisKey)]` writes).
struct GoalKey<'a> {
    goal_id: &'a str,
}

impl RedisKey for GoalKey<'_> {
    const NAMESPACE: &'static str = "sword";
    fn write_key(&self, w: &mut KeyWriter) {
        w.literal("goal:");
        w.segment(self.goal_id);
    }
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
            async |token| format!("wrote with fencing token {token}"),
        )
        .await?;
    println!("{written}");
    let held = redis
        .acquire_lock(&Keys::lock("report"), Duration::from_secs(5))
        .await?;
    match redis
        .acquire_lock(&Keys::lock("report"), Duration::from_secs(5))
        .await
    {
        Err(RedisError::LockBusy { retry_after }) => println!("busy, retry in {retry_after:?}"),
        other => println!("unexpected: {other:?}"),
    }
    held.release().await?;

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
    Ok(())
}
