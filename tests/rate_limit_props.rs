//! Properties of the GCRA limiter over random quotas, request times and costs:
//! it agrees exactly with a plain token-bucket model, and never admits more than
//! `burst + elapsed × rate` in any interval.

use std::time::Duration;

use proptest::prelude::*;
use resilience::rate_limit::{CheckError, KeyedRateLimiter, ManualClock, RateLimiter};

/// A token bucket counted in nanoseconds of credit: `limit = burst × interval` when full,
/// one nanosecond of credit per nanosecond of time, a token costs `interval`.
struct Model {
    interval: u64,
    limit: u64,
    credit: u64,
    last: u64,
}

struct ModelDecision {
    allowed: bool,
    remaining: u64,
    retry_after: u64,
    reset_after: u64,
}

impl Model {
    fn new(interval: u64, burst: u32) -> Self {
        let limit = interval * u64::from(burst);
        Self {
            interval,
            limit,
            credit: limit,
            last: 0,
        }
    }

    fn request(&mut self, now: u64, tokens: u32) -> ModelDecision {
        self.credit = (self.credit + (now - self.last)).min(self.limit);
        self.last = now;
        let cost = self.interval * u64::from(tokens);
        let allowed = cost <= self.credit;
        let retry_after = if allowed { 0 } else { cost - self.credit };
        if allowed {
            self.credit -= cost;
        }
        ModelDecision {
            allowed,
            remaining: self.credit / self.interval,
            retry_after,
            reset_after: self.limit - self.credit,
        }
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    count: u32,
    period_ms: u64,
    burst: u32,
    /// (delay before the request in µs, cost in tokens)
    requests: Vec<(u64, u32)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1u32..=50, 1u64..=2_000, 1u32..=20).prop_flat_map(|(count, period_ms, burst)| {
        // Delays around the interval, so refills and boundaries are both exercised.
        let interval_us = (period_ms * 1000 / u64::from(count)).max(1);
        let requests = prop::collection::vec((0..=interval_us * 3, 0..=burst + 1), 1..120);
        requests.prop_map(move |requests| Scenario {
            count,
            period_ms,
            burst,
            requests,
        })
    })
}

fn build(s: &Scenario, clock: &ManualClock) -> RateLimiter<ManualClock> {
    RateLimiter::builder()
        .rate(s.count, Duration::from_millis(s.period_ms))
        .burst(s.burst)
        .clock(clock.clone())
        .build()
        .expect("valid quota")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn decisions_agree_with_a_token_bucket_model(s in scenario()) {
        let clock = ManualClock::new();
        let limiter = build(&s, &clock);
        let interval = u64::try_from(limiter.quota().replenish_interval().as_nanos()).unwrap();
        let mut model = Model::new(interval, s.burst);
        let mut now = 0u64;
        for &(delay_us, tokens) in &s.requests {
            clock.advance(Duration::from_micros(delay_us));
            now += delay_us * 1000;
            match limiter.decide(tokens) {
                Err(CheckError::CostExceedsCapacity { cost, capacity }) => {
                    prop_assert!(tokens > s.burst);
                    prop_assert_eq!((cost, capacity), (tokens, s.burst));
                }
                Ok(d) => {
                    prop_assert!(tokens <= s.burst);
                    let m = model.request(now, tokens);
                    prop_assert_eq!(d.allowed, m.allowed);
                    prop_assert_eq!(d.remaining, m.remaining);
                    prop_assert_eq!(d.retry_after, Duration::from_nanos(m.retry_after));
                    prop_assert_eq!(d.reset_after, Duration::from_nanos(m.reset_after));
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn never_admits_more_than_burst_plus_elapsed_times_rate(s in scenario()) {
        let clock = ManualClock::new();
        let limiter = build(&s, &clock);
        let interval = u64::try_from(limiter.quota().replenish_interval().as_nanos()).unwrap();
        // (time, tokens) of every admitted request.
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        let mut now = 0u64;
        for &(delay_us, tokens) in &s.requests {
            clock.advance(Duration::from_micros(delay_us));
            now += delay_us * 1000;
            let ok = if tokens == 1 {
                limiter.check().is_ok()
            } else {
                limiter.check_n(tokens).is_ok()
            };
            if ok && tokens > 0 {
                admitted.push((now, u64::from(tokens)));
            }
        }
        // Every window [t_i, t_j]: tokens admitted ≤ burst + (t_j - t_i) / interval.
        for i in 0..admitted.len() {
            let mut tokens = 0;
            for j in i..admitted.len() {
                tokens += admitted[j].1;
                let elapsed = admitted[j].0 - admitted[i].0;
                prop_assert!(
                    tokens * interval <= u64::from(s.burst) * interval + elapsed,
                    "{tokens} tokens in {elapsed} ns (interval {interval}, burst {})",
                    s.burst
                );
            }
        }
    }

    #[test]
    fn a_keyed_limiter_agrees_with_one_direct_limiter_per_key(
        s in scenario(),
        keys in prop::collection::vec(0u8..4, 120),
    ) {
        let clock = ManualClock::new();
        let keyed = KeyedRateLimiter::<u8>::builder()
            .rate(s.count, Duration::from_millis(s.period_ms))
            .burst(s.burst)
            .max_keys(4)
            .clock(clock.clone())
            .build()
            .expect("valid quota");
        let direct: Vec<_> = (0..4).map(|_| build(&s, &clock)).collect();
        for (&(delay_us, tokens), &key) in s.requests.iter().zip(&keys) {
            clock.advance(Duration::from_micros(delay_us));
            let expected = direct[usize::from(key)].decide(tokens);
            let actual = keyed.decide_key(&key, tokens);
            prop_assert_eq!(actual, expected);
            prop_assert!(keyed.len() <= 4);
        }
    }
}
