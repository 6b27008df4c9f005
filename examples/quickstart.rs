//! A tour of the toolkit with no Redis needed: `cargo run --example quickstart`.
//!
//! A simulated flaky upstream ("weather") is called through a rate limiter, a circuit breaker and
//! a retry policy, in that order from the outside in. The tour prints every limiter decision,
//! every retry and every breaker transition as it happens, then a summary, and exits 0.
//!
//! The upstream follows a script so the tour is the same on every run: it is healthy, then has a
//! few transient hiccups (retries absorb them), then goes down hard (the breaker opens and calls
//! fail fast instead of piling up), then recovers (the breaker probes in half-open and closes).
//! A last round runs the same stack declared with attributes on one `async fn`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use resilience::circuit_breaker::{CallError, CircuitBreaker, CircuitBreakerConfig};
use resilience::retry::{Backoff, RetryError, RetryPolicy};
use resilience::{
    CircuitOpenError, RateLimited, RateLimiter, circuit_breaker, configure_circuit_breaker,
    rate_limit, retry,
};

/// What the fake upstream does on a given call number.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mood {
    Healthy,
    /// Fails once with a transient error, then answers.
    Hiccup,
    Down,
}

/// A flaky upstream: its mood changes per round of the tour.
struct Upstream {
    mood: std::sync::Mutex<Mood>,
    calls: AtomicU32,
    hiccup_pending: std::sync::atomic::AtomicBool,
}

impl Upstream {
    fn set_mood(&self, mood: Mood) {
        if let Ok(mut m) = self.mood.lock() {
            *m = mood;
        }
        self.hiccup_pending
            .store(mood == Mood::Hiccup, Ordering::Relaxed);
    }

    async fn forecast(&self, city: &str) -> Result<String, std::io::Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await; // network time
        let mood = self.mood.lock().map(|m| *m).unwrap_or(Mood::Down);
        match mood {
            Mood::Healthy => Ok(format!("{city}: sunny, 21°C")),
            Mood::Hiccup if self.hiccup_pending.swap(false, Ordering::Relaxed) => Err(
                std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset"),
            ),
            Mood::Hiccup => Ok(format!("{city}: cloudy, 17°C")),
            Mood::Down => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            )),
        }
    }
}

/// The same stack as the hand-built one below, declared: attributes wrap outermost first, so the
/// limiter sees every call, the breaker one call per retried sequence, and the retry each attempt.
/// `io::Error` receives the rejections (`From<RateLimited>`, `From<CircuitOpenError>`) and
/// classifies what is worth retrying (`Retryable`: refused / reset connections are).
#[rate_limit(per_second = 20, burst = 5)]
#[circuit_breaker("weather-declared")]
#[retry(
    max_attempts = 3,
    initial_delay_ms = 20,
    max_delay_ms = 100,
    backoff = "exponential"
)]
async fn declared_forecast(upstream: &Upstream, city: &'static str) -> std::io::Result<String> {
    upstream.forecast(city).await
}

/// Describes a declared call's outcome.
fn describe(result: &std::io::Result<String>) -> String {
    match result {
        Ok(forecast) => format!("ok: {forecast}"),
        Err(e) => match e.get_ref() {
            Some(inner) if inner.is::<CircuitOpenError>() => "rejected fast: breaker open".into(),
            Some(inner) if inner.is::<RateLimited>() => format!("rate limited: {inner}"),
            _ => format!("failed: {e}"),
        },
    }
}

#[derive(Debug)]
enum Outcome {
    Ok(String),
    RateLimited(Duration),
    BreakerOpen(Option<Duration>),
    Failed(String),
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let upstream = Arc::new(Upstream {
        mood: std::sync::Mutex::new(Mood::Healthy),
        calls: AtomicU32::new(0),
        hiccup_pending: std::sync::atomic::AtomicBool::new(false),
    });

    // 1. Rate limiter: 20 requests/s with a burst of 5 (GCRA, one atomic, no locks).
    let limiter = RateLimiter::builder().per_second(20).burst(5).build()?;

    // 2. Circuit breaker: opens after 3 consecutive failed sequences, probes after 300 ms.
    let breaker = CircuitBreaker::new(
        "weather",
        CircuitBreakerConfig::builder()
            .failure_threshold(3)
            .reset_timeout(Duration::from_millis(300))
            .build()?,
    );
    breaker.on_state_change(|change| {
        println!(
            "  [breaker] {}: {} -> {}",
            change.name, change.from, change.to
        );
    });

    // 3. Retry: 3 attempts, exponential backoff from 20 ms, inside the breaker.
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Exponential)
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(100))
        .on_retry(|event: &resilience::RetryEvent<'_, std::io::Error>| {
            let why = event
                .error
                .error()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "timed out".to_owned());
            println!(
                "  [retry]   attempt {}/{} failed ({why}); next in {:?}",
                event.attempt, event.max_attempts, event.delay
            );
        })
        .build()?;

    let call = |city: &'static str| {
        let upstream = Arc::clone(&upstream);
        let limiter = &limiter;
        let breaker = &breaker;
        let policy = &policy;
        async move {
            if let Err(limited) = limiter.check() {
                return Outcome::RateLimited(limited.retry_after);
            }
            let result = breaker
                .call(|| retry(|| upstream.forecast(city), policy.clone()))
                .await;
            match result {
                Ok(forecast) => Outcome::Ok(forecast),
                Err(CallError::Open(open)) => Outcome::BreakerOpen(open.retry_after),
                Err(CallError::Inner(RetryError::Exhausted {
                    attempts,
                    last_error,
                })) => Outcome::Failed(format!("{last_error} after {attempts} attempts")),
                Err(CallError::Inner(other)) => Outcome::Failed(other.to_string()),
            }
        }
    };

    let mut tally = [0u32; 4];
    let rounds: [(&str, Mood, usize, Duration); 5] = [
        (
            "healthy upstream",
            Mood::Healthy,
            3,
            Duration::from_millis(60),
        ),
        (
            "a burst of 8 calls at once",
            Mood::Healthy,
            8,
            Duration::ZERO,
        ),
        (
            "transient hiccups",
            Mood::Hiccup,
            2,
            Duration::from_millis(60),
        ),
        ("upstream down", Mood::Down, 6, Duration::from_millis(60)),
        (
            "upstream back",
            Mood::Healthy,
            3,
            Duration::from_millis(120),
        ),
    ];
    for (title, mood, calls, pause) in rounds {
        println!("\n== {title}");
        if title == "upstream back" {
            // Let the reset timeout pass so the breaker lets a trial call through.
            tokio::time::sleep(Duration::from_millis(350)).await;
        } else {
            // Let the limiter refill between rounds.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        upstream.set_mood(mood);
        for i in 0..calls {
            let outcome = call("Lisbon").await;
            let line = match &outcome {
                Outcome::Ok(forecast) => {
                    tally[0] += 1;
                    format!("ok: {forecast}")
                }
                Outcome::RateLimited(after) => {
                    tally[1] += 1;
                    format!("rate limited, retry after {after:.1?}")
                }
                Outcome::BreakerOpen(after) => {
                    tally[2] += 1;
                    let after = after
                        .map(|d| format!(", retry after {d:.0?}"))
                        .unwrap_or_default();
                    format!("rejected fast: breaker open{after}")
                }
                Outcome::Failed(why) => {
                    tally[3] += 1;
                    format!("failed: {why}")
                }
            };
            println!("  call {:>2}: {line}", i + 1);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }

    let snapshot = breaker.snapshot();
    println!(
        "\nsummary: {} ok, {} rate limited, {} rejected by the open breaker, {} failed; \
         upstream saw {} calls; breaker is {}; {:.1?} elapsed",
        tally[0],
        tally[1],
        tally[2],
        tally[3],
        upstream.calls.load(Ordering::Relaxed),
        snapshot.state,
        started.elapsed()
    );

    // The declared stack: its breaker takes the same numbers, registered before first use.
    println!("\n== the same stack, declared with attributes");
    let declared = configure_circuit_breaker(
        "weather-declared",
        CircuitBreakerConfig::builder()
            .failure_threshold(3)
            .reset_timeout(Duration::from_millis(300))
            .build()?,
    )?;
    for (mood, calls) in [(Mood::Hiccup, 2), (Mood::Down, 5)] {
        upstream.set_mood(mood);
        for _ in 0..calls {
            let result = declared_forecast(&upstream, "Porto").await;
            println!("  {mood:?} upstream: {}", describe(&result));
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    println!("  declared breaker is {}", declared.state());
    Ok(())
}
