//! Failure scenarios on one real redis-server, under load, with figures.
//!
//! (a) the server is killed and restarted on the same port; (b) it is frozen with SIGSTOP (a
//! partition: the connection stays open, nothing answers) and thawed with SIGCONT.
//!
//! Load: seven tasks call through one client — two per rate-limiter failure policy (fail open,
//! fail closed, local fallback) and one plain `PING` — each call timed. Checked: no call outlives
//! its deadline, the client's breaker opens while the server is away, each policy does what it
//! says while Redis is away and switches back to Redis when it returns, and Redis answers again
//! within 2 s of the server coming back. Run with `--nocapture` to see the figures.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resilience::circuit_breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitState};
use resilience::rate_limit::{FailurePolicy, KeyedRateLimiter, RateLimitError, RedisRateLimiter};
use resilience::redis::{RedisClient, RedisConfig, RedisError};
use support::{RedisServer, processes_in_dir};

/// Every call's deadline.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// Scheduling slack on a busy 2-core machine on top of the deadline; a hang would take far longer.
const SLACK: Duration = Duration::from_millis(750);
/// How long the server stays away.
const OUTAGE: Duration = Duration::from_millis(1500);
/// The promise: Redis answers again within this long after the server is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(2);
/// Load kept up after the server is back (longer than the bound, so a late recovery shows).
const AFTER: Duration = Duration::from_millis(2800);
/// The Redis buckets are so large they never run dry: `remaining > 0` means Redis decided.
const REDIS_CAPACITY: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    FailOpen,
    FailClosed,
    Local,
    Ping,
}

/// What one call returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Redis answered.
    Redis,
    /// The failure policy answered: fail open admitted, or the local limiter decided.
    Fallback { allowed: bool },
    /// An error (fail closed, or the plain client); `kind` is the Redis error kind.
    Error { kind: &'static str },
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    who: Who,
    /// Since the load started.
    at: Duration,
    latency: Duration,
    outcome: Outcome,
}

fn redis_kind(e: &(dyn std::error::Error + 'static)) -> &'static str {
    e.downcast_ref::<RedisError>()
        .map_or("other", RedisError::kind)
}

async fn one_call(who: Who, limiter: Option<&RedisRateLimiter>, redis: &RedisClient) -> Outcome {
    match (who, limiter) {
        (Who::Ping, _) | (_, None) => match redis.ping().await {
            Ok(_) => Outcome::Redis,
            Err(e) => Outcome::Error { kind: e.kind() },
        },
        (_, Some(l)) => match l.check("user-1", 1).await {
            Ok(d) if d.remaining > 0 => Outcome::Redis,
            Ok(d) => Outcome::Fallback { allowed: d.allowed },
            Err(RateLimitError::Backend(e)) => Outcome::Error {
                kind: redis_kind(&*e),
            },
            Err(e) => panic!("unexpected limiter error: {e}"),
        },
    }
}

/// What the server goes through.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Killed, then started again on the same port.
    KillRestart,
    /// SIGSTOP, then SIGCONT.
    Freeze,
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

struct Figures {
    /// What a fail-closed caller was told mid-outage.
    sample_error: String,
    /// Since the load started: fault injected, server back.
    fault_at: Duration,
    back_at: Duration,
    samples: Vec<Sample>,
    transitions: Vec<(Duration, CircuitState, CircuitState)>,
}

async fn run(fault: Fault) -> Figures {
    let mut server = RedisServer::start();
    let dir = server.dir().to_owned();
    let breaker = Arc::new(CircuitBreaker::new(
        "redis-chaos",
        CircuitBreakerConfig::builder()
            .failure_threshold(3)
            .reset_timeout(Duration::from_millis(300))
            .success_threshold(1)
            .half_open_max_calls(1)
            .build()
            .unwrap(),
    ));
    let start = Instant::now();
    let transitions = Arc::new(Mutex::new(Vec::new()));
    {
        let transitions = transitions.clone();
        breaker.on_state_change(move |c| {
            transitions
                .lock()
                .unwrap()
                .push((start.elapsed(), c.from, c.to))
        });
    }
    // The library's default reconnect backoff: the recovery figure is what users get.
    let redis = RedisClient::connect(
        RedisConfig::builder()
            .port(server.port())
            .key_prefix("chaos")
            .response_timeout(RESPONSE_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .circuit_breaker(breaker.clone())
            .build()
            .unwrap(),
    )
    .await
    .expect("connect");
    let limiter = |policy| {
        RedisRateLimiter::builder(redis.clone(), "chaos")
            .capacity(REDIS_CAPACITY)
            .refill_per_sec(REDIS_CAPACITY as f64)
            .failure_policy(policy)
            .build()
            .unwrap()
    };
    // One token per second, burst 1: while Redis is away the local limiter admits few.
    let local = Arc::new(
        KeyedRateLimiter::builder()
            .per_second(1)
            .burst(1)
            .build()
            .unwrap(),
    );
    let limiters = [
        (Who::FailOpen, Some(limiter(FailurePolicy::FailOpen))),
        (Who::FailClosed, Some(limiter(FailurePolicy::FailClosed))),
        (Who::Local, Some(limiter(FailurePolicy::Local(local)))),
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut spawn = |who: Who, limiter: Option<RedisRateLimiter>| {
        let stop = stop.clone();
        let redis = redis.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            // Bounded: the test sets `stop` after a fixed schedule; the cap is a backstop.
            while !stop.load(Ordering::Relaxed) && samples.len() < 100_000 {
                let t = Instant::now();
                let outcome = one_call(who, limiter.as_ref(), &redis).await;
                samples.push(Sample {
                    who,
                    at: t - start,
                    latency: t.elapsed(),
                    outcome,
                });
                // ~200 calls/s per task: load, without spinning while the breaker is open.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples
        }));
    };
    for (who, l) in &limiters {
        spawn(*who, l.clone());
        spawn(*who, l.clone());
    }
    spawn(Who::Ping, None);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let fault_at = start.elapsed();
    let pid = server.pid().expect("server runs");
    match fault {
        Fault::KillRestart => tokio::task::block_in_place(|| server.stop()),
        Fault::Freeze => signal(pid, "-STOP"),
    }
    // One fail-closed call in the middle of the outage: the error callers see.
    tokio::time::sleep(OUTAGE / 2).await;
    let sample_error = match limiters[1].1.as_ref().unwrap().check("user-1", 1).await {
        Err(e) => format!("{e}"),
        Ok(d) => format!("no error: {d:?}"),
    };
    tokio::time::sleep(OUTAGE - OUTAGE / 2).await;
    match fault {
        // `start_again` returns once the new server answers PING: "back" is then.
        Fault::KillRestart => tokio::task::block_in_place(|| server.start_again()),
        Fault::Freeze => signal(pid, "-CONT"),
    }
    let back_at = start.elapsed();
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.expect("load task"));
    }
    drop(limiters);
    drop(redis);
    drop(server);
    assert!(
        processes_in_dir(&dir).is_empty(),
        "a redis-server outlived the test"
    );
    let transitions = transitions.lock().unwrap().clone();
    Figures {
        sample_error,
        fault_at,
        back_at,
        samples,
        transitions,
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The shared checks, and the figures printed.
fn check(name: &str, f: &Figures) {
    let deadline = RESPONSE_TIMEOUT + SLACK;
    let max_latency = f.samples.iter().map(|s| s.latency).max().unwrap();
    let slowest = f.samples.iter().max_by_key(|s| s.latency).unwrap();
    let failed: Vec<&Sample> = f
        .samples
        .iter()
        .filter(|s| s.outcome != Outcome::Redis)
        .collect();
    let first_fail = failed.iter().map(|s| s.at).min().unwrap_or_default();
    let last_fail = failed
        .iter()
        .map(|s| s.at + s.latency)
        .max()
        .unwrap_or_default();
    let failed_while_down = failed
        .iter()
        .filter(|s| s.at >= f.fault_at && s.at < f.back_at)
        .count();
    let calls_while_down = f
        .samples
        .iter()
        .filter(|s| s.at >= f.fault_at && s.at < f.back_at)
        .count();
    let mut kinds: Vec<(&'static str, usize)> = Vec::new();
    for s in &failed {
        let k = match s.outcome {
            Outcome::Error { kind } => kind,
            Outcome::Fallback { .. } => "fallback",
            Outcome::Redis => unreachable!(),
        };
        match kinds.iter_mut().find(|(n, _)| *n == k) {
            Some((_, c)) => *c += 1,
            None => kinds.push((k, 1)),
        }
    }
    // Per caller: when Redis first answered again after the server came back.
    let recovery = |who: Who| {
        f.samples
            .iter()
            .filter(|s| s.who == who && s.at >= f.back_at && s.outcome == Outcome::Redis)
            .map(|s| s.at + s.latency - f.back_at)
            .min()
    };
    println!("--- {name} ---");
    println!(
        "calls: {} total, {calls_while_down} while down, {failed_while_down} of them failed or fell back",
        f.samples.len()
    );
    println!(
        "error window: {} ms (first failure at +{} ms after the fault, last at +{} ms after the server was back); outage {} ms",
        ms(last_fail.saturating_sub(first_fail)),
        ms(first_fail.saturating_sub(f.fault_at)),
        ms(last_fail.saturating_sub(f.back_at)),
        ms(f.back_at - f.fault_at),
    );
    println!("failures by kind: {kinds:?}");
    println!("fail-closed error mid-outage: {}", f.sample_error);
    println!(
        "slowest call: {} ms ({:?}, {:?}); deadline {} ms",
        ms(max_latency),
        slowest.who,
        slowest.outcome,
        ms(RESPONSE_TIMEOUT)
    );
    for who in [Who::Ping, Who::FailOpen, Who::FailClosed, Who::Local] {
        println!(
            "time to recover ({who:?}): {:?}",
            recovery(who).map(|d| format!("{} ms", ms(d)))
        );
    }
    println!(
        "breaker transitions (ms since start): {:?}",
        f.transitions
            .iter()
            .map(|(t, a, b)| format!("{} {a:?}->{b:?}", ms(*t)))
            .collect::<Vec<_>>()
    );

    // Fails fast: no call outlived its deadline (plus scheduling slack).
    assert!(
        max_latency <= deadline,
        "a call took {max_latency:?} (> {deadline:?}): {slowest:?}"
    );
    // Healthy before the fault.
    assert!(
        f.samples
            .iter()
            .filter(|s| s.at + s.latency < f.fault_at)
            .all(|s| s.outcome == Outcome::Redis),
        "failures before the fault"
    );
    assert!(failed_while_down > 0, "the outage was not noticed");
    // A clear error: says it is the rate limiter's Redis backend, and why.
    assert!(
        f.sample_error.contains("rate-limit backend unavailable")
            && (f.sample_error.contains("Redis") || f.sample_error.contains("redis")),
        "unclear error: {}",
        f.sample_error
    );
    // The breaker opened after the fault and closed again after the server came back.
    let opened = f
        .transitions
        .iter()
        .find(|(t, _, to)| *t >= f.fault_at && *to == CircuitState::Open);
    assert!(
        opened.is_some(),
        "the breaker never opened: {:?}",
        f.transitions
    );
    assert!(
        f.transitions
            .iter()
            .any(|(t, _, to)| *t >= f.back_at && *to == CircuitState::Closed),
        "the breaker did not close after recovery: {:?}",
        f.transitions
    );
    assert!(
        kinds.iter().any(|(k, _)| *k == "circuit_open"),
        "no call was refused by the open breaker: {kinds:?}"
    );
    // Each policy while Redis is away (from the breaker opening until the server is back, when
    // every call is sure to fail).
    let (open_at, _, _) = *opened.unwrap();
    let down: Vec<&Sample> = f
        .samples
        .iter()
        .filter(|s| s.at >= open_at && s.at + s.latency < f.back_at)
        .collect();
    for s in &down {
        match (s.who, s.outcome) {
            (Who::FailOpen, Outcome::Fallback { allowed: true }) => {}
            (Who::FailClosed | Who::Ping, Outcome::Error { kind }) => assert!(
                matches!(kind, "connection" | "timeout" | "circuit_open"),
                "unclear error kind {kind}"
            ),
            (Who::Local, Outcome::Fallback { .. }) => {}
            other => panic!("while down, {other:?} is not what the policy promises"),
        }
    }
    let local_admitted = down
        .iter()
        .filter(|s| s.who == Who::Local && s.outcome == (Outcome::Fallback { allowed: true }))
        .count();
    let local_total = down.iter().filter(|s| s.who == Who::Local).count();
    println!(
        "local fallback while down: {local_admitted} of {local_total} admitted (1/s, burst 1)"
    );
    assert!(
        local_total > 5 && local_admitted >= 1,
        "the local limiter did not decide"
    );
    // burst 1 + 1/s over the outage, +1 for a token refilled at the edge.
    let local_bound = 2 + OUTAGE.as_secs() as usize;
    assert!(
        local_admitted <= local_bound,
        "the local limiter admitted {local_admitted} > {local_bound}"
    );
    // Every caller is back on Redis within the bound, and stays there.
    for who in [Who::Ping, Who::FailOpen, Who::FailClosed, Who::Local] {
        let r = recovery(who).unwrap_or_else(|| panic!("{who:?} never recovered"));
        assert!(r <= RECOVERY_BOUND, "{who:?} recovered after {r:?}");
    }
    let tail_from = f.back_at + RECOVERY_BOUND;
    let tail: Vec<&Sample> = f.samples.iter().filter(|s| s.at >= tail_from).collect();
    assert!(!tail.is_empty());
    assert!(
        tail.iter().all(|s| s.outcome == Outcome::Redis),
        "failures after recovery: {:?}",
        tail.iter()
            .filter(|s| s.outcome != Outcome::Redis)
            .take(5)
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_under_load() {
    let f = run(Fault::KillRestart).await;
    check("server killed and restarted on the same port", &f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_with_sigstop_under_load() {
    let f = run(Fault::Freeze).await;
    check("server frozen with SIGSTOP, then SIGCONT", &f);
    // A frozen server does not refuse connections: the first failures are timeouts.
    assert!(
        f.samples
            .iter()
            .any(|s| s.outcome == Outcome::Error { kind: "timeout" }),
        "a partition must show up as timeouts"
    );
}
