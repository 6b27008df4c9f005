//! `#[rate_limit(backend = "redis")]` and `#[circuit_breaker(shared = true)]`: cells that build
//! their Redis-backed limiter or breaker on first use, from the client the attribute names (or
//! the process-wide default).
//!
//! Without a client (none installed yet, or `client = ...` gave `None`), nothing is built and
//! the next call looks again, so a client installed a little after start-up is picked up; in the
//! meantime the limiter applies its `on_redis_error` policy and the shared breaker lets calls
//! through, as both do when Redis cannot answer. That is warned about once per function, not
//! per call.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::breaker::from_call;
use super::rate_limit::build_limiter;
use super::{FromCircuitOpen, FromRateLimited, LimitKey, Outcome, RateSpec, rejected_at_runtime};
use crate::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerPreset, TripPolicy};
use crate::error::ConfigError;
use crate::rate_limit::{
    FailurePolicy, KeyedRateLimiter, RateLimitError, RateLimited, RedisRateLimiter,
};
use crate::redis::{RedisClient, RedisError, SharedCircuitBreaker, default_client};

/// Where a Redis-backed attribute gets its client: `client = <expr>` evaluates to one of these.
#[diagnostic::on_unimplemented(
    message = "`client = ...` must give a `RedisClient` (or `&RedisClient`, `Arc<RedisClient>`, `&OnceLock<RedisClient>`, `Option<..>` of those), not `{Self}`",
    label = "not a Redis client",
    note = "connect one with `RedisClient::connect`, or leave `client` out to use the default set with `resilience::redis::set_default_client`"
)]
pub trait RedisClientSource {
    fn redis_client(self) -> Option<RedisClient>;
}

impl RedisClientSource for RedisClient {
    fn redis_client(self) -> Option<RedisClient> {
        Some(self)
    }
}

impl RedisClientSource for &RedisClient {
    fn redis_client(self) -> Option<RedisClient> {
        Some(self.clone())
    }
}

impl RedisClientSource for Arc<RedisClient> {
    fn redis_client(self) -> Option<RedisClient> {
        Some((*self).clone())
    }
}

impl RedisClientSource for &Arc<RedisClient> {
    fn redis_client(self) -> Option<RedisClient> {
        Some((**self).clone())
    }
}

impl<S: RedisClientSource> RedisClientSource for Option<S> {
    fn redis_client(self) -> Option<RedisClient> {
        self.and_then(RedisClientSource::redis_client)
    }
}

impl<'a, S> RedisClientSource for &'a Option<S>
where
    &'a S: RedisClientSource,
{
    fn redis_client(self) -> Option<RedisClient> {
        self.as_ref().and_then(RedisClientSource::redis_client)
    }
}

/// `client = &CLIENT` for a `static CLIENT: OnceLock<RedisClient>` set at start-up.
impl<'a, S> RedisClientSource for &'a OnceLock<S>
where
    &'a S: RedisClientSource,
{
    fn redis_client(self) -> Option<RedisClient> {
        self.get().and_then(RedisClientSource::redis_client)
    }
}

/// Checks `client = <expr>` where it is written (an error there, not on the attribute).
#[inline(always)]
pub fn redis_client_source<C: RedisClientSource>(client: C) -> Option<RedisClient> {
    client.redis_client()
}

/// The client of an attribute without `client = ...`: the process-wide default.
#[inline]
pub fn default_redis_client() -> Option<&'static RedisClient> {
    default_client()
}

/// What went wrong when no client could be found, as the error a fail-closed limiter returns.
fn no_client_error() -> RedisError {
    RedisError::Config(ConfigError::new(
        "client",
        "no Redis client: install one with `resilience::redis::set_default_client` at start-up, \
         or pass `client = ...` to the attribute",
    ))
}

/// Warns once per cell that no client was found.
fn warn_no_client(warned: &AtomicBool, attr: &str, name: &str, then: &str) {
    // A load first: after the one warning, calls only read the flag (no cache-line writes).
    if !warned.load(Ordering::Relaxed) && !warned.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            name,
            "{attr}: no Redis client yet (install one with `resilience::redis::set_default_client`, \
             or check the attribute's `client = ...`); {then} until there is one"
        );
    }
}

/// `#[rate_limit(on_redis_error = "...")]`: what the limiter answers when Redis cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRedisError {
    Open,
    Closed,
    Local,
}

/// The names `on_redis_error` accepts, one item per name (see `presets`).
pub mod on_redis_error {
    use super::OnRedisError;

    pub const open: OnRedisError = OnRedisError::Open;
    pub const closed: OnRedisError = OnRedisError::Closed;
    pub const local: OnRedisError = OnRedisError::Local;
}

/// The key of an unkeyed `#[rate_limit(backend = "redis")]`: every call spends from one bucket.
pub const REDIS_UNKEYED: &str = "_";

/// The limiter of one `#[rate_limit(backend = "redis")]` function (a `static` in the generated
/// body).
pub struct RedisLimiterCell {
    spec: RateSpec,
    name: &'static str,
    on_error: OnRedisError,
    limiter: OnceLock<RedisRateLimiter>,
    /// The in-memory fallback of `on_redis_error = "local"`, also used while there is no client.
    local: OnceLock<Arc<KeyedRateLimiter>>,
    warned: AtomicBool,
}

/// The answer of a Redis-backed limiter for one call.
pub enum RedisVerdict {
    Admit,
    Limited(RateLimited),
    /// Fail closed: Redis (or the client) could not decide.
    Failed(RateLimitError),
}

impl RedisLimiterCell {
    pub const fn new(spec: RateSpec, name: &'static str, on_error: OnRedisError) -> Self {
        Self {
            spec,
            name,
            on_error,
            limiter: OnceLock::new(),
            local: OnceLock::new(),
            warned: AtomicBool::new(false),
        }
    }

    fn capacity(&self) -> u32 {
        self.spec.burst.unwrap_or(self.spec.count)
    }

    fn local(&self) -> &Arc<KeyedRateLimiter> {
        self.local.get_or_init(|| {
            // Its own name: its decisions are not the Redis limiter's.
            let builder = KeyedRateLimiter::builder().name(format!("{}:local", self.name));
            Arc::new(build_limiter!(builder, &self.spec))
        })
    }

    /// The Redis limiter, built on first use from the client `client` gives; `None` while there
    /// is no client.
    fn resolve<C: RedisClientSource>(
        &self,
        client: impl FnOnce() -> C,
    ) -> Option<&RedisRateLimiter> {
        if let Some(limiter) = self.limiter.get() {
            return Some(limiter);
        }
        let client = client().redis_client()?;
        Some(self.limiter.get_or_init(|| {
            let spec = &self.spec;
            let policy = match self.on_error {
                OnRedisError::Open => FailurePolicy::FailOpen,
                OnRedisError::Closed => FailurePolicy::FailClosed,
                OnRedisError::Local => FailurePolicy::Local(Arc::clone(self.local())),
            };
            let built = RedisRateLimiter::builder(client, self.name)
                .capacity(u64::from(self.capacity()))
                .refill_per_sec(f64::from(spec.count) / spec.period_secs as f64)
                .failure_policy(policy)
                .build();
            match built {
                Ok(limiter) => limiter,
                Err(error) => rejected_at_runtime("#[rate_limit]", &error),
            }
        }))
    }

    /// Decides for one call under `key`. The client is looked up now (not held across the
    /// round trip).
    pub fn check<'a, C, K>(
        &'static self,
        client: impl FnOnce() -> C,
        key: &'a K,
    ) -> impl Future<Output = RedisVerdict> + Send + 'a
    where
        C: RedisClientSource,
        K: LimitKey + ?Sized,
    {
        let limiter = self.resolve(client);
        let key = key.key_str();
        async move {
            let Some(limiter) = limiter else {
                return self.without_client(&key);
            };
            match limiter.check(&key, 1).await {
                Ok(decision) if decision.allowed => RedisVerdict::Admit,
                Ok(decision) => RedisVerdict::Limited(RateLimited {
                    retry_after: decision.retry_after,
                }),
                Err(error) => RedisVerdict::Failed(error),
            }
        }
    }

    fn without_client(&self, key: &str) -> RedisVerdict {
        let then = match self.on_error {
            OnRedisError::Open => "admitting every call (on_redis_error = \"open\")",
            OnRedisError::Closed => "refusing every call (on_redis_error = \"closed\")",
            OnRedisError::Local => "limiting in memory (on_redis_error = \"local\")",
        };
        warn_no_client(&self.warned, "#[rate_limit]", self.name, then);
        match self.on_error {
            OnRedisError::Open => RedisVerdict::Admit,
            OnRedisError::Closed => {
                RedisVerdict::Failed(RateLimitError::Backend(Box::new(no_client_error())))
            }
            OnRedisError::Local => match self.local().check_key(key) {
                Ok(()) => RedisVerdict::Admit,
                // One token never exceeds the capacity (burst ≥ 1), so every refusal is "later".
                Err(error) => RedisVerdict::Limited(RateLimited {
                    retry_after: error.retry_after().unwrap_or(Duration::ZERO),
                }),
            },
        }
    }
}

/// Turns "the limiter could not decide" (`on_redis_error = "closed"`) into the wrapped
/// function's error type.
#[diagnostic::on_unimplemented(
    message = "`#[rate_limit(on_redis_error = \"closed\")]` needs the function's error type `{Self}` to implement `From<RateLimitError>`",
    label = "`{Self}` cannot hold \"the limiter could not decide\"",
    note = "add `impl From<resilience::rate_limit::RateLimitError> for {Self}`, or choose `on_redis_error = \"open\"` or `\"local\"`"
)]
pub trait FromRateLimitError {
    fn from_rate_limit_error(error: RateLimitError) -> Self;
}

#[diagnostic::do_not_recommend]
impl<E: From<RateLimitError>> FromRateLimitError for E {
    #[inline]
    fn from_rate_limit_error(error: RateLimitError) -> Self {
        E::from(error)
    }
}

/// `Some(Err(..))` to return at once when the call is not admitted (`on_redis_error` "open" or
/// "local", which always decide).
#[inline]
pub fn redis_rate_limit_verdict<R>(verdict: RedisVerdict) -> Option<R>
where
    R: Outcome,
    R::Err: FromRateLimited,
{
    match verdict {
        RedisVerdict::Admit => None,
        RedisVerdict::Limited(limited) => {
            Some(R::from_result(Err(R::Err::from_rate_limited(limited))))
        }
        // Only a fail-closed limiter fails, and its attribute calls the function below; should
        // that ever change, admitting matches the open and local policies' intent.
        RedisVerdict::Failed(error) => {
            tracing::debug!(%error, "#[rate_limit]: undecided call admitted");
            None
        }
    }
}

/// [`redis_rate_limit_verdict`] for `on_redis_error = "closed"`: an undecided call returns
/// `Err(E::from(RateLimitError))`.
#[inline]
pub fn redis_rate_limit_verdict_closed<R>(verdict: RedisVerdict) -> Option<R>
where
    R: Outcome,
    R::Err: FromRateLimited + FromRateLimitError,
{
    match verdict {
        RedisVerdict::Admit => None,
        RedisVerdict::Limited(limited) => {
            Some(R::from_result(Err(R::Err::from_rate_limited(limited))))
        }
        RedisVerdict::Failed(error) => {
            Some(R::from_result(Err(R::Err::from_rate_limit_error(error))))
        }
    }
}

/// The shared breaker of one `#[circuit_breaker(shared = true)]` function.
pub struct SharedBreakerCell {
    name: &'static str,
    preset: Option<CircuitBreakerPreset>,
    breaker: OnceLock<SharedCircuitBreaker>,
    warned: AtomicBool,
}

impl SharedBreakerCell {
    pub const fn new(name: &'static str, preset: Option<CircuitBreakerPreset>) -> Self {
        Self {
            name,
            preset,
            breaker: OnceLock::new(),
            warned: AtomicBool::new(false),
        }
    }

    /// The shared breaker, built on first use; `None` while there is no client.
    pub fn get<C: RedisClientSource>(
        &'static self,
        client: impl FnOnce() -> C,
    ) -> Option<&'static SharedCircuitBreaker> {
        if let Some(breaker) = self.breaker.get() {
            return Some(breaker);
        }
        let Some(client) = client().redis_client() else {
            let then = "letting every call through";
            warn_no_client(
                &self.warned,
                "#[circuit_breaker(shared = true)]",
                self.name,
                then,
            );
            return None;
        };
        Some(self.breaker.get_or_init(|| self.build(client)))
    }

    #[cold]
    fn build(&self, client: RedisClient) -> SharedCircuitBreaker {
        // The same numbers the in-process breaker of this name would get: the preset, else the
        // pre-configured service's, else the default.
        let config = match self.preset {
            Some(preset) => CircuitBreakerConfig::from_preset(preset),
            None => CircuitBreakerConfig::for_service(self.name),
        };
        let failure_threshold = match config.trip_policy() {
            TripPolicy::ConsecutiveFailures(n) => n,
            // The shared breaker counts consecutive failures only.
            TripPolicy::FailureRate { .. } => CircuitBreakerPreset::default().failure_threshold(),
        };
        let built = SharedCircuitBreaker::builder(client, self.name)
            .failure_threshold(failure_threshold)
            .reset_timeout(config.reset_timeout())
            .success_threshold(config.success_threshold())
            .half_open_max_calls(config.half_open_max_calls())
            .build();
        match built {
            Ok(breaker) => breaker,
            Err(error) => rejected_at_runtime("#[circuit_breaker(shared = true)]", &error),
        }
    }
}

/// The body of a `#[circuit_breaker(shared = true)]` function; without a breaker (no client),
/// the call goes ahead.
#[inline]
pub async fn shared_breaker_call<Fut, R>(breaker: Option<&SharedCircuitBreaker>, body: Fut) -> R
where
    Fut: Future<Output = R>,
    R: Outcome,
    R::Err: FromCircuitOpen,
{
    let Some(breaker) = breaker else {
        return body.await;
    };
    from_call(
        breaker
            .call(move || async move { body.await.into_result() })
            .await,
    )
}
