//! Seed 001's presets: retry service policies (runtime and `#[retry(service = ...)]`, on tokio's
//! paused clock) and limiter presets (runtime on a `ManualClock`, `#[rate_limit(preset = ...)]`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::rate_limit::{KeyedRateLimiter, LimiterPreset, ManualClock, Quota, RateLimiter};
use resilience::retry::{Backoff, RetryEvent, RetryPolicy, RetryService, Retryable};
use resilience::{RateLimited, UnknownPreset, rate_limit, retry};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
enum Error {
    Transient,
    Fatal,
    Limited,
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient)
    }
}

impl From<RateLimited> for Error {
    fn from(_: RateLimited) -> Self {
        Self::Limited
    }
}

// --- retry service policies ------------------------------------------------------------------

#[test]
fn service_policies_have_seed_numbers() {
    let secs = Duration::from_secs;
    let cases = [
        (
            RetryService::Database,
            3,
            Duration::from_secs(1),
            secs(10),
            secs(30),
        ),
        (
            RetryService::Network,
            3,
            Duration::from_millis(500),
            secs(5),
            secs(15),
        ),
        (
            RetryService::Kafka,
            5,
            Duration::from_secs(1),
            secs(30),
            secs(60),
        ),
        (
            RetryService::Vault,
            3,
            Duration::from_secs(2),
            secs(20),
            secs(60),
        ),
    ];
    for (service, attempts, initial, max, total) in cases {
        let p = RetryPolicy::for_service(service);
        assert_eq!(p.max_attempts(), attempts, "{service}");
        assert_eq!(p.initial_delay(), initial, "{service}");
        assert_eq!(p.max_delay(), max, "{service}");
        assert_eq!(p.total_timeout(), Some(total), "{service}");
        assert_eq!(p.backoff(), Backoff::ExponentialJitter, "{service}");
        assert_eq!(p.multiplier(), 2.0, "{service}");
        assert_eq!(p.jitter(), 0.5, "{service}");
        // By name, through `From`, and the name round trip give the same policy.
        let by_name = RetryPolicy::service(service.name()).expect("known name");
        assert_eq!(format!("{by_name:?}"), format!("{p:?}"));
        assert_eq!(
            format!("{:?}", RetryPolicy::from(service)),
            format!("{p:?}")
        );
        assert_eq!(RetryService::from_name(&service.to_string()), Some(service));
    }
    assert_eq!(
        RetryService::NAMES,
        ["database", "network", "kafka", "vault"]
    );
}

#[test]
fn service_delays_grow_exponentially_and_stop_at_max_delay() {
    let kafka = RetryPolicy::for_service(RetryService::Kafka);
    // With a jitter draw of 0 (the full delay): 1, 2, 4, 8, 16, 30, 30 s.
    let full: Vec<_> = (1..=7).map(|n| kafka.delay(n, 0.0).as_secs()).collect();
    assert_eq!(full, [1, 2, 4, 8, 16, 30, 30]);
    // The jitter shortens a delay by at most half.
    assert_eq!(kafka.delay(3, 1.0), Duration::from_secs(2));
}

#[test]
fn unknown_service_name_is_a_typed_error() {
    let err: UnknownPreset = RetryPolicy::service("Database").unwrap_err();
    assert_eq!(err.kind, "retry service");
    assert_eq!(err.name, "Database");
    assert_eq!(err.valid, RetryService::NAMES);
    assert_eq!(
        err.to_string(),
        "unknown retry service `Database`; valid names: database, network, kafka, vault"
    );
    assert!("".parse::<RetryService>().is_err());
}

#[test]
fn service_builder_keeps_numbers_and_takes_hooks() {
    let p = RetryService::Vault
        .builder()
        .retry_if(|e: &Error| *e == Error::Transient)
        .build()
        .expect("valid");
    assert_eq!(p.max_attempts(), 3);
    assert_eq!(p.initial_delay(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn service_policy_retries_with_its_delays() {
    let calls = AtomicU32::new(0);
    let started = Instant::now();
    let out: Result<(), Error> = RetryPolicy::for_service(RetryService::Network)
        .run(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Error::Transient) }
        })
        .await;
    assert_eq!(out, Err(Error::Transient));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Two waits: 500 ms and 1 s, each shortened by at most half.
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(750)..=Duration::from_millis(1500)).contains(&waited),
        "{waited:?}"
    );
}

static DB_CALLS: AtomicU32 = AtomicU32::new(0);
static DB_DELAYS: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

fn record_db(ev: &RetryEvent<'_, Error>) {
    DB_DELAYS.lock().unwrap().push(ev.delay);
}

#[retry(service = "database", on_retry = record_db)]
async fn query() -> Result<u32, Error> {
    DB_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(Error::Transient)
}

#[tokio::test(start_paused = true)]
async fn attribute_service_database_makes_three_attempts_with_its_delays() {
    let started = Instant::now();
    assert_eq!(query().await, Err(Error::Transient));
    assert_eq!(DB_CALLS.load(Ordering::SeqCst), 3);
    let delays = DB_DELAYS.lock().unwrap().clone();
    assert_eq!(delays.len(), 2);
    // 1 s then 2 s, each shortened by the jitter by at most half.
    assert!((Duration::from_millis(500)..=Duration::from_secs(1)).contains(&delays[0]));
    assert!((Duration::from_secs(1)..=Duration::from_secs(2)).contains(&delays[1]));
    // Timers fire on whole milliseconds.
    let waited = started.elapsed();
    let sum = delays[0] + delays[1];
    assert!(
        (sum..=sum + Duration::from_millis(2)).contains(&waited),
        "{waited:?}"
    );
}

static KAFKA_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry(service = "kafka")]
async fn publish(fatal_after: u32) -> Result<(), Error> {
    let n = KAFKA_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n > fatal_after {
        Err(Error::Fatal)
    } else {
        Err(Error::Transient)
    }
}

#[tokio::test(start_paused = true)]
async fn attribute_service_kafka_makes_five_attempts_and_stops_on_fatal() {
    let started = Instant::now();
    assert_eq!(publish(100).await, Err(Error::Transient));
    assert_eq!(KAFKA_CALLS.load(Ordering::SeqCst), 5);
    // Waits of 1, 2, 4 and 8 s, each at least half its full length.
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(7500)..=Duration::from_secs(15)).contains(&waited),
        "{waited:?}"
    );
    // A non-retryable error ends the sequence at once.
    KAFKA_CALLS.store(0, Ordering::SeqCst);
    assert_eq!(publish(1).await, Err(Error::Fatal));
    assert_eq!(KAFKA_CALLS.load(Ordering::SeqCst), 2);
}

#[retry(service = "vault")]
fn read_secret_blocking() -> Result<(), Error> {
    Err(Error::Fatal)
}

#[test]
fn attribute_service_works_on_sync_fns() {
    assert_eq!(read_secret_blocking(), Err(Error::Fatal));
}

// --- limiter presets -------------------------------------------------------------------------

/// How many single-token checks pass in a row (bounded).
fn admitted(limiter: &RateLimiter<ManualClock>) -> u32 {
    (0..10_000).take_while(|_| limiter.check().is_ok()).count() as u32
}

#[test]
fn limiter_presets_have_seed_numbers() {
    let api = Quota::preset(LimiterPreset::Api);
    assert_eq!(api.burst(), 20);
    assert_eq!(api.replenish_interval(), Duration::from_millis(100));
    let db = LimiterPreset::Database.quota();
    assert_eq!(db.burst(), 100);
    assert_eq!(db.replenish_interval(), Duration::from_millis(20));
    assert_eq!(LimiterPreset::NAMES, ["api", "database"]);
    assert_eq!("api".parse::<LimiterPreset>(), Ok(LimiterPreset::Api));
    let err = "apis".parse::<LimiterPreset>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown limiter preset `apis`; valid names: api, database"
    );
}

#[test]
fn api_preset_admits_its_burst_then_its_rate() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::with_clock(Quota::preset(LimiterPreset::Api), clock.clone());
    assert_eq!(admitted(&limiter), 20);
    let refused = limiter.check().unwrap_err();
    assert_eq!(refused.retry_after, Duration::from_millis(100));
    // One second refills 10 tokens.
    clock.advance(Duration::from_secs(1));
    assert_eq!(admitted(&limiter), 10);
    // A long idle time refills only up to the burst.
    clock.advance(Duration::from_secs(60));
    assert_eq!(admitted(&limiter), 20);
}

#[test]
fn database_preset_admits_its_burst_then_its_rate() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder()
        .preset(LimiterPreset::Database)
        .clock(clock.clone())
        .build()
        .expect("valid");
    assert_eq!(admitted(&limiter), 100);
    clock.advance(Duration::from_millis(100));
    assert_eq!(admitted(&limiter), 5);
}

#[test]
fn overriding_the_rate_keeps_the_burst_ratio_unless_burst_is_given() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder()
        .preset(LimiterPreset::Api)
        .per_second(30)
        .clock(clock.clone())
        .build()
        .expect("valid");
    assert_eq!(limiter.quota().burst(), 60);
    assert_eq!(admitted(&limiter), 60);
    // 30 tokens a second (the interval is rounded up to whole nanoseconds, never over the rate).
    clock.advance(limiter.quota().replenish_interval() * 30);
    assert_eq!(admitted(&limiter), 30);

    let fixed = RateLimiter::builder()
        .preset(LimiterPreset::Api)
        .per_second(30)
        .burst(7)
        .build()
        .expect("valid");
    assert_eq!(fixed.quota().burst(), 7);
    // The order of `burst` and the rate does not matter; a later preset starts over.
    let early_burst = RateLimiter::builder()
        .preset(LimiterPreset::Api)
        .burst(7)
        .per_second(30)
        .build()
        .expect("valid");
    assert_eq!(early_burst.quota().burst(), 7);
    let reset = RateLimiter::builder()
        .burst(7)
        .preset(LimiterPreset::Database)
        .build()
        .expect("valid");
    assert_eq!(reset.quota().burst(), 100);
}

#[test]
fn overriding_rate_whose_burst_overflows_is_rejected() {
    let err = RateLimiter::builder()
        .preset(LimiterPreset::Api)
        .per_minute(u32::MAX)
        .build()
        .unwrap_err();
    assert_eq!(err.field, "per_minute");
    // With an explicit burst the same rate is fine.
    assert!(
        RateLimiter::builder()
            .preset(LimiterPreset::Api)
            .per_minute(u32::MAX)
            .burst(1)
            .build()
            .is_ok()
    );
}

#[test]
fn keyed_limiter_takes_the_preset_per_key() {
    let clock = ManualClock::new();
    let limiter: KeyedRateLimiter<String, ManualClock> = KeyedRateLimiter::builder()
        .preset(LimiterPreset::Api)
        .clock(clock.clone())
        .build()
        .expect("valid");
    for _ in 0..20 {
        assert!(limiter.check_key("ann").is_ok());
    }
    assert!(limiter.check_key("ann").is_err());
    assert!(limiter.check_key("bob").is_ok());
    clock.advance(Duration::from_millis(100));
    assert!(limiter.check_key("ann").is_ok());
    assert!(limiter.check_key("ann").is_err());
}

// --- #[rate_limit(preset = ...)] ------------------------------------------------------------
//
// The attribute's limiter reads the real clock, so each test bounds what it admits by the time
// it measured: the burst, plus one token per interval elapsed (plus one for a partial interval).

fn assert_burst(admitted: u32, burst: u32, interval: Duration, elapsed: Duration) {
    let refilled = (elapsed.as_nanos() / interval.as_nanos()) as u32 + 1;
    assert!(
        (burst..=burst + refilled).contains(&admitted),
        "admitted {admitted}, burst {burst}, elapsed {elapsed:?}"
    );
}

#[rate_limit(preset = "api")]
fn api_call() -> Result<(), Error> {
    Ok(())
}

#[test]
fn attribute_preset_api_admits_twenty_at_once() {
    let started = std::time::Instant::now();
    let n = (0..10_000).take_while(|_| api_call().is_ok()).count() as u32;
    assert_burst(n, 20, Duration::from_millis(100), started.elapsed());
    assert_eq!(api_call(), Err(Error::Limited));
}

#[rate_limit(preset = "api", per_second = 30)]
async fn api_call_faster() -> Result<(), Error> {
    Ok(())
}

#[tokio::test]
async fn attribute_preset_with_rate_keeps_the_ratio() {
    let started = std::time::Instant::now();
    let mut n = 0;
    while n < 10_000 && api_call_faster().await.is_ok() {
        n += 1;
    }
    assert_burst(n, 60, Duration::from_nanos(33_333_334), started.elapsed());
}

#[rate_limit(preset = "database", burst = 3)]
fn db_call() -> Result<(), Error> {
    Ok(())
}

#[test]
fn attribute_preset_with_burst_uses_the_burst() {
    let started = std::time::Instant::now();
    let n = (0..10_000).take_while(|_| db_call().is_ok()).count() as u32;
    assert_burst(n, 3, Duration::from_millis(20), started.elapsed());
}

#[rate_limit(preset = "database", per_minute = 6, key = user)]
fn per_user(user: &str) -> Result<(), Error> {
    let _ = user;
    Ok(())
}

#[test]
fn attribute_preset_keyed_per_minute_keeps_the_ratio() {
    // 6 per minute: one token every 10 s, burst 12, nothing refills during the test.
    for _ in 0..12 {
        assert_eq!(per_user("ann"), Ok(()));
    }
    assert_eq!(per_user("ann"), Err(Error::Limited));
    assert_eq!(per_user("bob"), Ok(()));
}
