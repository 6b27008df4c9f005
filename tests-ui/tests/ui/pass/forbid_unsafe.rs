#![forbid(unsafe_code)]
#![deny(warnings)]
//! Every attribute and the derive expand to safe code: a crate that forbids `unsafe` can use
//! them all (`#[shutdown_hook]` registers through `inventory`, whose own `unsafe` stays inside
//! its macro).

use std::io;

use resilience::{
    BulkheadFull, RateLimited, RedisKey, bulkhead, circuit_breaker, rate_limit, retry,
    shutdown_hook, timeout,
};

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    Limited(RateLimited),
    Full(BulkheadFull),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}
impl From<RateLimited> for Error {
    fn from(e: RateLimited) -> Self {
        Self::Limited(e)
    }
}
impl From<BulkheadFull> for Error {
    fn from(e: BulkheadFull) -> Self {
        Self::Full(e)
    }
}

#[circuit_breaker("safe")]
#[retry(preset = "quick")]
#[timeout(ms = 100)]
pub async fn fetch(id: u64) -> Result<u64, io::Error> {
    Ok(id)
}

#[retry(max_attempts = 2, initial_delay_ms = 1, max_delay_ms = 1)]
pub fn fetch_blocking(id: u64) -> Result<u64, io::Error> {
    Ok(id)
}

#[rate_limit(per_second = 10, key = user)]
#[bulkhead(max_concurrent = 2)]
pub async fn limited(user: &str) -> Result<usize, Error> {
    Ok(user.len())
}

#[shutdown_hook(priority = "high")]
async fn close() {}

#[derive(RedisKey)]
#[redis_key(namespace = "safe", template = "item:{id}", hash_tag = "id")]
pub struct ItemKey {
    pub id: u64,
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let _ = fetch(1).await;
    let _ = fetch_blocking(1);
    let _ = limited("ann").await;
    let _ = close();
    let key = resilience::redis::render_key("app", &ItemKey { id: 7 });
    assert_eq!(key.ok().as_deref(), Some("app:safe:item:{7}"));
}
