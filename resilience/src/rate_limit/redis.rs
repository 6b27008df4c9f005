//! A keyed rate limiter on Redis: one GCRA bucket per key shared by every process, one round
//! trip per decision, with a policy for when Redis cannot answer.

use std::sync::Arc;

use super::metrics::{ALLOWED, Decisions, ERROR, FAIL_OPEN, LOCAL, REJECTED};
use super::{KeyedRateLimit, KeyedRateLimiter, RateLimitDecision, RateLimitError};
use crate::error::ConfigError;
use crate::log_throttle::LogThrottle;
use crate::redis::keys::RateBucketKey;
use crate::redis::{RedisClient, RedisError};

/// What [`RedisRateLimiter`] answers when Redis fails (unreachable, timeout, breaker open).
/// Every call has a deadline (the client's response timeout), so the policy applies promptly.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit the request (availability over strictness). The decision reports `remaining: 0`.
    #[default]
    FailOpen,
    /// Refuse to decide: [`RateLimitError::Backend`] with the Redis error.
    FailClosed,
    /// Decide with this in-memory limiter instead (per process, so the effective limit while
    /// Redis is down is the local one times the number of processes: size it accordingly).
    /// Its decisions are counted under its own name (name it, e.g. `"api-local"`).
    Local(Arc<KeyedRateLimiter>),
}

/// A [`KeyedRateLimit`] on Redis: a bucket of `capacity` tokens per key, refilled at
/// `refill_per_sec`, shared by every process using the same limiter name.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    client: RedisClient,
    name: Arc<str>,
    capacity: u64,
    refill_per_sec: f64,
    policy: FailurePolicy,
    /// The fail-open / local warnings, at most one per interval while Redis is down.
    warnings: Arc<LogThrottle>,
    /// `rate_limit_decisions_total{name}`, shared by the clones.
    metrics: Arc<Decisions>,
}

impl RedisRateLimiter {
    /// A builder over `client`; the name keeps this limiter's buckets apart from others'.
    pub fn builder(client: RedisClient, name: impl Into<String>) -> RedisRateLimiterBuilder {
        RedisRateLimiterBuilder {
            client,
            name: name.into(),
            capacity: None,
            refill_per_sec: None,
            policy: FailurePolicy::default(),
        }
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bucket size: the burst a key may spend at once.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Tokens added per second.
    pub fn refill_per_sec(&self) -> f64 {
        self.refill_per_sec
    }

    /// Decides for `cost` tokens under `key`, applying the failure policy to Redis errors.
    pub async fn check(&self, key: &str, cost: u32) -> Result<RateLimitDecision, RateLimitError> {
        let cost_u64 = u64::from(cost);
        if cost_u64 > self.capacity {
            return Err(RateLimitError::CostExceedsCapacity {
                cost: cost_u64,
                capacity: self.capacity,
            });
        }
        let result = match self.client.key(&RateBucketKey {
            limiter: &self.name,
            key,
        }) {
            Ok(k) => {
                self.client
                    .rate_limit_raw(&k, self.capacity, self.refill_per_sec, cost_u64)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(d) => {
                self.metrics
                    .count(if d.allowed { ALLOWED } else { REJECTED });
                Ok(d)
            }
            Err(e) => self.on_failure(key, cost, e).await,
        }
    }

    async fn on_failure(
        &self,
        key: &str,
        cost: u32,
        e: RedisError,
    ) -> Result<RateLimitDecision, RateLimitError> {
        match &self.policy {
            FailurePolicy::FailOpen => {
                self.metrics.count(FAIL_OPEN);
                if let Some(suppressed) = self.warnings.allow() {
                    tracing::warn!(limiter = %self.name, error = %e, suppressed, "Redis rate limit failed; admitting (fail open)");
                }
                Ok(RateLimitDecision {
                    allowed: true,
                    remaining: 0,
                    retry_after: std::time::Duration::ZERO,
                    reset_after: std::time::Duration::ZERO,
                })
            }
            FailurePolicy::FailClosed => {
                self.metrics.count(ERROR);
                Err(RateLimitError::Backend(Box::new(e)))
            }
            FailurePolicy::Local(local) => {
                self.metrics.count(LOCAL);
                if let Some(suppressed) = self.warnings.allow() {
                    tracing::warn!(limiter = %self.name, error = %e, suppressed, "Redis rate limit failed; deciding locally");
                }
                KeyedRateLimit::check_key(&**local, key, cost).await
            }
        }
    }
}

impl KeyedRateLimit for RedisRateLimiter {
    fn check_key(
        &self,
        key: &str,
        cost: u32,
    ) -> impl std::future::Future<Output = Result<RateLimitDecision, RateLimitError>> + Send {
        self.check(key, cost)
    }
}

/// Builder for [`RedisRateLimiter`].
#[derive(Debug)]
pub struct RedisRateLimiterBuilder {
    client: RedisClient,
    name: String,
    capacity: Option<u64>,
    refill_per_sec: Option<f64>,
    policy: FailurePolicy,
}

impl RedisRateLimiterBuilder {
    /// Bucket size: the burst a key may spend at once.
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Tokens added per second.
    pub fn refill_per_sec(mut self, rate: f64) -> Self {
        self.refill_per_sec = Some(rate);
        self
    }

    /// What to do when Redis fails (default: fail open).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Checks and builds.
    pub fn build(self) -> Result<RedisRateLimiter, ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        let capacity = self
            .capacity
            .ok_or_else(|| ConfigError::new("capacity", "is required"))?;
        let rate = self
            .refill_per_sec
            .ok_or_else(|| ConfigError::new("refill_per_sec", "is required"))?;
        if let Err(RedisError::InvalidArgument { name, reason }) =
            crate::redis::check_rate_public(capacity, rate)
        {
            return Err(ConfigError::new(name, reason));
        }
        let name: Arc<str> = Arc::from(self.name);
        Ok(RedisRateLimiter {
            client: self.client,
            metrics: Arc::new(Decisions::new(Some(Arc::clone(&name).into()))),
            name,
            capacity,
            refill_per_sec: rate,
            policy: self.policy,
            warnings: Arc::default(),
        })
    }
}
