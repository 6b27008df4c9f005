#![deny(warnings)]
//! `#[rate_limit(backend = "redis")]` and `#[circuit_breaker(shared = true)]` in every form:
//! default or explicit client (owned, borrowed, from a `OnceLock`, optional), keyed, each
//! failure policy, on methods, stacked, and with a renamed runtime. The futures are `Send`.

use std::sync::OnceLock;

use resilience::rate_limit::RateLimitError;
use resilience::redis::RedisClient;
use resilience::{CircuitOpenError, RateLimited, circuit_breaker, rate_limit, retry};

mod runtime {
    pub use ::resilience::*;
}

#[derive(Debug)]
pub enum ApiError {
    Limited,
    Undecided,
    Open,
}

impl From<RateLimited> for ApiError {
    fn from(_: RateLimited) -> Self {
        Self::Limited
    }
}
impl From<RateLimitError> for ApiError {
    fn from(_: RateLimitError) -> Self {
        Self::Undecided
    }
}
impl From<CircuitOpenError> for ApiError {
    fn from(_: CircuitOpenError) -> Self {
        Self::Open
    }
}

fn is_transient(e: &ApiError) -> bool {
    matches!(e, ApiError::Undecided)
}

static REDIS: OnceLock<RedisClient> = OnceLock::new();

#[rate_limit(per_second = 10, burst = 20, backend = "redis")]
pub async fn unkeyed() -> Result<u32, ApiError> {
    Ok(1)
}

#[rate_limit(per_minute = 60, key = user, backend = "redis", on_redis_error = "closed", name = "api")]
pub async fn keyed(user: &str) -> Result<usize, ApiError> {
    Ok(user.len())
}

// A key built per call: the temporary lives across the Redis round trip.
#[rate_limit(per_second = 5, key = format!("{tenant}:{user}"), backend = "redis")]
pub async fn composite(tenant: u32, user: String) -> Result<String, ApiError> {
    Ok(user)
}

#[rate_limit(per_second = 5, key = id, backend = "redis", on_redis_error = "open", client = &REDIS)]
pub async fn by_id(id: u64) -> Result<u64, ApiError> {
    Ok(id)
}

#[rate_limit(per_second = 5, backend = "redis", on_redis_error = "local", client = REDIS.get())]
pub async fn optional_client() -> Result<(), anyhow::Error> {
    Ok(())
}

#[circuit_breaker("payments", shared = true, preset = "critical")]
pub async fn charge(cents: u64) -> Result<u64, ApiError> {
    Ok(cents)
}

#[circuit_breaker(shared = false)]
pub fn local_only() -> Result<(), ApiError> {
    Ok(())
}

pub struct Service {
    redis: RedisClient,
}

impl Service {
    #[circuit_breaker("inventory", shared = true, client = &self.redis)]
    #[retry(preset = "quick", retry_if = is_transient)]
    #[rate_limit(per_second = 100, backend = "redis", name = "inventory", client = self.redis.clone())]
    pub async fn reserve(&self, sku: &str) -> Result<usize, ApiError> {
        Ok(sku.len())
    }
}

#[rate_limit(per_second = 1, backend = "redis", crate = "crate::runtime")]
#[circuit_breaker("renamed", shared = true, crate = "crate::runtime")]
pub async fn renamed() -> Result<(), ApiError> {
    Ok(())
}

fn is_send<T: Send>(_: &T) {}

fn main() {
    is_send(&unkeyed());
    is_send(&keyed("alice"));
    is_send(&by_id(7));
    is_send(&composite(1, "bob".to_owned()));
    is_send(&optional_client());
    is_send(&charge(100));
    is_send(&renamed());
    let _ = local_only();
    let _ = |service: &'static Service| is_send(&service.reserve("sku"));
}
