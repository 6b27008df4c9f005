//! Safety under contention, against a real redis-server: fenced locks protect a store even
//! when holders outlive their TTL, and the Redis rate limiter admits no more than the GCRA bound
//! (and nearly all of it) with 32 concurrent clients. Run with `--nocapture` for the figures.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset};
use resilience::rate_limit::{FailurePolicy, RedisRateLimiter};
use resilience::redis::{Keys, RedisClient, RedisConfig, RedisError, driver};
use support::{RedisServer, processes_in_dir};

fn private_breaker(name: &str) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(
        name,
        CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Tolerant),
    ))
}

async fn client(server: &RedisServer, breaker: Arc<CircuitBreaker>) -> RedisClient {
    RedisClient::connect(
        RedisConfig::builder()
            .port(server.port())
            .key_prefix("safety")
            .response_timeout(Duration::from_secs(2))
            .circuit_breaker(breaker)
            .build()
            .unwrap(),
    )
    .await
    .expect("connect to the test server")
}

/// The protected resource: a counter that remembers the highest fencing token it has seen (on
/// reads and writes) and rejects any write carrying a lower one. Recording reads too is what
/// makes read-modify-write safe: once a newer holder has read, an older holder's write is stale.
#[derive(Default)]
struct FencedStore {
    inner: Mutex<StoreState>,
}

#[derive(Default)]
struct StoreState {
    value: u64,
    highest_token: u64,
    accepted: u64,
    rejected: u64,
    /// Tokens of accepted writes, in order.
    accepted_tokens: Vec<u64>,
}

impl FencedStore {
    fn read(&self, token: u64) -> Result<u64, u64> {
        let mut s = self.inner.lock().unwrap();
        if token < s.highest_token {
            return Err(s.highest_token);
        }
        s.highest_token = token;
        Ok(s.value)
    }

    /// Writes `value` if `token` is not stale; `Err(highest)` otherwise.
    fn write(&self, token: u64, value: u64) -> Result<(), u64> {
        let mut s = self.inner.lock().unwrap();
        if token < s.highest_token {
            s.rejected += 1;
            return Err(s.highest_token);
        }
        s.highest_token = token;
        s.value = value;
        s.accepted += 1;
        s.accepted_tokens.push(token);
        Ok(())
    }
}

const TASKS: u64 = 8;
const SECTIONS: u64 = 200;
const TTL: Duration = Duration::from_millis(150);
/// Longer than the TTL: the lock expires while its holder sleeps.
const PAUSE: Duration = Duration::from_millis(300);
/// Every `PAUSE_EVERY`-th section of each task pauses.
const PAUSE_EVERY: u64 = 100;

#[derive(Debug, Default, Clone, Copy)]
struct TaskStats {
    sections: u64,
    busy_retries: u64,
    written: u64,
    stale_rejected: u64,
    stale_read: u64,
    lost_locks: u64,
    /// A rejected write from a holder that still had its lock: must never happen.
    rejected_while_held: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_locks_reject_stale_writers() {
    let server = RedisServer::start();
    let dir = server.dir().to_owned();
    let redis = client(&server, private_breaker("redis-safety-lock")).await;
    let store = Arc::new(FencedStore::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let redis = redis.clone();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = Keys::lock("fenced-counter");
            let mut st = TaskStats::default();
            for section in 0..SECTIONS {
                // Bounded wait for the lock: 10 s at most per section.
                let guard = {
                    let mut tries = 0u32;
                    loop {
                        match redis.acquire_lock(&key, TTL).await {
                            Ok(g) => break g,
                            Err(RedisError::LockBusy { .. }) if tries < 5_000 => {
                                tries += 1;
                                st.busy_retries += 1;
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                            Err(e) => panic!("task {task}: acquire failed: {e}"),
                        }
                    }
                };
                let token = guard.fencing_token();
                st.sections += 1;
                let Ok(v) = store.read(token) else {
                    // Only possible if our lock already expired and someone newer came in.
                    st.stale_read += 1;
                    let lost = guard.release().await;
                    assert!(matches!(lost, Err(RedisError::LockLost)), "{lost:?}");
                    st.lost_locks += 1;
                    continue;
                };
                // Two tasks pause mid-section, longer than the TTL (a GC pause, a stalled VM).
                let pause = task < 2 && section % PAUSE_EVERY == PAUSE_EVERY / 2;
                if pause {
                    tokio::time::sleep(PAUSE).await;
                } else {
                    tokio::task::yield_now().await;
                }
                let wrote = store.write(token, v + 1);
                let released = guard.release().await;
                let lost = match released {
                    Ok(()) => false,
                    Err(RedisError::LockLost) => true,
                    Err(e) => panic!("release failed: {e}"),
                };
                st.lost_locks += u64::from(lost);
                match wrote {
                    Ok(()) => st.written += 1,
                    Err(_) => {
                        st.stale_rejected += 1;
                        // The store only turns away holders whose lock had expired.
                        if !lost {
                            st.rejected_while_held += 1;
                        }
                    }
                }
            }
            st
        }));
    }
    let mut total = TaskStats::default();
    for t in tasks {
        let s = t.await.expect("lock task");
        total.sections += s.sections;
        total.busy_retries += s.busy_retries;
        total.written += s.written;
        total.stale_rejected += s.stale_rejected;
        total.stale_read += s.stale_read;
        total.lost_locks += s.lost_locks;
        total.rejected_while_held += s.rejected_while_held;
    }
    let elapsed = started.elapsed();
    let s = store.inner.lock().unwrap();
    println!(
        "--- fenced locks: {TASKS} tasks x {SECTIONS} sections, TTL {TTL:?}, pauses {PAUSE:?} ---"
    );
    println!(
        "{} sections in {} ms; counter = {}, accepted writes = {}, stale writes rejected = {}, \
         stale reads = {}, locks lost = {}, busy retries = {}",
        total.sections,
        elapsed.as_millis(),
        s.value,
        s.accepted,
        s.rejected,
        total.stale_read,
        total.lost_locks,
        total.busy_retries
    );
    assert_eq!(total.sections, TASKS * SECTIONS);
    // No lost update: every accepted increment is in the counter.
    assert_eq!(s.value, s.accepted, "lost updates");
    assert_eq!(s.accepted, total.written);
    assert_eq!(s.rejected, total.stale_rejected);
    // No stale write accepted: accepted tokens strictly increase (each one newer than all before).
    assert!(
        s.accepted_tokens.windows(2).all(|w| w[0] < w[1]),
        "a write with an older token was accepted"
    );
    // The pauses really produced stale writers, and the store turned them away; a holder whose
    // lock was still valid was never turned away.
    assert!(
        s.rejected + total.stale_read > 0,
        "the pause scenario produced no stale access: the test would not catch a missing fence"
    );
    assert!(s.rejected > 0, "no stale write was attempted and rejected");
    assert_eq!(total.rejected_while_held, 0);
    assert!(total.lost_locks >= s.rejected);
    drop(s);
    drop(redis);
    drop(server);
    assert!(processes_in_dir(&dir).is_empty());
}

const CLIENTS: usize = 32;
const RUN: Duration = Duration::from_secs(5);
const BURST: u64 = 50;
const RATE: f64 = 200.0;

async fn server_time_us(redis: &RedisClient) -> u64 {
    let (secs, micros): (u64, u64) = redis.query(&driver::cmd("TIME")).await.unwrap();
    secs * 1_000_000 + micros
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_32_clients_stay_within_the_gcra_bound() {
    let server = RedisServer::start();
    let dir = server.dir().to_owned();
    let breaker = private_breaker("redis-safety-rate");
    let mut limiters = Vec::new();
    for _ in 0..CLIENTS {
        // One client (one connection) each: 32 independent callers.
        let redis = client(&server, breaker.clone()).await;
        limiters.push(
            RedisRateLimiter::builder(redis, "shared")
                .capacity(BURST)
                .refill_per_sec(RATE)
                .failure_policy(FailurePolicy::FailClosed)
                .build()
                .unwrap(),
        );
    }
    let clock = client(&server, breaker.clone()).await;
    let t0 = server_time_us(&clock).await;
    let end = Instant::now() + RUN;
    let mut tasks = Vec::new();
    for limiter in limiters {
        tasks.push(tokio::spawn(async move {
            let (mut admitted, mut refused, mut errors) = (0u64, 0u64, 0u64);
            while Instant::now() < end {
                match limiter.check("one-key", 1).await {
                    Ok(d) if d.allowed => admitted += 1,
                    Ok(_) => refused += 1,
                    Err(_) => errors += 1,
                }
            }
            (admitted, refused, errors)
        }));
    }
    let (mut admitted, mut refused, mut errors) = (0, 0, 0);
    for t in tasks {
        let (a, r, e) = t.await.expect("client task");
        admitted += a;
        refused += r;
        errors += e;
    }
    let t1 = server_time_us(&clock).await;
    // The server's time span covers every decision, so the bound is an upper bound.
    let span = Duration::from_micros(t1 - t0);
    let bound = BURST as f64 + span.as_secs_f64() * RATE;
    let ratio = admitted as f64 / bound;
    println!("--- rate limit: {CLIENTS} clients, one key, burst {BURST}, {RATE}/s ---");
    println!(
        "server span {} ms; admitted {admitted}, bound {bound:.1} ({:.2} %), refused {refused}, \
         errors {errors}, decisions {}/s",
        span.as_millis(),
        ratio * 100.0,
        (admitted + refused) as f64 / span.as_secs_f64()
    );
    assert_eq!(errors, 0);
    assert!(
        refused > admitted,
        "the clients did not press hard enough to test the bound"
    );
    assert!(
        admitted as f64 <= bound.floor(),
        "admitted {admitted} > GCRA bound {bound:.1}"
    );
    assert!(
        ratio >= 0.95,
        "admitted only {:.2} % of the bound",
        ratio * 100.0
    );
    drop(clock);
    drop(server);
    assert!(processes_in_dir(&dir).is_empty());
}
