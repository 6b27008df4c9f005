//! Backoff strategies: how the wait before each retry grows.

use std::fmt;
use std::time::Duration;

/// How the delay before each retry is computed from the policy's `initial_delay`,
/// `multiplier` and `max_delay` (retry `n` is the `n`-th wait, starting at 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backoff {
    /// `initial_delay` before every retry.
    Fixed,
    /// `initial_delay × n`, capped at `max_delay`.
    Linear,
    /// `initial_delay × multiplier^(n-1)`, capped at `max_delay`.
    Exponential,
    /// Exponential, then shortened by a random fraction (at most `jitter`) of itself, so
    /// clients that failed together do not retry together. Never longer than the exponential
    /// delay, hence never past `max_delay`. The default.
    #[default]
    ExponentialJitter,
}

impl Backoff {
    /// Every strategy's name, as [`Backoff::from_name`] accepts it (and the macros check it).
    pub const NAMES: &'static [&'static str] =
        &["fixed", "linear", "exponential", "exponential-jitter"];

    /// The strategy called `name` (one of [`Backoff::NAMES`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "fixed" => Some(Self::Fixed),
            "linear" => Some(Self::Linear),
            "exponential" => Some(Self::Exponential),
            "exponential-jitter" => Some(Self::ExponentialJitter),
            _ => None,
        }
    }

    /// This strategy's name, one of [`Backoff::NAMES`].
    pub const fn name(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::Linear => "linear",
            Self::Exponential => "exponential",
            Self::ExponentialJitter => "exponential-jitter",
        }
    }

    /// The jitter factor this strategy uses when the policy does not set one.
    pub(crate) const fn default_jitter(self) -> f64 {
        match self {
            Self::ExponentialJitter => DEFAULT_JITTER,
            _ => 0.0,
        }
    }

    /// The delay before retry `retry` (1-based) without jitter, capped at `max`.
    pub(crate) fn base_delay(
        self,
        retry: u32,
        initial: Duration,
        multiplier: f64,
        max: Duration,
    ) -> Duration {
        let retry = retry.max(1);
        match self {
            Self::Fixed => initial.min(max),
            Self::Linear => initial.checked_mul(retry).map_or(max, |d| d.min(max)),
            Self::Exponential | Self::ExponentialJitter => {
                if initial.is_zero() {
                    return Duration::ZERO;
                }
                // In nanoseconds as f64, rounded back: exact for the usual integral multipliers,
                // monotone in `retry` for any multiplier ≥ 1, and no overflow (inf compares high).
                let exp = i32::try_from(retry - 1).unwrap_or(i32::MAX);
                let nanos = initial.as_nanos() as f64 * multiplier.powi(exp);
                if nanos.is_nan() || nanos >= max.as_nanos() as f64 {
                    max
                } else {
                    nanos_to_duration(nanos.round() as u128).min(max)
                }
            }
        }
    }
}

/// The jitter factor of [`Backoff::ExponentialJitter`] unless the policy sets one: the delay is
/// drawn uniformly from `[d/2, d]` ("equal jitter"), keeping at least half of the backoff.
pub const DEFAULT_JITTER: f64 = 0.5;

/// Shortens `base` by `jitter × random` of itself (`random` in `[0, 1]`): the result lies in
/// `[base × (1 - jitter), base]`.
pub(crate) fn apply_jitter(base: Duration, jitter: f64, random: f64) -> Duration {
    if jitter <= 0.0 || base.is_zero() {
        return base;
    }
    // A NaN draw counts as 0 (no shortening): `clamp` would keep it NaN.
    let random = if random.is_nan() {
        0.0
    } else {
        random.clamp(0.0, 1.0)
    };
    let factor = (1.0 - jitter * random).clamp(0.0, 1.0);
    let nanos = (base.as_nanos() as f64 * factor).round() as u128;
    nanos_to_duration(nanos).min(base)
}

fn nanos_to_duration(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it fits a u32.
    Duration::new(secs, (nanos % NANOS_PER_SEC) as u32)
}

impl fmt::Display for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn names_round_trip() {
        for name in Backoff::NAMES {
            let b = Backoff::from_name(name).unwrap();
            assert_eq!(b.name(), *name);
        }
        assert_eq!(Backoff::from_name("exponential_jitter"), None);
    }

    #[test]
    fn exponential_is_exact_and_capped() {
        let d: Vec<_> = (1..=6)
            .map(|n| Backoff::Exponential.base_delay(n, 100 * MS, 2.0, 1000 * MS))
            .collect();
        assert_eq!(
            d,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(
            Backoff::Exponential.base_delay(u32::MAX, MS, 10.0, 5000 * MS),
            5000 * MS
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let base = 1000 * MS;
        assert_eq!(apply_jitter(base, 0.5, 0.0), base);
        assert_eq!(apply_jitter(base, 0.5, 1.0), 500 * MS);
        assert_eq!(apply_jitter(base, 1.0, 1.0), Duration::ZERO);
    }
}
