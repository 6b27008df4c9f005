//! The named retry presets (`quick`, `standard`, `patient`, `aggressive`).

use std::fmt;
use std::time::Duration;

use super::backoff::Backoff;
use super::policy::{DeadlineStart, RetryPolicy, RetryPolicyBuilder};

/// The named retry presets. Numbers (attempts / initial delay / total timeout / max delay), all
/// with exponential-jitter backoff, multiplier 2:
///
/// | preset       | attempts | initial | total   | max delay |
/// |--------------|----------|---------|---------|-----------|
/// | `quick`      | 2        | 100 ms  | 5 s     | 1 s       |
/// | `standard`   | 3        | 1 s     | 30 s    | 10 s      |
/// | `patient`    | 5        | 2 s     | 120 s   | 30 s      |
/// | `aggressive` | 10       | 500 ms  | 60 s    | 5 s       |
///
/// The max delays are ours (the presets' source leaves them open): each lets the exponential
/// sequence grow for a few steps while keeping every wait well inside the total timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetryPreset {
    /// 2 attempts, 100 ms initial delay, 5 s total: interactive calls.
    Quick,
    /// 3 attempts, 1 s initial delay, 30 s total: the default.
    #[default]
    Standard,
    /// 5 attempts, 2 s initial delay, 120 s total: slow upstreams such as LLM APIs.
    Patient,
    /// 10 attempts, 500 ms initial delay, 60 s total: must-succeed background work.
    Aggressive,
}

impl RetryPreset {
    /// Every preset's name, as [`RetryPreset::from_name`] accepts it (and the macros check it).
    pub const NAMES: &'static [&'static str] = &["quick", "standard", "patient", "aggressive"];

    /// The preset called `name` (one of [`RetryPreset::NAMES`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "quick" => Some(Self::Quick),
            "standard" => Some(Self::Standard),
            "patient" => Some(Self::Patient),
            "aggressive" => Some(Self::Aggressive),
            _ => None,
        }
    }

    /// This preset's name, one of [`RetryPreset::NAMES`].
    pub const fn name(self) -> &'static str {
        match self {
            Self::Quick => "quick",
            Self::Standard => "standard",
            Self::Patient => "patient",
            Self::Aggressive => "aggressive",
        }
    }

    /// (max attempts, initial delay, total timeout, max delay).
    const fn numbers(self) -> (u32, Duration, Duration, Duration) {
        match self {
            Self::Quick => (
                2,
                Duration::from_millis(100),
                Duration::from_secs(5),
                Duration::from_secs(1),
            ),
            Self::Standard => (
                3,
                Duration::from_secs(1),
                Duration::from_secs(30),
                Duration::from_secs(10),
            ),
            Self::Patient => (
                5,
                Duration::from_secs(2),
                Duration::from_secs(120),
                Duration::from_secs(30),
            ),
            Self::Aggressive => (
                10,
                Duration::from_millis(500),
                Duration::from_secs(60),
                Duration::from_secs(5),
            ),
        }
    }

    /// The preset as a policy (same as `RetryPolicy::from(preset)`).
    pub const fn policy(self) -> RetryPolicy {
        let (max_attempts, initial_delay, total, max_delay) = self.numbers();
        RetryPolicy {
            max_attempts,
            backoff: Backoff::ExponentialJitter,
            initial_delay,
            max_delay,
            multiplier: 2.0,
            jitter: Backoff::ExponentialJitter.default_jitter(),
            total_timeout: Some(total),
            attempt_timeout: None,
            deadline_start: DeadlineStart::FirstAttempt,
            seed: None,
            hooks: None,
            cancel: None,
        }
    }

    /// A builder starting from this preset's numbers.
    pub fn builder(self) -> RetryPolicyBuilder {
        RetryPolicyBuilder::from_policy(self.policy())
    }
}

impl fmt::Display for RetryPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
