//! Breaker configuration: the builder, the four presets and the pre-configured services.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ConfigError;

/// A named starting point: how many consecutive failures open the breaker and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CircuitBreakerPreset {
    /// 3 failures, 10 s reset: caches and simple services that recover fast.
    Aggressive,
    /// 5 failures, 30 s reset: most APIs. The default.
    #[default]
    Moderate,
    /// 10 failures, 60 s reset: LLMs and other slow, bursty services.
    Tolerant,
    /// 2 failures, 60 s reset: payments, authentication.
    Critical,
}

impl CircuitBreakerPreset {
    /// Every preset name, as accepted by [`from_name`](Self::from_name).
    pub const NAMES: &'static [&'static str] = &["aggressive", "moderate", "tolerant", "critical"];

    /// The preset called `name` (lower case), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aggressive" => Some(Self::Aggressive),
            "moderate" => Some(Self::Moderate),
            "tolerant" => Some(Self::Tolerant),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }

    /// The preset's name, as in [`NAMES`](Self::NAMES).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aggressive => "aggressive",
            Self::Moderate => "moderate",
            Self::Tolerant => "tolerant",
            Self::Critical => "critical",
        }
    }

    /// Consecutive failures that open the breaker.
    pub const fn failure_threshold(self) -> u32 {
        match self {
            Self::Aggressive => 3,
            Self::Moderate => 5,
            Self::Tolerant => 10,
            Self::Critical => 2,
        }
    }

    /// How long the breaker stays open before it lets a trial call through.
    pub const fn reset_timeout(self) -> Duration {
        match self {
            Self::Aggressive => Duration::from_secs(10),
            Self::Moderate => Duration::from_secs(30),
            Self::Tolerant | Self::Critical => Duration::from_secs(60),
        }
    }
}

impl fmt::Display for CircuitBreakerPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Pre-configured service names understood by [`CircuitBreakerConfig::for_service`] (and so by
/// the registry): `openai`, `gemini`, `anthropic` (tolerant), `redis` (aggressive), `finnhub`,
/// `coingecko`, `openweathermap` (moderate), `database` (5 / 60 s), `kafka` (10 / 30 s),
/// `network` (3 / 45 s), `vault` (3 / 90 s).
pub const SERVICE_NAMES: &[&str] = &[
    "openai",
    "gemini",
    "anthropic",
    "redis",
    "finnhub",
    "coingecko",
    "openweathermap",
    "database",
    "kafka",
    "network",
    "vault",
];

/// The window over which the failure rate is measured (see
/// [`CircuitBreakerConfigBuilder::failure_rate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlidingWindow {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last duration, kept in ten buckets of a tenth of it each: a bucket leaves
    /// the window as a whole, so the window spans between 0.9 and 1.0 times the duration.
    Time(Duration),
}

/// How the breaker decides to open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TripPolicy {
    /// Open after this many failures in a row (a success resets the count).
    ConsecutiveFailures(u32),
    /// Open when the failure rate over the window reaches `percent`, once the window holds at
    /// least `minimum_calls` calls.
    FailureRate {
        /// Threshold in percent, in (0, 100].
        percent: f64,
        /// The window the rate is measured over.
        window: SlidingWindow,
        /// Calls the window must hold before the rate is trusted.
        minimum_calls: u32,
    },
}

/// A type-erased failure predicate: `None` when the error is not of the predicate's type.
type ErasedPredicate = Arc<dyn Fn(&dyn Any) -> Option<bool> + Send + Sync>;

/// A breaker's configuration. Build one with [`builder`](Self::builder), or take a preset or a
/// service's: [`from_preset`](Self::from_preset), [`for_service`](Self::for_service).
///
/// Two configurations are equal when their numbers are equal and they share the same predicate
/// closures (compared by identity): the registry uses this to accept a repeated, identical
/// [`configure_circuit_breaker`](super::configure_circuit_breaker).
#[derive(Clone)]
pub struct CircuitBreakerConfig {
    pub(crate) trip: TripPolicy,
    pub(crate) reset_timeout: Duration,
    pub(crate) success_threshold: u32,
    pub(crate) half_open_max_calls: u32,
    pub(crate) slow_call_threshold: Option<Duration>,
    pub(crate) predicates: Vec<ErasedPredicate>,
}

impl CircuitBreakerConfig {
    /// A builder, starting from the default ([`CircuitBreakerPreset::Moderate`]) numbers.
    pub fn builder() -> CircuitBreakerConfigBuilder {
        CircuitBreakerConfigBuilder::from_preset(CircuitBreakerPreset::default())
    }

    /// The configuration of a preset: its failure threshold and reset timeout, defaults otherwise.
    pub fn from_preset(preset: CircuitBreakerPreset) -> Self {
        Self::consecutive(preset.failure_threshold(), preset.reset_timeout())
    }

    /// The configuration of a pre-configured service (see [`SERVICE_NAMES`]), or the default
    /// (moderate) one for any other name.
    pub fn for_service(name: &str) -> Self {
        Self::service(name).unwrap_or_else(|| Self::from_preset(CircuitBreakerPreset::default()))
    }

    /// The configuration of a pre-configured service, `None` for a name not in [`SERVICE_NAMES`].
    pub fn service(name: &str) -> Option<Self> {
        use CircuitBreakerPreset::*;
        Some(match name {
            "openai" | "gemini" | "anthropic" => Self::from_preset(Tolerant),
            "redis" => Self::from_preset(Aggressive),
            "finnhub" | "coingecko" | "openweathermap" => Self::from_preset(Moderate),
            "database" => Self::database(),
            "kafka" => Self::kafka(),
            "network" => Self::network(),
            "vault" => Self::vault(),
            _ => return None,
        })
    }

    /// Databases: 5 failures, 60 s reset.
    pub fn database() -> Self {
        Self::consecutive(5, Duration::from_secs(60))
    }

    /// Kafka producers and consumers: 10 failures, 30 s reset.
    pub fn kafka() -> Self {
        Self::consecutive(10, Duration::from_secs(30))
    }

    /// Generic network calls: 3 failures, 45 s reset.
    pub fn network() -> Self {
        Self::consecutive(3, Duration::from_secs(45))
    }

    /// Secret stores such as Vault: 3 failures, 90 s reset.
    pub fn vault() -> Self {
        Self::consecutive(3, Duration::from_secs(90))
    }

    // Only called with non-zero constants.
    fn consecutive(failures: u32, reset_timeout: Duration) -> Self {
        Self {
            trip: TripPolicy::ConsecutiveFailures(failures),
            reset_timeout,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
            half_open_max_calls: DEFAULT_HALF_OPEN_MAX_CALLS,
            slow_call_threshold: None,
            predicates: Vec::new(),
        }
    }

    /// How the breaker decides to open.
    pub fn trip_policy(&self) -> TripPolicy {
        self.trip
    }

    /// Consecutive failures that open the breaker, `None` in failure-rate mode.
    pub fn failure_threshold(&self) -> Option<u32> {
        match self.trip {
            TripPolicy::ConsecutiveFailures(n) => Some(n),
            TripPolicy::FailureRate { .. } => None,
        }
    }

    /// How long the breaker stays open before a trial call.
    pub fn reset_timeout(&self) -> Duration {
        self.reset_timeout
    }

    /// Successful trial calls that close a half-open breaker.
    pub fn success_threshold(&self) -> u32 {
        self.success_threshold
    }

    /// Trial calls a half-open breaker lets run at the same time.
    pub fn half_open_max_calls(&self) -> u32 {
        self.half_open_max_calls
    }

    /// Calls taking at least this long count as failures, if set.
    pub fn slow_call_threshold(&self) -> Option<Duration> {
        self.slow_call_threshold
    }

    /// Whether `err` counts as a failure: the first predicate registered for `E` decides; an error
    /// type without a predicate always counts.
    pub fn is_failure<E: 'static>(&self, err: &E) -> bool {
        self.predicates
            .iter()
            .find_map(|p| p(err as &dyn Any))
            .unwrap_or(true)
    }
}

impl Default for CircuitBreakerConfig {
    /// The moderate preset: 5 consecutive failures, 30 s reset.
    fn default() -> Self {
        Self::from_preset(CircuitBreakerPreset::default())
    }
}

impl PartialEq for CircuitBreakerConfig {
    fn eq(&self, other: &Self) -> bool {
        self.trip == other.trip
            && self.reset_timeout == other.reset_timeout
            && self.success_threshold == other.success_threshold
            && self.half_open_max_calls == other.half_open_max_calls
            && self.slow_call_threshold == other.slow_call_threshold
            && self.predicates.len() == other.predicates.len()
            && self
                .predicates
                .iter()
                .zip(&other.predicates)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl fmt::Debug for CircuitBreakerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerConfig")
            .field("trip", &self.trip)
            .field("reset_timeout", &self.reset_timeout)
            .field("success_threshold", &self.success_threshold)
            .field("half_open_max_calls", &self.half_open_max_calls)
            .field("slow_call_threshold", &self.slow_call_threshold)
            .field("predicates", &self.predicates.len())
            .finish()
    }
}

const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
const DEFAULT_HALF_OPEN_MAX_CALLS: u32 = 1;
const DEFAULT_WINDOW: SlidingWindow = SlidingWindow::Count(100);
const DEFAULT_MINIMUM_CALLS: u32 = 10;

/// Builds a [`CircuitBreakerConfig`]; every option has a default, [`build`](Self::build) checks
/// them all.
///
/// ```
/// use std::time::Duration;
/// use resilience::circuit_breaker::{CircuitBreakerConfig, SlidingWindow};
///
/// let config = CircuitBreakerConfig::builder()
///     .failure_rate(50.0)
///     .sliding_window(SlidingWindow::Count(20))
///     .minimum_calls(10)
///     .reset_timeout(Duration::from_secs(5))
///     .failure_predicate(|e: &std::io::Error| e.kind() != std::io::ErrorKind::NotFound)
///     .build()?;
/// assert_eq!(config.failure_threshold(), None);
///
/// let err = CircuitBreakerConfig::builder().failure_threshold(0).build().unwrap_err();
/// assert_eq!(err.field, "failure_threshold");
/// # Ok::<(), resilience::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct CircuitBreakerConfigBuilder {
    failure_threshold: u32,
    failure_rate: Option<f64>,
    window: SlidingWindow,
    minimum_calls: u32,
    config: CircuitBreakerConfig,
}

impl CircuitBreakerConfigBuilder {
    /// A builder starting from a preset's numbers.
    pub fn from_preset(preset: CircuitBreakerPreset) -> Self {
        Self {
            failure_threshold: preset.failure_threshold(),
            failure_rate: None,
            window: DEFAULT_WINDOW,
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            config: CircuitBreakerConfig::from_preset(preset),
        }
    }

    /// Takes a preset's failure threshold and reset timeout, keeping the other options.
    pub fn preset(mut self, preset: CircuitBreakerPreset) -> Self {
        self.failure_threshold = preset.failure_threshold();
        self.config.reset_timeout = preset.reset_timeout();
        self
    }

    /// Consecutive failures that open the breaker (default 5). Ignored once
    /// [`failure_rate`](Self::failure_rate) selects the failure-rate mode.
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// How long the breaker stays open before it lets a trial call through (default 30 s).
    pub fn reset_timeout(mut self, timeout: Duration) -> Self {
        self.config.reset_timeout = timeout;
        self
    }

    /// Successful trial calls that close a half-open breaker (default 1).
    pub fn success_threshold(mut self, successes: u32) -> Self {
        self.config.success_threshold = successes;
        self
    }

    /// Trial calls a half-open breaker lets run at once (default 1); the others are rejected.
    pub fn half_open_max_calls(mut self, calls: u32) -> Self {
        self.config.half_open_max_calls = calls;
        self
    }

    /// Switches to failure-rate mode: open when at least `percent` (in (0, 100]) of the calls in
    /// the [`sliding_window`](Self::sliding_window) failed.
    pub fn failure_rate(mut self, percent: f64) -> Self {
        self.failure_rate = Some(percent);
        self
    }

    /// The window of the failure-rate mode (default the last 100 calls).
    ///
    /// A count window costs one uncontended atomic add per success; a time window reads the clock
    /// on every call (about 30 ns).
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }

    /// Calls the window must hold before the failure rate can open the breaker (default 10).
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// Calls that take at least `threshold` count as failures even when they succeed (the caller
    /// still gets its `Ok`). Costs two clock reads per call while set.
    pub fn slow_call_threshold(mut self, threshold: Duration) -> Self {
        self.config.slow_call_threshold = Some(threshold);
        self
    }

    /// Decides which errors of type `E` count as failures (default: every `Err`). Errors of other
    /// types are not affected; for one type, the first predicate registered wins. Applies to
    /// [`CircuitBreaker::call`](super::CircuitBreaker::call) and `call_blocking`;
    /// `call_with` takes its own predicate.
    pub fn failure_predicate<E, P>(mut self, predicate: P) -> Self
    where
        E: 'static,
        P: Fn(&E) -> bool + Send + Sync + 'static,
    {
        self.config.predicates.push(Arc::new(move |err: &dyn Any| {
            err.downcast_ref::<E>().map(&predicate)
        }));
        self
    }

    /// Checks every option and returns the configuration, or the first invalid option.
    pub fn build(self) -> Result<CircuitBreakerConfig, ConfigError> {
        let mut config = self.config;
        if config.reset_timeout.is_zero() {
            return Err(ConfigError::new(
                "reset_timeout",
                "must be greater than zero",
            ));
        }
        if config.success_threshold == 0 {
            return Err(ConfigError::new("success_threshold", "must be at least 1"));
        }
        if config.half_open_max_calls == 0 {
            return Err(ConfigError::new(
                "half_open_max_calls",
                "must be at least 1",
            ));
        }
        if config.slow_call_threshold.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "slow_call_threshold",
                "must be greater than zero",
            ));
        }
        config.trip = match self.failure_rate {
            None => {
                if self.failure_threshold == 0 {
                    return Err(ConfigError::new("failure_threshold", "must be at least 1"));
                }
                TripPolicy::ConsecutiveFailures(self.failure_threshold)
            }
            Some(percent) => {
                if !(percent > 0.0 && percent <= 100.0) {
                    return Err(ConfigError::new(
                        "failure_rate",
                        format!("must be in (0, 100] percent, got {percent}"),
                    ));
                }
                match self.window {
                    SlidingWindow::Count(0) => {
                        return Err(ConfigError::new(
                            "sliding_window",
                            "must hold at least 1 call",
                        ));
                    }
                    SlidingWindow::Time(d) if d < Duration::from_millis(10) => {
                        return Err(ConfigError::new(
                            "sliding_window",
                            "a time window must be at least 10 ms",
                        ));
                    }
                    _ => {}
                }
                if self.minimum_calls == 0 {
                    return Err(ConfigError::new("minimum_calls", "must be at least 1"));
                }
                if let SlidingWindow::Count(n) = self.window
                    && self.minimum_calls > n
                {
                    return Err(ConfigError::new(
                        "minimum_calls",
                        format!("must not exceed the window of {n} calls"),
                    ));
                }
                TripPolicy::FailureRate {
                    percent,
                    window: self.window,
                    minimum_calls: self.minimum_calls,
                }
            }
        };
        Ok(config)
    }
}

impl Default for CircuitBreakerConfigBuilder {
    fn default() -> Self {
        CircuitBreakerConfig::builder()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_documented_numbers() {
        let cases = [
            ("aggressive", 3, 10),
            ("moderate", 5, 30),
            ("tolerant", 10, 60),
            ("critical", 2, 60),
        ];
        for (name, failures, secs) in cases {
            let p = CircuitBreakerPreset::from_name(name).unwrap();
            assert_eq!(p.name(), name);
            let c = CircuitBreakerConfig::from_preset(p);
            assert_eq!(c.failure_threshold(), Some(failures), "{name}");
            assert_eq!(c.reset_timeout(), Duration::from_secs(secs), "{name}");
        }
        assert_eq!(CircuitBreakerPreset::NAMES.len(), cases.len());
        assert_eq!(CircuitBreakerPreset::from_name("Moderate"), None);
        assert_eq!(
            CircuitBreakerConfig::default(),
            CircuitBreakerConfig::from_preset(CircuitBreakerPreset::Moderate)
        );
    }

    #[test]
    fn services_have_the_documented_numbers() {
        let cases = [
            ("openai", 10, 60),
            ("gemini", 10, 60),
            ("anthropic", 10, 60),
            ("redis", 3, 10),
            ("finnhub", 5, 30),
            ("coingecko", 5, 30),
            ("openweathermap", 5, 30),
            ("database", 5, 60),
            ("kafka", 10, 30),
            ("network", 3, 45),
            ("vault", 3, 90),
        ];
        for (name, failures, secs) in cases {
            let c = CircuitBreakerConfig::service(name).unwrap();
            assert_eq!(c.failure_threshold(), Some(failures), "{name}");
            assert_eq!(c.reset_timeout(), Duration::from_secs(secs), "{name}");
        }
        assert_eq!(SERVICE_NAMES.len(), cases.len());
        assert!(CircuitBreakerConfig::service("payments").is_none());
        assert_eq!(
            CircuitBreakerConfig::for_service("payments"),
            CircuitBreakerConfig::default()
        );
    }

    #[test]
    fn predicates_apply_per_error_type() {
        let c = CircuitBreakerConfig::builder()
            .failure_predicate(|e: &u32| *e > 10)
            .failure_predicate(|_: &u32| true)
            .build()
            .unwrap();
        assert!(!c.is_failure(&3u32));
        assert!(c.is_failure(&30u32));
        assert!(c.is_failure(&"other type"));
    }
}
