//! Coordinator settings, validated by a builder.

use std::time::Duration;

use crate::ConfigError;

/// How a [`ShutdownCoordinator`](super::ShutdownCoordinator) shuts down.
///
/// Defaults: total timeout 30 s, per-hook timeout 10 s, drain delay 0, drain timeout 10 s, a hook
/// cut at its own timeout is reported but does not fail the shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownConfig {
    pub(crate) total_timeout: Duration,
    pub(crate) hook_timeout: Duration,
    pub(crate) drain_delay: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) hook_timeout_is_failure: bool,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            total_timeout: Duration::from_secs(30),
            hook_timeout: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(10),
            hook_timeout_is_failure: false,
        }
    }
}

impl ShutdownConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ShutdownConfigBuilder {
        ShutdownConfigBuilder {
            config: Self::default(),
        }
    }

    /// The bound on the whole shutdown (drain delay, draining and hooks); past it the outcome is
    /// [`ShutdownOutcome::TimedOut`](super::ShutdownOutcome::TimedOut) (exit code 124).
    pub fn total_timeout(&self) -> Duration {
        self.total_timeout
    }

    /// The default bound on one hook.
    pub fn hook_timeout(&self) -> Duration {
        self.hook_timeout
    }

    /// How long requests are still served after readiness turns off (so load balancers notice).
    pub fn drain_delay(&self) -> Duration {
        self.drain_delay
    }

    /// How long in-flight work is waited for after the drain delay.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// Whether a hook cut at its own timeout makes the outcome a failure (exit code 1).
    pub fn hook_timeout_is_failure(&self) -> bool {
        self.hook_timeout_is_failure
    }
}

/// Builds a [`ShutdownConfig`]; [`build`](Self::build) rejects zero timeouts and a drain delay
/// that does not fit in the total timeout.
///
/// Any duration is accepted otherwise: one too long to be a deadline (`Duration::MAX`) means
/// "no limit", never a panic or an overflow.
#[derive(Debug, Clone)]
pub struct ShutdownConfigBuilder {
    config: ShutdownConfig,
}

impl ShutdownConfigBuilder {
    /// Bound on the whole shutdown (default 30 s).
    pub fn total_timeout(mut self, d: Duration) -> Self {
        self.config.total_timeout = d;
        self
    }

    /// Default bound on each hook (default 10 s); a hook may set its own.
    pub fn hook_timeout(mut self, d: Duration) -> Self {
        self.config.hook_timeout = d;
        self
    }

    /// Time between readiness turning off and the cancellation token firing (default 0).
    pub fn drain_delay(mut self, d: Duration) -> Self {
        self.config.drain_delay = d;
        self
    }

    /// Bound on waiting for tracked in-flight work (default 10 s).
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.config.drain_timeout = d;
        self
    }

    /// Count a hook cut at its own timeout as a failure (default: reported only).
    pub fn hook_timeout_is_failure(mut self, yes: bool) -> Self {
        self.config.hook_timeout_is_failure = yes;
        self
    }

    /// The validated configuration.
    pub fn build(self) -> Result<ShutdownConfig, ConfigError> {
        let c = self.config;
        if c.total_timeout.is_zero() {
            return Err(ConfigError::new(
                "total_timeout",
                "must be greater than zero",
            ));
        }
        if c.hook_timeout.is_zero() {
            return Err(ConfigError::new(
                "hook_timeout",
                "must be greater than zero",
            ));
        }
        if c.drain_delay >= c.total_timeout {
            return Err(ConfigError::new(
                "drain_delay",
                "must be shorter than total_timeout",
            ));
        }
        Ok(c)
    }
}
