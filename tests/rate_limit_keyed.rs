//! The keyed limiter: per-key buckets, automatic eviction of idle keys, the `max_keys` bound,
//! and the `KeyedRateLimit` trait. Time comes from a manual clock or tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use resilience::RateLimited;
use resilience::rate_limit::{
    CheckError, KeyedRateLimit, KeyedRateLimiter, ManualClock, RateLimitError, TokioClock,
};

const MS: Duration = Duration::from_millis(1);

fn keyed(
    per_second: u32,
    burst: u32,
    max_keys: usize,
) -> (KeyedRateLimiter<String, ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let limiter = KeyedRateLimiter::builder()
        .per_second(per_second)
        .burst(burst)
        .max_keys(max_keys)
        .clock(clock.clone())
        .build()
        .expect("valid");
    (limiter, clock)
}

fn limited(retry_after: Duration) -> Result<(), CheckError> {
    Err(CheckError::Limited(RateLimited { retry_after }))
}

#[test]
fn each_key_has_its_own_bucket() {
    let (limiter, clock) = keyed(10, 2, 100);
    assert_eq!(limiter.check_key("alice"), Ok(()));
    assert_eq!(limiter.check_key(&"alice".to_string()), Ok(()));
    assert_eq!(limiter.check_key("alice"), limited(100 * MS));
    assert_eq!(limiter.check_key("bob"), Ok(()));
    assert_eq!(limiter.len(), 2);
    clock.advance(100 * MS);
    assert_eq!(limiter.check_key("alice"), Ok(()));
    assert_eq!(limiter.check_key("alice"), limited(100 * MS));
}

#[test]
fn check_key_n_and_decide_key_match_the_direct_limiter() {
    let (limiter, clock) = keyed(10, 5, 100);
    assert_eq!(limiter.check_key_n("k", 3), Ok(()));
    assert_eq!(limiter.check_key_n("k", 3), limited(100 * MS));
    assert_eq!(
        limiter.check_key_n("k", 6),
        Err(CheckError::CostExceedsCapacity {
            cost: 6,
            capacity: 5
        })
    );
    clock.advance(50 * MS);
    let d = limiter.decide_key("k", 2).expect("within burst");
    assert!(d.allowed);
    assert_eq!((d.remaining, d.reset_after), (0, 450 * MS));
    let d = limiter.decide_key("k", 1).expect("within burst");
    assert!(!d.allowed);
    assert_eq!((d.retry_after, d.reset_after), (50 * MS, 450 * MS));
}

#[test]
fn looking_at_an_unknown_key_tracks_nothing() {
    let (limiter, _clock) = keyed(10, 5, 100);
    let d = limiter.decide_key("nobody", 0).expect("cost 0");
    assert!(d.allowed);
    assert_eq!((d.remaining, d.reset_after), (5, Duration::ZERO));
    assert_eq!(limiter.check_key_n("nobody", 0), Ok(()));
    assert!(limiter.is_empty());
}

#[test]
fn idle_keys_are_evicted_by_later_inserts_without_a_manual_call() {
    let (limiter, clock) = keyed(10, 1, 1_000_000);
    for i in 0..5_000 {
        limiter.check_key(&format!("old-{i}")).expect("fresh key");
    }
    assert_eq!(limiter.len(), 5_000);
    // Every old key's bucket is full again after one interval: all idle.
    clock.advance(100 * MS);
    for i in 0..5_000 {
        limiter.check_key(&format!("new-{i}")).expect("fresh key");
    }
    // Without eviction there would be 10 000; the sweeps on insert dropped most old keys.
    assert!(limiter.len() < 7_500, "len = {}", limiter.len());
    // The new keys kept their state.
    assert!(limiter.check_key("new-0").is_err());
    clock.advance(100 * MS);
    let tracked = limiter.len();
    assert_eq!(limiter.sweep(), tracked);
    assert!(limiter.is_empty());
}

#[test]
fn memory_stays_bounded_under_continuous_key_churn() {
    // 6 rounds of 20 000 new keys each; every key is idle by the next round. Without
    // eviction the table would reach 120 000 keys; with sweeps on insert it stays within about
    // twice one round (plus a small per-shard floor).
    let (limiter, clock) = keyed(10, 1, 1_000_000);
    let mut peak = 0;
    for round in 0..6 {
        for i in 0..20_000 {
            limiter
                .check_key(&format!("r{round}-{i}"))
                .expect("fresh key");
            peak = peak.max(limiter.len());
        }
        clock.advance(100 * MS);
    }
    assert!(peak <= 50_000, "peak = {peak}");
}

#[test]
fn a_full_table_refuses_new_keys_until_a_key_is_idle() {
    let (limiter, clock) = keyed(1, 1, 3);
    for key in ["a", "b", "c"] {
        assert_eq!(limiter.check_key(key), Ok(()));
    }
    let too_many = |retry_after| {
        Err(CheckError::TooManyKeys {
            max_keys: 3,
            retry_after,
        })
    };
    assert_eq!(limiter.check_key("d"), too_many(Duration::from_secs(1)));
    // Known keys still get ordinary decisions.
    assert_eq!(limiter.check_key("a"), limited(Duration::from_secs(1)));
    clock.advance(400 * MS);
    assert_eq!(limiter.check_key("d"), too_many(600 * MS));
    assert_eq!(limiter.len(), 3);
    clock.advance(600 * MS);
    assert_eq!(limiter.check_key("d"), Ok(()));
    assert!(limiter.len() <= 3);
    assert_eq!(limiter.max_keys(), 3);
}

#[test]
fn too_many_keys_reports_when_the_first_slot_frees() {
    let (limiter, clock) = keyed(1, 2, 2);
    assert_eq!(limiter.check_key("a"), Ok(())); // idle again at 1 s
    clock.advance(300 * MS);
    assert_eq!(limiter.check_key_n("b", 2), Ok(())); // idle again at 2.3 s
    let err = limiter.check_key("c").unwrap_err();
    assert_eq!(err.retry_after(), Some(700 * MS));
    assert!(err.to_string().contains("maximum of 2"), "{err}");
    clock.advance(700 * MS);
    // "a" is idle: evicted to make room for "c".
    assert_eq!(limiter.check_key("c"), Ok(()));
    assert_eq!(limiter.check_key_n("b", 1), limited(300 * MS));
}

#[test]
fn threads_racing_on_a_new_key_share_one_bucket() {
    let (limiter, _clock) = keyed(1, 100, 1000);
    let limiter = Arc::new(limiter);
    let admitted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let limiter = &limiter;
                s.spawn(move || {
                    (0..1000)
                        .filter(|_| limiter.check_key("shared").is_ok())
                        .count()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .sum()
    });
    assert_eq!(admitted, 100);
    assert_eq!(limiter.len(), 1);
}

#[test]
fn other_key_types_work() {
    let limiter: KeyedRateLimiter<u64, ManualClock> = KeyedRateLimiter::<u64>::builder()
        .per_minute(1)
        .clock(ManualClock::new())
        .build()
        .expect("valid");
    assert_eq!(limiter.check_key(&7), Ok(()));
    assert!(limiter.check_key(&7).is_err());
    assert_eq!(limiter.check_key(&8), Ok(()));
}

#[tokio::test]
async fn the_keyed_rate_limit_trait_decides_in_memory() {
    let (limiter, _clock) = keyed(10, 2, 1);
    let d = KeyedRateLimit::check_key(&limiter, "user:1", 2)
        .await
        .expect("decided");
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);
    let d = KeyedRateLimit::check_key(&limiter, "user:1", 1)
        .await
        .expect("decided");
    assert!(!d.allowed);
    assert_eq!(d.retry_after, 100 * MS);
    let err = KeyedRateLimit::check_key(&limiter, "user:1", 3)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        RateLimitError::CostExceedsCapacity {
            cost: 3,
            capacity: 2
        }
    ));
    // The table (max_keys 1) is full of an active key: a new key is refused until it frees.
    let d = KeyedRateLimit::check_key(&limiter, "user:2", 1)
        .await
        .expect("decided");
    assert!(!d.allowed);
    assert_eq!(d.retry_after, 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn until_key_ready_waits_exactly_for_the_key() {
    let limiter = KeyedRateLimiter::builder()
        .per(250 * MS)
        .clock(TokioClock::new())
        .build()
        .expect("valid");
    limiter.check_key("k").expect("fresh");
    let start = tokio::time::Instant::now();
    limiter.until_key_ready("k").await.expect("one token");
    assert_eq!(start.elapsed(), 250 * MS);
    limiter.until_key_ready("other").await.expect("fresh key");
    assert_eq!(start.elapsed(), 250 * MS);
}

#[test]
fn invalid_configurations_are_rejected_naming_the_field() {
    let b = || KeyedRateLimiter::<String>::builder().clock(ManualClock::new());
    assert_eq!(b().build().unwrap_err().field, "rate");
    assert_eq!(b().per_second(0).build().unwrap_err().field, "per_second");
    assert_eq!(
        b().per_second(1).max_keys(0).build().unwrap_err().field,
        "max_keys"
    );
    assert_eq!(
        b().per_second(1).burst(0).build().unwrap_err().field,
        "burst"
    );
}

#[test]
fn a_key_used_since_it_was_filed_is_not_evicted_and_the_wait_is_exact() {
    let (limiter, clock) = keyed(1, 10, 2);
    assert_eq!(limiter.check_key("a"), Ok(())); // idle at 1 s
    assert_eq!(limiter.check_key("b"), Ok(())); // idle at 1 s
    clock.advance(900 * MS);
    assert_eq!(limiter.check_key_n("a", 5), Ok(())); // now idle at 6 s
    clock.advance(100 * MS);
    // "b" is idle and makes room; "a" was filed at 1 s but is active: it stays.
    assert_eq!(limiter.check_key("c"), Ok(())); // idle at 2 s
    assert_eq!(limiter.len(), 2);
    assert_eq!(
        limiter.check_key("d"),
        Err(CheckError::TooManyKeys {
            max_keys: 2,
            retry_after: Duration::from_secs(1),
        })
    );
    // "a" kept its bucket: 5 s of its 10 s backlog in use, so 5 more tokens fit, then none.
    assert_eq!(limiter.check_key_n("a", 5), Ok(()));
    assert_eq!(limiter.check_key("a"), limited(Duration::from_secs(1)));
    clock.advance(Duration::from_secs(1));
    assert_eq!(limiter.check_key("d"), Ok(())); // "c" was idle
}

#[test]
fn a_clock_at_its_end_does_not_overflow_the_keyed_limiter() {
    let (limiter, clock) = keyed(10, 2, 4);
    clock.advance(Duration::MAX);
    assert_eq!(limiter.check_key_n("k", 2), Ok(()));
    assert!(matches!(
        limiter.check_key("k"),
        Err(CheckError::Limited(_))
    ));
    assert_eq!(limiter.sweep(), 0);
}

/// Median of `runs` timings of `op`, in nanoseconds.
fn median_nanos(runs: usize, mut op: impl FnMut() -> Duration) -> u128 {
    let mut times: Vec<u128> = (0..runs).map(|_| op().as_nanos()).collect();
    times.sort_unstable();
    times[runs / 2]
}

#[test]
fn refusing_new_keys_on_a_full_table_costs_about_what_inserting_them_does() {
    // Before: every refused key swept its whole shard under the write lock (~70x an insert
    // with 20 000 keys in a debug build, growing with `max_keys`). Both figures come from the
    // same run, so the machine's speed cancels out.
    const KEYS: usize = 20_000;
    const BATCH: usize = 1_000;
    let (full, _clock) = keyed(1, 1, KEYS);
    let (roomy, _clock2) = keyed(1, 1, usize::MAX);
    for i in 0..KEYS {
        full.check_key(&format!("active-{i}")).expect("room");
        roomy.check_key(&format!("active-{i}")).expect("room");
    }
    let mut round = 0;
    let mut batch = |limiter: &KeyedRateLimiter<String, ManualClock>, full: bool| {
        round += 1;
        let keys: Vec<String> = (0..BATCH).map(|i| format!("new-{round}-{i}")).collect();
        let start = std::time::Instant::now();
        for key in &keys {
            let result = limiter.check_key(key);
            assert_eq!(result.is_err(), full);
        }
        start.elapsed()
    };
    let inserting = median_nanos(5, || batch(&roomy, false));
    let refusing = median_nanos(5, || batch(&full, true));
    assert!(
        refusing <= 3 * inserting,
        "refusing {} ns vs inserting {} ns per batch of {BATCH}",
        refusing,
        inserting
    );
}
