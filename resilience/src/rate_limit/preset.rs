//! Seed 001's limiter presets: `api` (10/s, burst 20) and `database` (50/s, burst 100).

use std::fmt;
use std::str::FromStr;

use super::quota::{MAX_NANOS, Quota};
use crate::error::UnknownPreset;

/// Named rates for the in-memory limiters (seed 001's numbers):
///
/// | preset     | rate  | burst |
/// |------------|-------|-------|
/// | `api`      | 10/s  | 20    |
/// | `database` | 50/s  | 100   |
///
/// Both bursts are twice the rate: an idle limiter admits two seconds' worth of calls at once.
/// The rate is overridable and the burst follows it at that ratio — a builder given
/// `.preset(LimiterPreset::Api).per_second(100)` gets 100/s with a burst of 200 — unless a
/// `burst` is set explicitly, which always wins. (A fixed burst of 20 under 100/s would admit
/// less than a fifth of a second's calls at once: a preset's shape is its ratio.)
///
/// ```
/// use std::time::Duration;
/// use resilience::rate_limit::{LimiterPreset, Quota, RateLimiter};
///
/// let api = RateLimiter::new(Quota::preset(LimiterPreset::Api));
/// assert_eq!(api.quota().burst(), 20);
/// assert_eq!(api.quota().replenish_interval(), Duration::from_millis(100));
///
/// let faster = RateLimiter::builder().preset(LimiterPreset::Api).per_second(30).build()?;
/// assert_eq!(faster.quota().burst(), 60); // the ratio is kept
///
/// let fixed = RateLimiter::builder().preset(LimiterPreset::Api).per_second(30).burst(5).build()?;
/// assert_eq!(fixed.quota().burst(), 5); // an explicit burst wins
///
/// assert_eq!("database".parse::<LimiterPreset>()?.quota().burst(), 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimiterPreset {
    /// 10 requests per second, burst 20: a public API endpoint.
    Api,
    /// 50 queries per second, burst 100: calls into a database.
    Database,
}

impl LimiterPreset {
    /// Every preset's name, as [`LimiterPreset::from_name`] accepts it (and the macros check it).
    pub const NAMES: &'static [&'static str] = &["api", "database"];

    /// The burst as a multiple of the per-period count, kept when the rate is overridden.
    pub const BURST_FACTOR: u32 = 2;

    /// The preset called `name` (one of [`LimiterPreset::NAMES`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "api" => Some(Self::Api),
            "database" => Some(Self::Database),
            _ => None,
        }
    }

    /// This preset's name, one of [`LimiterPreset::NAMES`].
    pub const fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Database => "database",
        }
    }

    /// Tokens per second.
    pub const fn per_second(self) -> u32 {
        match self {
            Self::Api => 10,
            Self::Database => 50,
        }
    }

    /// The bucket's capacity: [`per_second`](Self::per_second) × [`BURST_FACTOR`](Self::BURST_FACTOR).
    pub const fn burst(self) -> u32 {
        self.per_second() * Self::BURST_FACTOR
    }

    /// The preset's quota (same as [`Quota::preset`]).
    pub const fn quota(self) -> Quota {
        Quota::preset(self)
    }
}

impl Quota {
    /// A preset's quota, for [`RateLimiter::new`](super::RateLimiter::new) or
    /// [`RateLimiter::with_clock`](super::RateLimiter::with_clock).
    pub const fn preset(preset: LimiterPreset) -> Self {
        // Whole nanoseconds per token: 1 s / 10 and 1 s / 50 divide exactly.
        let interval = 1_000_000_000 / preset.per_second() as u64;
        let burst = preset.burst();
        let limit = interval * burst as u64;
        // Far below the bound every quota keeps (2 s against 292 years).
        debug_assert!(limit <= MAX_NANOS);
        Self {
            interval,
            burst,
            limit,
        }
    }
}

impl fmt::Display for LimiterPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LimiterPreset {
    type Err = UnknownPreset;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::from_name(name).ok_or_else(|| UnknownPreset::new("limiter preset", name, Self::NAMES))
    }
}
