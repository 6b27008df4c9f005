//! `#[rate_limit(backend = "redis")]` and `#[circuit_breaker(shared = true)]` against a real,
//! private redis-server per test: the attribute shares its bucket or breaker with hand-built
//! limiters and breakers of the same name (as another process would), rejects without running
//! the body, and follows its policy when Redis is gone or no client is installed.
//!
//! Each test gives its functions their own client (`client = ...` from a static of its own) and
//! names, so tests do not depend on one another or on their order; only
//! `no_default_client_then_one_installed` touches the process-wide default client.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use resilience::circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset, CircuitState,
};
use resilience::rate_limit::{RateLimitError, RedisRateLimiter};
use resilience::redis::{RedisClient, RedisConfig, SharedCircuitBreaker};
use resilience::{CircuitOpenError, RateLimited, circuit_breaker, rate_limit};
use support::RedisServer;

#[derive(Debug)]
enum Error {
    Limited(RateLimited),
    Undecided(RateLimitError),
    Open(CircuitOpenError),
    Failed,
}

impl From<RateLimited> for Error {
    fn from(e: RateLimited) -> Self {
        Self::Limited(e)
    }
}
impl From<RateLimitError> for Error {
    fn from(e: RateLimitError) -> Self {
        Self::Undecided(e)
    }
}
impl From<CircuitOpenError> for Error {
    fn from(e: CircuitOpenError) -> Self {
        Self::Open(e)
    }
}

/// A client of its own (own "redis" breaker, so a stopped server cannot open a breaker another
/// test uses), on the shared key prefix "t".
async fn client(server: &RedisServer) -> RedisClient {
    client_with_timeout(server, Duration::from_secs(2)).await
}

async fn client_with_timeout(server: &RedisServer, response_timeout: Duration) -> RedisClient {
    let breaker = Arc::new(CircuitBreaker::new(
        "redis-test",
        CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Tolerant),
    ));
    let config = RedisConfig::builder()
        .port(server.port())
        .key_prefix("t")
        .response_timeout(response_timeout)
        .circuit_breaker(breaker)
        .build()
        .unwrap();
    RedisClient::connect(config)
        .await
        .expect("connect to the test server")
}

fn install(cell: &OnceLock<RedisClient>, client: RedisClient) {
    assert!(
        cell.set(client).is_ok(),
        "each test installs its client once"
    );
}

fn limited(result: Result<u32, Error>) -> RateLimited {
    match result {
        Err(Error::Limited(limited)) => limited,
        other => panic!("expected a rate-limit rejection, got {other:?}"),
    }
}

// --- one bucket shared with a hand-built limiter ---------------------------------------------

static SHARED_CLIENT: OnceLock<RedisClient> = OnceLock::new();
static SHARED_RUNS: AtomicU32 = AtomicU32::new(0);

#[rate_limit(per_minute = 3, backend = "redis", name = "shared-bucket", client = SHARED_CLIENT.get())]
async fn shared_a() -> Result<u32, Error> {
    Ok(SHARED_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

// Another function (think: another process) with the same limiter name.
#[rate_limit(per_minute = 3, backend = "redis", name = "shared-bucket", client = SHARED_CLIENT.get())]
async fn shared_b() -> Result<u32, Error> {
    Ok(SHARED_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[tokio::test]
async fn one_bucket_is_shared_by_name() {
    let server = RedisServer::start();
    install(&SHARED_CLIENT, client(&server).await);
    // Another connection, as another process would have; unkeyed attributes use the key "_".
    let other = RedisRateLimiter::builder(client(&server).await, "shared-bucket")
        .capacity(3)
        .refill_per_sec(3.0 / 60.0)
        .build()
        .unwrap();

    assert!(other.check("_", 1).await.unwrap().allowed);
    assert_eq!(shared_a().await.unwrap(), 1);
    assert_eq!(shared_b().await.unwrap(), 2);
    // 3 tokens spent between the three of them: the next 20 s have no token.
    let rejected = limited(shared_a().await);
    assert!(
        rejected.retry_after > Duration::from_secs(10),
        "{rejected:?}"
    );
    assert!(matches!(shared_b().await, Err(Error::Limited(_))));
    assert!(!other.check("_", 1).await.unwrap().allowed);
    assert_eq!(
        SHARED_RUNS.load(Ordering::SeqCst),
        2,
        "rejected bodies never ran"
    );
}

// --- the default name is the function's path --------------------------------------------------

static PATH_CLIENT: OnceLock<RedisClient> = OnceLock::new();
static PATH_RUNS: AtomicU32 = AtomicU32::new(0);

#[rate_limit(per_second = 2, backend = "redis", client = PATH_CLIENT.get())]
async fn named_by_path() -> Result<u32, Error> {
    Ok(PATH_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[tokio::test]
async fn the_default_name_is_the_function_path() {
    let server = RedisServer::start();
    install(&PATH_CLIENT, client(&server).await);
    let name = concat!(module_path!(), "::named_by_path");
    assert_eq!(name, "macros_redis::named_by_path");
    let other = RedisRateLimiter::builder(client(&server).await, name)
        .capacity(2)
        .refill_per_sec(2.0)
        .build()
        .unwrap();
    // Drain the function's bucket from outside: the function is refused at once.
    assert!(other.check("_", 2).await.unwrap().allowed);
    limited(named_by_path().await);
    assert_eq!(PATH_RUNS.load(Ordering::SeqCst), 0);
}

// --- keyed buckets -----------------------------------------------------------------------------

static KEYED_CLIENT: OnceLock<RedisClient> = OnceLock::new();
static KEYED_RUNS: AtomicU32 = AtomicU32::new(0);

#[rate_limit(per_minute = 2, key = user, backend = "redis", name = "keyed", client = KEYED_CLIENT.get())]
async fn per_user(user: &str) -> Result<u32, Error> {
    Ok(KEYED_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[rate_limit(per_minute = 1, key = id, backend = "redis", name = "keyed-num", client = &KEYED_CLIENT)]
async fn per_id(id: u64) -> Result<u32, Error> {
    Ok(KEYED_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[tokio::test]
async fn keyed_buckets_are_independent() {
    let server = RedisServer::start();
    install(&KEYED_CLIENT, client(&server).await);
    assert!(per_user("alice").await.is_ok());
    assert!(per_user("alice").await.is_ok());
    limited(per_user("alice").await);
    assert!(per_user("bob").await.is_ok(), "bob has his own bucket");
    assert_eq!(KEYED_RUNS.load(Ordering::SeqCst), 3);

    assert!(per_id(7).await.is_ok());
    limited(per_id(7).await);
    assert!(per_id(8).await.is_ok());
    assert_eq!(KEYED_RUNS.load(Ordering::SeqCst), 5);

    // The key is the caller's, under the limiter's name: visible to a hand-built limiter.
    let other = RedisRateLimiter::builder(client(&server).await, "keyed")
        .capacity(2)
        .refill_per_sec(2.0 / 60.0)
        .build()
        .unwrap();
    assert!(!other.check("alice", 1).await.unwrap().allowed);
    assert!(other.check("carol", 1).await.unwrap().allowed);
}

// --- the client expression -------------------------------------------------------------------

static LATE_CLIENT: OnceLock<RedisClient> = OnceLock::new();
static LATE_LOOKUPS: AtomicU32 = AtomicU32::new(0);

fn late_client() -> Option<&'static RedisClient> {
    LATE_LOOKUPS.fetch_add(1, Ordering::SeqCst);
    LATE_CLIENT.get()
}

#[rate_limit(per_minute = 1, backend = "redis", name = "late", on_redis_error = "closed", client = late_client())]
async fn late() -> Result<u32, Error> {
    Ok(1)
}

#[tokio::test]
async fn the_client_expression_is_evaluated_until_it_gives_a_client() {
    let server = RedisServer::start();
    // No client yet: undecided (closed), and asked again on the next call.
    assert!(matches!(late().await, Err(Error::Undecided(_))));
    assert!(matches!(late().await, Err(Error::Undecided(_))));
    assert_eq!(LATE_LOOKUPS.load(Ordering::SeqCst), 2);

    install(&LATE_CLIENT, client(&server).await);
    assert_eq!(late().await.unwrap(), 1);
    limited(late().await);
    limited(late().await);
    assert_eq!(
        LATE_LOOKUPS.load(Ordering::SeqCst),
        3,
        "evaluated once more, then the limiter keeps its client"
    );
}

// --- when Redis is gone: on_redis_error ------------------------------------------------------

static DOWN_CLIENT: OnceLock<RedisClient> = OnceLock::new();
static DOWN_RUNS: AtomicU32 = AtomicU32::new(0);

#[rate_limit(per_minute = 1, backend = "redis", name = "down-closed", on_redis_error = "closed", client = DOWN_CLIENT.get())]
async fn down_closed() -> Result<u32, Error> {
    Ok(DOWN_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[rate_limit(per_minute = 1, backend = "redis", name = "down-open", on_redis_error = "open", client = DOWN_CLIENT.get())]
async fn down_open() -> Result<u32, Error> {
    Ok(DOWN_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

// The default policy: local.
#[rate_limit(per_minute = 2, backend = "redis", name = "down-local", client = DOWN_CLIENT.get())]
async fn down_local() -> Result<u32, Error> {
    Ok(DOWN_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[tokio::test]
async fn on_redis_error_decides_when_redis_is_gone() {
    let mut server = RedisServer::start();
    // A short deadline: every call below while the server is gone waits for it.
    let redis = client_with_timeout(&server, Duration::from_millis(500)).await;
    install(&DOWN_CLIENT, redis);
    // Up: each function's own Redis bucket (per minute 1, 1, 2).
    assert!(down_closed().await.is_ok());
    limited(down_closed().await);
    assert!(down_open().await.is_ok());
    limited(down_open().await);
    assert_eq!(DOWN_RUNS.load(Ordering::SeqCst), 2);

    server.stop();
    // closed: "could not decide", as the function's error, body not run.
    match down_closed().await {
        Err(Error::Undecided(RateLimitError::Backend(_))) => {}
        other => panic!("expected the backend error, got {other:?}"),
    }
    assert_eq!(DOWN_RUNS.load(Ordering::SeqCst), 2);
    // open: everything goes through, the limit no longer applies.
    for _ in 0..3 {
        assert!(down_open().await.is_ok());
    }
    assert_eq!(DOWN_RUNS.load(Ordering::SeqCst), 5);
    // local (the default): the same numbers, in memory.
    assert!(down_local().await.is_ok());
    assert!(down_local().await.is_ok());
    let rejected = limited(down_local().await);
    assert!(
        rejected.retry_after > Duration::from_secs(20),
        "{rejected:?}"
    );
    assert_eq!(DOWN_RUNS.load(Ordering::SeqCst), 7);
}

// --- the shared breaker ------------------------------------------------------------------------

static BREAKER_CLIENT: OnceLock<RedisClient> = OnceLock::new();
static BREAKER_RUNS: AtomicU32 = AtomicU32::new(0);

#[circuit_breaker("shared-payments", shared = true, preset = "critical", client = BREAKER_CLIENT.get())]
async fn pay(fail: bool) -> Result<u32, Error> {
    let n = BREAKER_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if fail { Err(Error::Failed) } else { Ok(n) }
}

#[circuit_breaker("shared-inventory", shared = true, client = BREAKER_CLIENT.get())]
async fn reserve() -> Result<u32, Error> {
    Ok(BREAKER_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[tokio::test]
async fn shared_breaker_state_is_seen_by_every_instance() {
    let server = RedisServer::start();
    install(&BREAKER_CLIENT, client(&server).await);
    let other_client = client(&server).await;

    assert_eq!(pay(false).await.unwrap(), 1);
    // critical: 2 consecutive failures open it.
    assert!(matches!(pay(true).await, Err(Error::Failed)));
    assert!(matches!(pay(true).await, Err(Error::Failed)));
    match pay(false).await {
        Err(Error::Open(open)) => {
            assert_eq!(&*open.name, "shared-payments");
            let retry_after = open.retry_after.expect("open, so a retry time");
            assert!(retry_after > Duration::from_secs(50), "{retry_after:?}");
        }
        other => panic!("expected the open breaker, got {other:?}"),
    }
    assert_eq!(
        BREAKER_RUNS.load(Ordering::SeqCst),
        3,
        "rejected body never ran"
    );

    // Another instance (another client, same name) sees it open.
    let seen = SharedCircuitBreaker::builder(other_client.clone(), "shared-payments")
        .preset(CircuitBreakerPreset::Critical)
        .build()
        .unwrap();
    assert_eq!(seen.state().await.unwrap(), CircuitState::Open);
    assert!(seen.try_acquire().await.is_err());

    // And the other way round: failures recorded elsewhere open the attribute's breaker
    // (no preset: the default, 5 failures).
    let elsewhere = SharedCircuitBreaker::builder(other_client, "shared-inventory")
        .build()
        .unwrap();
    assert_eq!(reserve().await.unwrap(), 4);
    for _ in 0..5 {
        let _ = elsewhere.call(|| async { Err::<(), _>("down") }).await;
    }
    assert!(matches!(reserve().await, Err(Error::Open(_))));
    assert_eq!(BREAKER_RUNS.load(Ordering::SeqCst), 4);
}

// --- no client installed -----------------------------------------------------------------------

static NO_CLIENT_RUNS: AtomicU32 = AtomicU32::new(0);

#[rate_limit(
    per_minute = 1,
    backend = "redis",
    name = "no-client-closed",
    on_redis_error = "closed"
)]
async fn no_client_closed() -> Result<u32, Error> {
    Ok(NO_CLIENT_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[rate_limit(per_minute = 2, backend = "redis", name = "no-client-local")]
async fn no_client_local() -> Result<u32, Error> {
    Ok(NO_CLIENT_RUNS.fetch_add(1, Ordering::SeqCst) + 1)
}

#[circuit_breaker("no-client-breaker", shared = true)]
async fn no_client_breaker() -> Result<u32, Error> {
    NO_CLIENT_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(Error::Failed)
}

/// Everything written through `tracing` on this thread, for counting warnings.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_default_client_then_one_installed() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // The only test touching the process-wide default: none is installed yet.
    assert!(resilience::redis::default_client().is_none());

    // closed: every call is refused as undecided, without running the body.
    for _ in 0..3 {
        match no_client_closed().await {
            Err(Error::Undecided(RateLimitError::Backend(e))) => {
                assert!(e.to_string().contains("set_default_client"), "{e}");
            }
            other => panic!("expected the backend error, got {other:?}"),
        }
    }
    // local (the default): the attribute's numbers, in memory.
    assert!(no_client_local().await.is_ok());
    assert!(no_client_local().await.is_ok());
    limited(no_client_local().await);
    // The shared breaker lets every call through (nothing to share the count with).
    for _ in 0..8 {
        assert!(matches!(no_client_breaker().await, Err(Error::Failed)));
    }
    assert_eq!(NO_CLIENT_RUNS.load(Ordering::SeqCst), 10);
    assert_eq!(
        logs.count("no Redis client"),
        3,
        "one warning per function, not per call"
    );

    // Installed later: picked up on the next call.
    let server = RedisServer::start();
    let redis = client(&server).await;
    assert!(resilience::redis::set_default_client(redis.clone()).is_ok());
    assert!(
        resilience::redis::set_default_client(redis).is_err(),
        "set once"
    );
    assert_eq!(no_client_closed().await.unwrap(), 11, "Redis decides now");
    limited(no_client_closed().await);
    // A fresh Redis bucket (the in-memory one is spent): 2 more.
    assert!(no_client_local().await.is_ok());
    assert!(no_client_local().await.is_ok());
    limited(no_client_local().await);
    // The breaker counts in Redis now: the default (moderate) opens after 5 failures.
    for _ in 0..5 {
        assert!(matches!(no_client_breaker().await, Err(Error::Failed)));
    }
    assert!(matches!(no_client_breaker().await, Err(Error::Open(_))));
    assert_eq!(NO_CLIENT_RUNS.load(Ordering::SeqCst), 18);
    assert_eq!(logs.count("no Redis client"), 3, "no new warnings");
}
