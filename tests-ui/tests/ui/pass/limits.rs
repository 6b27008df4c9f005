#![deny(warnings)]
//! `#[rate_limit]` (plain and keyed), `#[bulkhead]`, `#[timeout]`, on free fns and methods.

use resilience::{BulkheadFull, RateLimited, TimeoutError, bulkhead, rate_limit, timeout};

#[derive(Debug)]
pub enum Error {
    Limited(RateLimited),
    Full(BulkheadFull),
    TimedOut(TimeoutError),
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
impl From<TimeoutError> for Error {
    fn from(e: TimeoutError) -> Self {
        Self::TimedOut(e)
    }
}

#[rate_limit(per_second = 10, burst = 20)]
pub async fn limited() -> Result<u32, Error> {
    Ok(1)
}

#[rate_limit(per_minute = 60, key = user)]
pub fn limited_per_user(user: &str) -> Result<usize, Error> {
    Ok(user.len())
}

#[rate_limit(per_second = 1, key = id)]
pub async fn limited_per_id(id: u64) -> Result<u64, Error> {
    Ok(id)
}

#[bulkhead(max_concurrent = 2, max_queued = 4, queue_timeout_ms = 100)]
pub async fn bounded(n: u32) -> Result<u32, Error> {
    Ok(n)
}

#[timeout(ms = 50)]
pub async fn quick(n: u32) -> Result<u32, Error> {
    Ok(n)
}

#[timeout(250)]
pub async fn anyhow_result() -> anyhow::Result<()> {
    Ok(())
}

pub struct Service;

impl Service {
    #[timeout(ms = 10)]
    #[rate_limit(per_second = 5)]
    pub async fn call(&self, n: u32) -> Result<u32, Error> {
        Ok(n)
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let _ = limited().await;
    let _ = limited_per_user("ann");
    let _ = limited_per_id(7).await;
    let _ = bounded(1).await;
    let _ = quick(1).await;
    let _ = anyhow_result().await;
    let _ = Service.call(1).await;
}
