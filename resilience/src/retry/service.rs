//! Seed 001's per-service retry policies: `database`, `network`, `kafka`, `vault`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::backoff::Backoff;
use super::policy::{RetryPolicy, RetryPolicyBuilder};
use super::preset::RetryPreset;
use crate::error::UnknownPreset;

/// Retry policies for the kinds of dependency a service talks to (seed 001's numbers). All use
/// exponential backoff with jitter (multiplier 2, each wait shortened by up to half, so clients
/// that failed together do not retry together) and a total deadline:
///
/// | service    | attempts | initial | max delay | total |
/// |------------|----------|---------|-----------|-------|
/// | `database` | 3        | 1 s     | 10 s      | 30 s  |
/// | `network`  | 3        | 500 ms  | 5 s       | 15 s  |
/// | `kafka`    | 5        | 1 s     | 30 s      | 60 s  |
/// | `vault`    | 3        | 2 s     | 20 s      | 60 s  |
///
/// The totals are ours (the seed gives attempts and the wait range only): each is several times
/// the sum of the policy's waits (3 s, 1.5 s, 15 s, 6 s), leaving the attempts themselves room,
/// and a `Retry-After` hint (which `max_delay` does not cap) cannot stretch a sequence past it.
///
/// ```
/// use std::time::Duration;
/// use resilience::retry::{RetryPolicy, RetryService};
///
/// let db = RetryPolicy::for_service(RetryService::Database);
/// assert_eq!(db.max_attempts(), 3);
/// assert_eq!(db.initial_delay(), Duration::from_secs(1));
/// assert_eq!(db.max_delay(), Duration::from_secs(10));
///
/// let kafka = RetryPolicy::service("kafka")?;
/// assert_eq!(kafka.max_attempts(), 5);
///
/// let err = RetryPolicy::service("postgres").unwrap_err();
/// assert_eq!(err.to_string(),
///     "unknown retry service `postgres`; valid names: database, network, kafka, vault");
/// # Ok::<(), resilience::error::UnknownPreset>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryService {
    /// 3 attempts, 1–10 s, 30 s total: SQL databases.
    Database,
    /// 3 attempts, 0.5–5 s, 15 s total: plain HTTP / TCP calls.
    Network,
    /// 5 attempts, 1–30 s, 60 s total: message brokers, whose leader elections take a while.
    Kafka,
    /// 3 attempts, 2–20 s, 60 s total: secret stores.
    Vault,
}

impl RetryService {
    /// Every service's name, as [`RetryService::from_name`] accepts it (and the macros check it).
    pub const NAMES: &'static [&'static str] = &["database", "network", "kafka", "vault"];

    /// The service called `name` (one of [`RetryService::NAMES`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "database" => Some(Self::Database),
            "network" => Some(Self::Network),
            "kafka" => Some(Self::Kafka),
            "vault" => Some(Self::Vault),
            _ => None,
        }
    }

    /// This service's name, one of [`RetryService::NAMES`].
    pub const fn name(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::Network => "network",
            Self::Kafka => "kafka",
            Self::Vault => "vault",
        }
    }

    /// (max attempts, initial delay, max delay, total timeout).
    const fn numbers(self) -> (u32, Duration, Duration, Duration) {
        match self {
            Self::Database => (
                3,
                Duration::from_secs(1),
                Duration::from_secs(10),
                Duration::from_secs(30),
            ),
            Self::Network => (
                3,
                Duration::from_millis(500),
                Duration::from_secs(5),
                Duration::from_secs(15),
            ),
            Self::Kafka => (
                5,
                Duration::from_secs(1),
                Duration::from_secs(30),
                Duration::from_secs(60),
            ),
            Self::Vault => (
                3,
                Duration::from_secs(2),
                Duration::from_secs(20),
                Duration::from_secs(60),
            ),
        }
    }

    /// The service's policy (same as [`RetryPolicy::for_service`]).
    pub fn policy(self) -> RetryPolicy {
        let (max_attempts, initial_delay, max_delay, total) = self.numbers();
        // Start from a preset so fields added to the policy later keep their defaults.
        let mut policy = RetryPreset::Standard.policy();
        policy.max_attempts = max_attempts;
        policy.backoff = Backoff::ExponentialJitter;
        policy.initial_delay = initial_delay;
        policy.max_delay = max_delay;
        policy.multiplier = 2.0;
        policy.jitter = Backoff::ExponentialJitter.default_jitter();
        policy.total_timeout = Some(total);
        policy
    }

    /// A builder starting from this service's numbers (to add `retry_if`, `on_retry`, ...).
    pub fn builder(self) -> RetryPolicyBuilder {
        self.policy().to_builder()
    }
}

impl fmt::Display for RetryService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RetryService {
    type Err = UnknownPreset;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::from_name(name).ok_or_else(|| UnknownPreset::new("retry service", name, Self::NAMES))
    }
}

impl From<RetryService> for RetryPolicy {
    fn from(s: RetryService) -> Self {
        s.policy()
    }
}

impl RetryPolicy {
    /// The retry policy for a kind of dependency; see [`RetryService`] for the numbers.
    pub fn for_service(service: RetryService) -> Self {
        service.policy()
    }

    /// The retry policy of the service called `name` (one of [`RetryService::NAMES`]), or
    /// [`UnknownPreset`] naming the valid ones (for names read from configuration).
    pub fn service(name: &str) -> Result<Self, UnknownPreset> {
        name.parse::<RetryService>().map(RetryService::policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_policies_are_valid() {
        for name in RetryService::NAMES {
            let s = RetryService::from_name(name).expect("listed name");
            assert_eq!(s.name(), *name);
            let p = s.policy();
            // The builder accepts the numbers unchanged.
            let rebuilt = s.builder().build().expect("valid numbers");
            assert_eq!(format!("{p:?}"), format!("{rebuilt:?}"));
            assert!(p.total_timeout().is_some());
        }
    }
}
