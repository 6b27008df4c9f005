//! The direct GCRA limiter: admissions at bursts and refill boundaries, decisions, waiting,
//! configuration errors. Time comes from tokio's paused clock or a manual clock.

use std::sync::Arc;
use std::time::Duration;

use resilience::rate_limit::{CheckError, ManualClock, RateLimiter, TokioClock};
use resilience::{ConfigError, RateLimited};

const MS: Duration = Duration::from_millis(1);

fn limited(retry_after: Duration) -> Result<(), RateLimited> {
    Err(RateLimited { retry_after })
}

/// 10 per second, burst 5, on tokio's clock: a token every 100 ms.
fn ten_per_second() -> RateLimiter<TokioClock> {
    RateLimiter::builder()
        .per_second(10)
        .burst(5)
        .clock(TokioClock::new())
        .build()
        .expect("valid quota")
}

#[tokio::test(start_paused = true)]
async fn admits_exactly_the_burst_then_refuses_with_retry_after() {
    let limiter = ten_per_second();
    for i in 0..5 {
        assert_eq!(limiter.check(), Ok(()), "request {i} of the burst");
    }
    assert_eq!(limiter.check(), limited(100 * MS));
    // A refusal takes nothing: the answer does not change.
    assert_eq!(limiter.check(), limited(100 * MS));
}

#[tokio::test(start_paused = true)]
async fn refills_one_token_per_interval_exactly_at_the_boundary() {
    let limiter = ten_per_second();
    for _ in 0..5 {
        limiter.check().expect("burst");
    }
    tokio::time::advance(100 * MS - Duration::from_nanos(1)).await;
    assert_eq!(limiter.check(), limited(Duration::from_nanos(1)));
    tokio::time::advance(Duration::from_nanos(1)).await;
    assert_eq!(limiter.check(), Ok(()));
    assert_eq!(limiter.check(), limited(100 * MS));
    tokio::time::advance(250 * MS).await;
    // 250 ms bring back 2 tokens (and half of a third).
    assert_eq!(limiter.check(), Ok(()));
    assert_eq!(limiter.check(), Ok(()));
    assert_eq!(limiter.check(), limited(50 * MS));
}

#[tokio::test(start_paused = true)]
async fn a_long_idle_period_refills_only_up_to_the_burst() {
    let limiter = ten_per_second();
    limiter.check().expect("first");
    tokio::time::advance(Duration::from_secs(3600)).await;
    let admitted = (0..100).filter(|_| limiter.check().is_ok()).count();
    assert_eq!(admitted, 5);
}

#[tokio::test(start_paused = true)]
async fn sustained_rate_matches_the_quota() {
    let limiter = ten_per_second();
    let mut admitted = 0;
    // 0 s to 10 s in 10 ms steps, 3 attempts per step: burst 5 + 100 refills.
    for _ in 0..=1000 {
        admitted += (0..3).filter(|_| limiter.check().is_ok()).count();
        tokio::time::advance(10 * MS).await;
    }
    assert_eq!(admitted, 5 + 100);
}

#[tokio::test(start_paused = true)]
async fn decide_reports_remaining_retry_after_and_reset_after() {
    let limiter = ten_per_second();
    let d = limiter.decide(1).expect("cost within burst");
    assert!(d.allowed);
    assert_eq!(
        (d.remaining, d.retry_after, d.reset_after),
        (4, Duration::ZERO, 100 * MS)
    );

    let d = limiter.decide(3).expect("cost within burst");
    assert!(d.allowed);
    assert_eq!((d.remaining, d.reset_after), (1, 400 * MS));

    let d = limiter.decide(2).expect("cost within burst");
    assert!(!d.allowed);
    assert_eq!(
        (d.remaining, d.retry_after, d.reset_after),
        (1, 100 * MS, 400 * MS)
    );

    tokio::time::advance(150 * MS).await;
    // A look (cost 0) takes nothing: 250 ms of backlog left, 2 whole tokens free.
    let d = limiter.decide(0).expect("cost 0");
    assert!(d.allowed);
    assert_eq!(
        (d.remaining, d.retry_after, d.reset_after),
        (2, Duration::ZERO, 250 * MS)
    );
    let d = limiter.decide(0).expect("cost 0");
    assert_eq!(d.remaining, 2);
    let d = limiter.decide(3).expect("cost within burst");
    assert!(!d.allowed);
    assert_eq!(d.retry_after, 50 * MS);
}

#[tokio::test(start_paused = true)]
async fn check_n_takes_all_or_nothing_and_rejects_costs_above_the_burst() {
    let limiter = ten_per_second();
    assert_eq!(limiter.check_n(3), Ok(()));
    assert_eq!(
        limiter.check_n(3),
        Err(CheckError::Limited(RateLimited {
            retry_after: 100 * MS
        }))
    );
    assert_eq!(limiter.check_n(2), Ok(()));
    assert_eq!(limiter.check_n(0), Ok(()));
    let err = limiter.check_n(6).unwrap_err();
    assert_eq!(
        err,
        CheckError::CostExceedsCapacity {
            cost: 6,
            capacity: 5
        }
    );
    assert_eq!(err.retry_after(), None);
    assert!(err.to_string().contains("never"), "{err}");
    assert_eq!(
        limiter.decide(6),
        Err(CheckError::CostExceedsCapacity {
            cost: 6,
            capacity: 5
        })
    );
}

#[tokio::test(start_paused = true)]
async fn until_ready_waits_exactly_the_retry_after() {
    let limiter = ten_per_second();
    for _ in 0..5 {
        limiter.check().expect("burst");
    }
    let start = tokio::time::Instant::now();
    limiter.until_ready().await;
    assert_eq!(start.elapsed(), 100 * MS);
    limiter.until_ready().await;
    assert_eq!(start.elapsed(), 200 * MS);
    limiter
        .until_n_ready(3)
        .await
        .expect("3 is within the burst");
    assert_eq!(start.elapsed(), 500 * MS);
    // Nothing left: one more token takes one more interval.
    assert!(limiter.check().is_err());
}

#[tokio::test(start_paused = true)]
async fn until_ready_returns_at_once_when_a_token_is_free() {
    let limiter = ten_per_second();
    let start = tokio::time::Instant::now();
    limiter.until_ready().await;
    limiter.until_n_ready(4).await.expect("within burst");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn until_n_ready_fails_at_once_for_a_cost_above_the_burst() {
    let limiter = ten_per_second();
    let start = tokio::time::Instant::now();
    assert_eq!(
        limiter.until_n_ready(6).await,
        Err(CheckError::CostExceedsCapacity {
            cost: 6,
            capacity: 5
        })
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn dropping_until_ready_cancels_it_without_taking_a_token() {
    let limiter = ten_per_second();
    for _ in 0..5 {
        limiter.check().expect("burst");
    }
    let waited = tokio::time::timeout(40 * MS, limiter.until_ready()).await;
    assert!(waited.is_err(), "gave up after 40 ms");
    tokio::time::advance(60 * MS).await;
    // The token that came back at 100 ms is still there.
    assert_eq!(limiter.check(), Ok(()));
    assert!(limiter.check().is_err());
}

#[tokio::test(start_paused = true)]
async fn per_and_per_minute_set_the_interval_and_default_burst() {
    let slow = RateLimiter::builder()
        .per(250 * MS)
        .clock(TokioClock::new())
        .build()
        .expect("valid");
    assert_eq!(slow.quota().burst(), 1);
    assert_eq!(slow.quota().replenish_interval(), 250 * MS);
    assert_eq!(slow.check(), Ok(()));
    assert_eq!(slow.check(), limited(250 * MS));

    let minute = RateLimiter::builder()
        .per_minute(6)
        .clock(TokioClock::new())
        .build()
        .expect("valid");
    assert_eq!(minute.quota().burst(), 6);
    assert_eq!(minute.quota().replenish_interval(), Duration::from_secs(10));
    assert_eq!(minute.quota().refill_time(), Duration::from_secs(60));
    assert_eq!(minute.check_n(6), Ok(()));
    assert_eq!(minute.check(), limited(Duration::from_secs(10)));

    let hourly = RateLimiter::builder().per_hour(60).build().expect("valid");
    assert_eq!(hourly.quota().replenish_interval(), Duration::from_secs(60));
}

#[test]
fn an_uneven_rate_rounds_the_interval_up_so_the_rate_is_never_exceeded() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder()
        .per_second(3)
        .burst(1)
        .clock(clock.clone())
        .build()
        .expect("valid");
    assert_eq!(
        limiter.quota().replenish_interval(),
        Duration::from_nanos(333_333_334)
    );
    let mut admitted = 0;
    for _ in 0..1000 {
        admitted += usize::from(limiter.check().is_ok());
        clock.advance(MS);
    }
    // 1 s: at most 3 per second plus the burst, never 4 refills.
    assert_eq!(admitted, 3);
}

#[test]
fn a_manual_clock_drives_refills() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder()
        .rate(2, Duration::from_secs(1))
        .clock(clock.clone())
        .build()
        .expect("valid");
    assert_eq!(limiter.check_n(2), Ok(()));
    assert_eq!(limiter.check(), limited(500 * MS));
    clock.advance(500 * MS);
    assert_eq!(limiter.check(), Ok(()));
    assert_eq!(clock.elapsed(), 500 * MS);
}

#[test]
fn reset_fills_the_bucket_again() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder()
        .per_second(1)
        .clock(clock)
        .build()
        .expect("valid");
    assert_eq!(limiter.check(), Ok(()));
    assert!(limiter.check().is_err());
    limiter.reset();
    assert_eq!(limiter.check(), Ok(()));
}

#[test]
fn threads_sharing_a_limiter_admit_exactly_the_burst_in_total() {
    let clock = ManualClock::new();
    let limiter = Arc::new(
        RateLimiter::builder()
            .per_minute(1)
            .burst(1000)
            .clock(clock)
            .build()
            .expect("valid"),
    );
    let admitted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let limiter = &limiter;
                s.spawn(move || (0..5000).filter(|_| limiter.check().is_ok()).count())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .sum()
    });
    assert_eq!(admitted, 1000);
}

#[test]
fn the_default_clock_admits_a_fresh_burst() {
    let limiter = RateLimiter::builder()
        .per_minute(1)
        .burst(2)
        .build()
        .expect("valid");
    assert_eq!(limiter.check(), Ok(()));
    assert_eq!(limiter.check(), Ok(()));
    let err = limiter.check().unwrap_err();
    // Real time passes between the calls, so only bounds can be asserted here.
    assert!(err.retry_after <= Duration::from_secs(60), "{err:?}");
    assert!(err.retry_after > Duration::from_secs(59), "{err:?}");
}

fn field(result: Result<RateLimiter<ManualClock>, ConfigError>) -> &'static str {
    result.expect_err("must be rejected").field
}

#[test]
fn invalid_configurations_are_rejected_naming_the_field() {
    let b = || RateLimiter::builder().clock(ManualClock::new());
    assert_eq!(field(b().build()), "rate");
    assert_eq!(field(b().per_second(0).build()), "per_second");
    assert_eq!(field(b().per_minute(0).build()), "per_minute");
    assert_eq!(field(b().per_hour(0).build()), "per_hour");
    assert_eq!(field(b().per(Duration::ZERO).build()), "per");
    assert_eq!(field(b().rate(5, Duration::ZERO).build()), "rate");
    assert_eq!(field(b().rate(0, Duration::from_secs(1)).build()), "rate");
    assert_eq!(field(b().per_second(10).burst(0).build()), "burst");
    // More than one token per nanosecond cannot be represented: refused, not clamped.
    assert_eq!(field(b().rate(2, Duration::from_nanos(1)).build()), "rate");
    // An interval over 2^63 - 1 nanoseconds (292 years).
    assert_eq!(
        field(b().per(Duration::from_secs(10_000_000_000)).build()),
        "per"
    );
    // interval × burst over 2^63 - 1 nanoseconds.
    assert_eq!(
        field(b().per(Duration::from_secs(5_000_000_000)).burst(2).build()),
        "burst"
    );
    let err = RateLimiter::builder().per_second(0).build().unwrap_err();
    assert_eq!(err.reason, "must be at least 1");
}

/// The longest refill time a builder accepts: 2^63 - 1 ns.
const MAX_REFILL: Duration = Duration::from_nanos(u64::MAX / 2);

#[test]
fn extreme_intervals_are_refused_or_work_and_never_overflow() {
    // Before: `per(u64::MAX ns)` was accepted and the first `check` after any time had passed
    // overflowed `now + interval`.
    for period in [
        MAX_REFILL,
        MAX_REFILL + Duration::from_nanos(1),
        Duration::from_nanos(u64::MAX),
        Duration::MAX,
    ] {
        let clock = ManualClock::new();
        let built = RateLimiter::builder()
            .per(period)
            .clock(clock.clone())
            .build();
        let Ok(limiter) = built else {
            assert!(period > MAX_REFILL, "{period:?} must be accepted");
            assert_eq!(field(built), "per");
            continue;
        };
        clock.advance(Duration::from_nanos(1));
        assert_eq!(limiter.check(), Ok(()));
        let refused = limiter.check().unwrap_err();
        assert_eq!(refused.retry_after, period);
        let d = limiter.decide(1).expect("within burst");
        assert!(!d.allowed);
        assert_eq!(d.reset_after, period);
    }
}

#[test]
fn a_clock_at_its_end_neither_overflows_nor_admits_more_than_the_burst() {
    // Before: with the clock at u64::MAX ns, `now + cost` overflowed on the first check.
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder()
        .per_second(10)
        .burst(3)
        .clock(clock.clone())
        .build()
        .expect("valid");
    clock.advance(Duration::MAX);
    assert_eq!(limiter.check_n(3), Ok(()));
    assert!(limiter.check().is_err());
    // Limiter time stops at its end (292 years): nothing refills any more, nothing wraps.
    clock.advance(Duration::from_secs(1));
    assert!(limiter.check().is_err());
    let d = limiter.decide(0).expect("look");
    assert_eq!(d.remaining, 0);
}
