//! A circuit breaker whose state lives in Redis, so several processes share one breaker: when
//! enough consecutive calls fail in any of them, all of them stop calling.
//!
//! Two Lua scripts on one hash key (`<prefix>:breaker:{<name>}`), clocked by the server's `TIME`:
//! `breaker_acquire` (may I call? moves Open → HalfOpen after the reset timeout and hands out at
//! most `half_open_max_calls` trial slots) and `breaker_record` (the outcome). A closed breaker
//! with no failures pending costs one round trip per call: successes are only reported when
//! there are failures to clear. Trial slots whose outcome never comes back (a process died) are
//! freed after one reset timeout.
//!
//! When Redis itself cannot answer, the shared breaker fails open (the call goes ahead, a warning
//! is logged): it guards another service, and losing Redis must not stop traffic to it.
//! The client's own "redis" breaker still protects Redis.

use std::sync::Arc;
use std::time::Duration;

use super::client::RedisClient;
use super::error::RedisError;
use super::keys::BreakerKey;
use super::ops::Op;
use super::scripts::SCRIPTS;
use crate::circuit_breaker::{CallError, CircuitBreakerPreset, CircuitOpenError, CircuitState};
use crate::error::ConfigError;
use crate::log_throttle::LogThrottle;

/// A circuit breaker shared through Redis by every process using the same name and prefix.
#[derive(Debug, Clone)]
pub struct SharedCircuitBreaker {
    client: RedisClient,
    name: Arc<str>,
    key: String,
    failure_threshold: u32,
    success_threshold: u32,
    reset_timeout: Duration,
    half_open_max_calls: u32,
    /// Warnings while Redis is unreachable, at most one per interval.
    warnings: Arc<LogThrottle>,
}

/// Permission to make one call through a [`SharedCircuitBreaker`]; report the outcome with
/// [`success`](Self::success) or [`failure`](Self::failure). Dropped without an outcome, a
/// half-open trial slot is freed after one reset timeout.
#[derive(Debug)]
#[must_use = "report the call's outcome with success() or failure()"]
pub struct SharedPermit<'a> {
    breaker: &'a SharedCircuitBreaker,
    trial: bool,
    failures_pending: bool,
    tracked: bool,
}

impl SharedPermit<'_> {
    /// Whether this permit is a half-open trial.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// The call succeeded.
    pub async fn success(self) {
        // Closed with nothing to clear: nothing to write (the hot path stays one round trip).
        if self.tracked && (self.trial || self.failures_pending) {
            self.breaker.record(true, self.trial).await;
        }
    }

    /// The call failed.
    pub async fn failure(self) {
        if self.tracked {
            self.breaker.record(false, self.trial).await;
        }
    }
}

impl SharedCircuitBreaker {
    /// A builder for the shared breaker `name` on `client` (defaults: the moderate preset,
    /// 5 failures / 30 s, 1 success and 1 trial in half-open).
    pub fn builder(client: RedisClient, name: impl Into<String>) -> SharedCircuitBreakerBuilder {
        let preset = CircuitBreakerPreset::Moderate;
        SharedCircuitBreakerBuilder {
            client,
            name: name.into(),
            failure_threshold: preset.failure_threshold(),
            success_threshold: 1,
            reset_timeout: preset.reset_timeout(),
            half_open_max_calls: 1,
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks to make one call. `Err` when the shared breaker is open (or half-open with every
    /// trial slot taken). If Redis fails, the call is let through (fail open).
    pub async fn try_acquire(&self) -> Result<SharedPermit<'_>, CircuitOpenError> {
        let s = &SCRIPTS.breaker_acquire;
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(&s.sha)
            .arg(1)
            .arg(&self.key)
            .arg(reset_millis(self.reset_timeout))
            .arg(self.half_open_max_calls);
        let reply: Result<(i64, i64, i64, i64, i64), RedisError> =
            self.client.exec(Op::BreakerAcquire, &cmd, Some(s)).await;
        match reply {
            Ok((1, _, _, failures, trial)) => Ok(SharedPermit {
                breaker: self,
                trial: trial == 1,
                failures_pending: failures > 0,
                tracked: true,
            }),
            Ok((_, state, retry_ms, _, _)) => Err(CircuitOpenError {
                name: self.name.clone(),
                retry_after: (state == 2).then(|| Duration::from_millis(retry_ms.max(0) as u64)),
            }),
            Err(e) => {
                if let Some(suppressed) = self.warnings.allow() {
                    tracing::warn!(breaker = %self.name, error = %e, suppressed, "shared breaker unreachable; letting the call through");
                }
                Ok(SharedPermit {
                    breaker: self,
                    trial: false,
                    failures_pending: false,
                    tracked: false,
                })
            }
        }
    }

    /// Runs `f` if the shared breaker allows it and reports the outcome (every `Err` counts as
    /// a failure).
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, CallError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().await.map_err(CallError::Open)?;
        match f().await {
            Ok(v) => {
                permit.success().await;
                Ok(v)
            }
            Err(e) => {
                permit.failure().await;
                Err(CallError::Inner(e))
            }
        }
    }

    /// The shared state as stored (Open stays Open here until a call asks after the reset
    /// timeout).
    pub async fn state(&self) -> Result<CircuitState, RedisError> {
        let state: Option<i64> = self
            .client
            .query(::redis::cmd("HGET").arg(&self.key).arg("state"))
            .await?;
        Ok(match state.unwrap_or(0) {
            1 => CircuitState::HalfOpen,
            2 => CircuitState::Open,
            _ => CircuitState::Closed,
        })
    }

    /// Closes the breaker for every process (clears the shared state).
    pub async fn reset(&self) -> Result<(), RedisError> {
        self.client
            .query::<()>(::redis::cmd("DEL").arg(&self.key))
            .await
    }

    async fn record(&self, success: bool, trial: bool) {
        let s = &SCRIPTS.breaker_record;
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(&s.sha)
            .arg(1)
            .arg(&self.key)
            .arg(u8::from(success))
            .arg(self.failure_threshold)
            .arg(self.success_threshold)
            .arg(u8::from(trial));
        let r: Result<i64, RedisError> = self.client.exec(Op::BreakerRecord, &cmd, Some(s)).await;
        if let Err(e) = r
            && let Some(suppressed) = self.warnings.allow()
        {
            tracing::warn!(breaker = %self.name, error = %e, suppressed, "could not record an outcome in the shared breaker");
        }
    }
}

/// The longest reset timeout sent to the scripts, in ms (~35,000 years): the scripts add it to
/// the server's clock in Lua numbers (doubles), exact only below 2^53. Longer timeouts,
/// `Duration::MAX` included, mean "never" and are sent as this.
const MAX_RESET_MILLIS: u64 = 1 << 50;

/// `d` in whole ms for the scripts, saturating at [`MAX_RESET_MILLIS`] (never truncated).
fn reset_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .min(MAX_RESET_MILLIS)
}

/// Builder for [`SharedCircuitBreaker`].
#[derive(Debug)]
pub struct SharedCircuitBreakerBuilder {
    client: RedisClient,
    name: String,
    failure_threshold: u32,
    success_threshold: u32,
    reset_timeout: Duration,
    half_open_max_calls: u32,
}

impl SharedCircuitBreakerBuilder {
    /// Start from a preset's failure threshold and reset timeout.
    pub fn preset(mut self, preset: CircuitBreakerPreset) -> Self {
        self.failure_threshold = preset.failure_threshold();
        self.reset_timeout = preset.reset_timeout();
        self
    }

    /// Consecutive failures (across all processes) that open the breaker.
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n;
        self
    }

    /// Successful trials that close a half-open breaker.
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.success_threshold = n;
        self
    }

    /// How long the breaker stays open before it lets trials through (at least 1 ms; anything
    /// beyond ~35,000 years, `Duration::MAX` included, means "until [`reset`](SharedCircuitBreaker::reset)").
    pub fn reset_timeout(mut self, d: Duration) -> Self {
        self.reset_timeout = d;
        self
    }

    /// Concurrent trial calls while half-open (across all processes).
    pub fn half_open_max_calls(mut self, n: u32) -> Self {
        self.half_open_max_calls = n;
        self
    }

    /// Checks and builds.
    pub fn build(self) -> Result<SharedCircuitBreaker, ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        for (field, v) in [
            ("failure_threshold", self.failure_threshold),
            ("success_threshold", self.success_threshold),
            ("half_open_max_calls", self.half_open_max_calls),
        ] {
            if v == 0 {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        if self.reset_timeout < Duration::from_millis(1) {
            return Err(ConfigError::new("reset_timeout", "must be at least 1 ms"));
        }
        let key = self
            .client
            .key(&BreakerKey::new(self.name.as_str()))
            .map_err(|_| ConfigError::new("name", "cannot be rendered as a key"))?;
        Ok(SharedCircuitBreaker {
            client: self.client,
            name: Arc::from(self.name),
            key,
            failure_threshold: self.failure_threshold,
            success_threshold: self.success_threshold,
            reset_timeout: self.reset_timeout,
            half_open_max_calls: self.half_open_max_calls,
            warnings: Arc::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_timeout_saturates_instead_of_truncating() {
        assert_eq!(reset_millis(Duration::from_millis(1)), 1);
        assert_eq!(reset_millis(Duration::from_secs(30)), 30_000);
        // `as u64` of Duration::MAX's ms keeps the low 64 bits: an arbitrary, short timeout.
        assert_eq!(reset_millis(Duration::MAX), MAX_RESET_MILLIS);
        assert_eq!(
            reset_millis(Duration::from_millis(u64::MAX)),
            MAX_RESET_MILLIS
        );
        assert_eq!(
            reset_millis(Duration::from_millis(MAX_RESET_MILLIS)),
            MAX_RESET_MILLIS
        );
    }
}
