//! Properties of the computed delays: never past `max_delay`; monotone without jitter.

use std::time::Duration;

use proptest::prelude::*;
use resilience::retry::{Backoff, RetryPolicy};

fn any_backoff() -> impl Strategy<Value = Backoff> {
    prop_oneof![
        Just(Backoff::Fixed),
        Just(Backoff::Linear),
        Just(Backoff::Exponential),
        Just(Backoff::ExponentialJitter),
    ]
}

fn policy(
    backoff: Backoff,
    initial_ms: u64,
    extra_ms: u64,
    multiplier: f64,
    jitter: Option<f64>,
) -> RetryPolicy {
    let b = RetryPolicy::builder()
        .backoff(backoff)
        .initial_delay(Duration::from_millis(initial_ms))
        .max_delay(Duration::from_millis(initial_ms + extra_ms))
        .multiplier(multiplier);
    match jitter {
        Some(j) => b.jitter(j),
        None => b,
    }
    .build()
    .unwrap()
}

proptest! {
    #[test]
    fn delays_never_exceed_max_delay(
        backoff in any_backoff(),
        initial_ms in 0u64..100_000,
        extra_ms in 0u64..1_000_000,
        multiplier in 1.0f64..20.0,
        jitter in proptest::option::of(0.0f64..=1.0),
        retry in 0u32..=u32::MAX,
        random in 0.0f64..=1.0,
    ) {
        let p = policy(backoff, initial_ms, extra_ms, multiplier, jitter);
        prop_assert!(p.delay(retry, random) <= p.max_delay());
    }

    #[test]
    fn delays_are_monotone_without_jitter(
        backoff in prop_oneof![Just(Backoff::Fixed), Just(Backoff::Linear), Just(Backoff::Exponential)],
        initial_ms in 0u64..100_000,
        extra_ms in 0u64..1_000_000,
        multiplier in 1.0f64..20.0,
        random in 0.0f64..=1.0,
    ) {
        let p = policy(backoff, initial_ms, extra_ms, multiplier, None);
        let mut prev = Duration::ZERO;
        for retry in 1..=64 {
            let d = p.delay(retry, random);
            prop_assert!(d >= prev, "retry {retry}: {d:?} < {prev:?}");
            prev = d;
        }
    }

    #[test]
    fn jitter_only_shortens(
        initial_ms in 1u64..100_000,
        extra_ms in 0u64..1_000_000,
        jitter in 0.0f64..=1.0,
        retry in 1u32..40,
        random in 0.0f64..=1.0,
    ) {
        let jittered = policy(Backoff::ExponentialJitter, initial_ms, extra_ms, 2.0, Some(jitter));
        let plain = policy(Backoff::Exponential, initial_ms, extra_ms, 2.0, None);
        let base = plain.delay(retry, 0.0);
        let d = jittered.delay(retry, random);
        prop_assert!(d <= base);
        prop_assert!(d.as_secs_f64() >= base.as_secs_f64() * (1.0 - jitter) - 1e-9);
    }
}
