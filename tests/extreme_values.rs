//! Every in-memory public builder, fed extreme values (0, 1, MAX, NaN / infinities for floats,
//! durations near the clock's end), then used once: the builder refuses the value with a typed
//! `ConfigError`, or the built thing behaves correctly. Never a panic, a wrap or a hang.
//!
//! Time: limiters on a `ManualClock`, tokio parts on a paused runtime (an outer timeout of a
//! century stands for "hangs": it fires only when nothing else would ever happen).

#[path = "support/clock_end.rs"]
mod clock_end;
use clock_end::longest_from;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;
use resilience::bulkhead::{Bulkhead, BulkheadFull};
use resilience::circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitState, SlidingWindow,
};
use resilience::health::{HealthMonitor, HealthRegistry, HealthStatus};
use resilience::rate_limit::{CheckError, KeyedRateLimiter, ManualClock, RateLimiter};
use resilience::shutdown::{
    Priority, ShutdownConfig, ShutdownCoordinator, ShutdownError, ShutdownOutcome,
};
use resilience::{ConfigError, TimeoutError};
use tokio::time::Instant;

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
/// Longer than any finite wait below: reaching it means "would wait forever".
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Stands for "a duration near the end of tokio's clock" (`now + d` exists, `now + d + 1 ms`
/// does not), which depends on `now`: [`resolve`] turns it into one inside a runtime. Where it
/// is not resolved it is just one more huge value.
const NEAR_END: Duration = Duration::from_secs(u64::MAX);

/// Extreme durations (and a few ordinary ones so valid configurations get exercised too).
fn durations() -> impl Strategy<Value = Duration> {
    select(vec![
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_millis(10),
        Duration::from_secs(1),
        YEAR,
        Duration::from_nanos(u64::MAX / 2),
        Duration::from_nanos(u64::MAX),
        NEAR_END,
        Duration::MAX - Duration::from_nanos(1),
        Duration::MAX,
    ])
}

/// Replaces the `NEAR_END` placeholder by a real near-the-end duration for tokio's clock.
fn resolve(d: Duration) -> Duration {
    if d == NEAR_END {
        longest_from(Instant::now()) - Duration::from_micros(500)
    } else {
        d
    }
}

fn u32s() -> impl Strategy<Value = u32> {
    select(vec![0, 1, 2, 3, 1000, u32::MAX - 1, u32::MAX])
}

fn usizes() -> impl Strategy<Value = usize> {
    select(vec![
        0,
        1,
        2,
        1000,
        usize::MAX / 8,
        usize::MAX / 8 + 1,
        usize::MAX,
    ])
}

fn floats() -> impl Strategy<Value = f64> {
    select(vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        0.0,
        f64::MIN_POSITIVE,
        1e-300,
        1.0,
        50.0,
        100.0,
        100.0 + 1e-12,
        f64::MAX,
    ])
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// A refusal names a real option and says why.
fn check_refusal(err: &ConfigError) {
    assert!(!err.field.is_empty() && !err.reason.is_empty(), "{err:?}");
    assert!(err.to_string().contains(err.field));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn rate_limiter(count in u32s(), period in durations(), burst in u32s(), advance in durations(), n in u32s()) {
        let clock = ManualClock::new();
        let built = RateLimiter::builder().rate(count, period).burst(burst).clock(clock.clone()).build();
        let limiter = match built {
            Ok(limiter) => limiter,
            Err(err) => { check_refusal(&err); return Ok(()); }
        };
        let quota = limiter.quota();
        prop_assert_eq!(quota.burst(), burst);
        clock.advance(advance);
        // A fresh bucket is full: the whole burst is admitted at once, then nothing.
        prop_assert_eq!(limiter.check_n(burst), Ok(()));
        let refused = limiter.check().unwrap_err();
        prop_assert!(refused.retry_after <= quota.replenish_interval());
        prop_assert!(!refused.retry_after.is_zero());
        let decision = limiter.decide(n.min(burst)).expect("within burst");
        prop_assert!(decision.reset_after <= quota.refill_time());
        prop_assert!(decision.retry_after <= quota.refill_time());
        match limiter.check_n(n) {
            Err(CheckError::CostExceedsCapacity { cost, capacity }) => {
                prop_assert!(n > burst);
                prop_assert_eq!((cost, capacity), (n, burst));
            }
            other => prop_assert!(n <= burst, "{other:?}"),
        }
        clock.advance(advance);
        let _ = limiter.check();
    }

    #[test]
    fn keyed_rate_limiter(count in u32s(), period in durations(), burst in u32s(), max_keys in usizes(), advance in durations()) {
        let clock = ManualClock::new();
        let built = KeyedRateLimiter::<u64>::builder()
            .rate(count, period)
            .burst(burst)
            .max_keys(max_keys)
            .clock(clock.clone())
            .build();
        let limiter = match built {
            Ok(limiter) => limiter,
            Err(err) => { check_refusal(&err); return Ok(()); }
        };
        clock.advance(advance);
        prop_assert_eq!(limiter.check_key_n(&1, burst), Ok(()));
        prop_assert!(matches!(limiter.check_key(&1), Err(CheckError::Limited(_))));
        match limiter.check_key(&2) {
            Ok(()) => prop_assert!(max_keys >= 2),
            Err(CheckError::TooManyKeys { max_keys: m, retry_after }) => {
                prop_assert_eq!((m, max_keys), (1, 1));
                prop_assert!(retry_after <= limiter.quota().refill_time());
            }
            Err(other) => prop_assert!(false, "{other:?}"),
        }
        prop_assert!(limiter.len() <= max_keys);
        clock.advance(advance);
        let _ = limiter.check_key(&3);
        let _ = limiter.sweep();
        prop_assert!(limiter.len() <= max_keys);
    }

    #[test]
    fn circuit_breaker(
        failures in u32s(),
        reset in durations(),
        successes in u32s(),
        half_open in u32s(),
        rate in proptest::option::of(floats()),
        count_window in u32s(),
        time_window in proptest::option::of(durations()),
        minimum_calls in u32s(),
        slow in proptest::option::of(durations()),
    ) {
        let mut builder = CircuitBreakerConfig::builder()
            .failure_threshold(failures)
            .reset_timeout(reset)
            .success_threshold(successes)
            .half_open_max_calls(half_open)
            .minimum_calls(minimum_calls)
            .sliding_window(match time_window {
                Some(d) => SlidingWindow::Time(d),
                None => SlidingWindow::Count(count_window),
            });
        if let Some(rate) = rate {
            builder = builder.failure_rate(rate);
        }
        if let Some(slow) = slow {
            builder = builder.slow_call_threshold(slow);
        }
        let config = match builder.build() {
            Ok(config) => config,
            Err(err) => { check_refusal(&err); return Ok(()); }
        };
        let breaker = CircuitBreaker::new("extreme", config);
        let opens_on_one_failure = rate.is_none() && failures == 1;
        breaker.try_acquire().expect("closed").failure();
        if opens_on_one_failure {
            match breaker.try_acquire() {
                Err(open) => {
                    let wait = open.retry_after.expect("known while open");
                    prop_assert!(wait <= reset);
                }
                // A tiny reset timeout may already have passed: a half-open trial.
                Ok(trial) => {
                    prop_assert!(reset < Duration::from_secs(1), "{reset:?}");
                    prop_assert_eq!(breaker.state(), CircuitState::HalfOpen);
                    trial.success();
                }
            }
        } else if let Ok(permit) = breaker.try_acquire() {
            permit.success();
        }
        let snapshot = breaker.snapshot();
        prop_assert!(snapshot.retry_after.is_none_or(|d| d <= reset));
    }

    #[test]
    fn bulkhead(max_concurrent in usizes(), max_queued in usizes(), queue_timeout in proptest::option::of(durations())) {
        let rt = paused();
        rt.block_on(async {
            let mut builder = Bulkhead::builder().max_concurrent(max_concurrent).max_queued(max_queued);
            let queue_timeout = queue_timeout.map(resolve);
            if let Some(t) = queue_timeout {
                builder = builder.queue_timeout(t);
            }
            let bulkhead = match builder.build() {
                Ok(b) => b,
                Err(err) => { check_refusal(&err); return Ok(()); }
            };
            let first = bulkhead.acquire().await.expect("a free slot");
            prop_assert_eq!(bulkhead.running(), 1);
            if max_concurrent == 1 {
                let started = Instant::now();
                let second = tokio::time::timeout(CENTURY, bulkhead.acquire()).await;
                match (max_queued, queue_timeout) {
                    (0, _) => {
                        let full = matches!(second, Ok(Err(BulkheadFull::QueueFull { .. })));
                        prop_assert!(full, "no queue: refused at once");
                    }
                    // No queue timeout, or one past a century: it waits (here: forever).
                    (_, None) => prop_assert!(second.is_err()),
                    (_, Some(t)) if t > CENTURY => prop_assert!(second.is_err()),
                    (_, Some(t)) => {
                        prop_assert_eq!(second.ok().and_then(Result::err), Some(BulkheadFull::QueueTimeout { waited: t }));
                        prop_assert!(started.elapsed() >= t);
                    }
                }
                prop_assert_eq!(bulkhead.queued(), 0);
            }
            drop(first);
            prop_assert_eq!(bulkhead.running(), 0);
            Ok(())
        })?;
    }

    #[test]
    fn timeout(limit in durations()) {
        let rt = paused();
        rt.block_on(async {
            let limit = resolve(limit);
            let ready = resilience::timeout(limit, async { 7 }).await;
            prop_assert_eq!(ready, Ok(7));
            let started = Instant::now();
            let cut = tokio::time::timeout(
                CENTURY,
                resilience::timeout(limit, std::future::pending::<()>()),
            )
            .await;
            if limit > CENTURY {
                prop_assert!(cut.is_err(), "a timeout past a century must not fire before it");
            } else {
                prop_assert_eq!(cut.ok(), Some(Err(TimeoutError { after: limit })));
                prop_assert!(started.elapsed() >= limit);
            }
            Ok(())
        })?;
    }

    #[test]
    fn shutdown(total in durations(), hook in durations(), delay in durations(), drain in durations(), own in proptest::option::of(durations())) {
        let rt = paused();
        rt.block_on(async {
            let (total, hook, delay, drain) = (resolve(total), resolve(hook), resolve(delay), resolve(drain));
            let built = ShutdownConfig::builder()
                .total_timeout(total)
                .hook_timeout(hook)
                .drain_delay(delay)
                .drain_timeout(drain)
                .build();
            let config = match built {
                Ok(c) => c,
                Err(err) => { check_refusal(&err); return Ok(()); }
            };
            let c = ShutdownCoordinator::with_config(config);
            let guard = c.in_flight();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                drop(guard);
            });
            c.register("quick", Priority::HIGH, || async {}).unwrap();
            let slow = || tokio::time::sleep(Duration::from_secs(2));
            match own {
                Some(t) if t.is_zero() => {
                    let refused = c.register_with_timeout("slow", Priority::LOW, t, slow);
                    prop_assert!(matches!(refused, Err(ShutdownError::InvalidConfig(_))));
                    c.register("slow", Priority::LOW, slow).unwrap();
                }
                Some(t) => c.register_with_timeout("slow", Priority::LOW, resolve(t), slow).unwrap(),
                None => c.register("slow", Priority::LOW, slow).unwrap(),
            }
            let report = tokio::time::timeout(CENTURY, c.shutdown()).await;
            if delay >= CENTURY {
                // Serving for a century before cancelling: still waiting, no panic.
                prop_assert!(report.is_err());
                return Ok(());
            }
            let report = report.expect("a shutdown with a finite drain delay ends");
            // The work takes 3 s after the drain delay (1 s draining, then the 2 s hook); a hook
            // cut at its own timeout is reported without failing the shutdown.
            if total >= delay.saturating_add(Duration::from_secs(4)) {
                prop_assert_eq!(report.outcome, ShutdownOutcome::Success);
                // The in-flight guard drops at 1 s; draining waits until delay + drain.
                let waits_until = delay.saturating_add(drain);
                if waits_until != Duration::from_secs(1) {
                    prop_assert_eq!(report.drained, waits_until > Duration::from_secs(1));
                }
            } else {
                prop_assert_ne!(report.outcome, ShutdownOutcome::Failure);
            }
            prop_assert_eq!(report.hooks.len(), 2);
            prop_assert!(c.cancellation_token().is_cancelled());
            Ok(())
        })?;
    }

    #[test]
    fn health_monitor(interval in durations()) {
        let rt = paused();
        rt.block_on(async {
            let registry = Arc::new(HealthRegistry::new());
            let monitor = match HealthMonitor::new(registry, interval) {
                Ok(m) => m,
                Err(err) => { check_refusal(&err); return Ok(()); }
            };
            monitor.start().expect("runtime");
            // The first periodic check runs at once.
            tokio::time::sleep(Duration::from_millis(1)).await;
            prop_assert!(monitor.last().is_some());
            prop_assert_eq!(monitor.check_now().await.status, HealthStatus::Healthy);
            tokio::time::sleep(Duration::from_millis(10)).await;
            prop_assert!(monitor.is_running());
            monitor.stop();
            Ok(())
        })?;
    }
}

/// Class 2's other half: a spawned task that can die must not leave anyone waiting or lying.
#[tokio::test(start_paused = true)]
async fn a_panicking_health_callback_does_not_kill_the_monitor() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let monitor = HealthMonitor::new(Arc::new(HealthRegistry::new()), Duration::from_secs(1))
        .unwrap()
        .on_check(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("callback bug");
            }
        });
    monitor.start().unwrap();
    // Checks at 0 s (the callback panics), 1 s and 2 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(monitor.is_running());
    assert_eq!(monitor.last().unwrap().status, HealthStatus::Healthy);
}
