#![deny(warnings)]
//! `#[rate_limit(preset = "...")]`, alone, with an overriding rate, a burst or a key.

use resilience::{RateLimited, rate_limit};

#[rate_limit(preset = "api")]
pub async fn handler() -> Result<(), RateLimited> {
    Ok(())
}

#[rate_limit(preset = "api", per_second = 30)]
pub async fn faster() -> Result<(), RateLimited> {
    Ok(())
}

#[rate_limit(preset = "database", per_minute = 600, burst = 5)]
pub fn query() -> Result<(), RateLimited> {
    Ok(())
}

#[rate_limit(preset = "database", key = tenant)]
pub fn per_tenant(tenant: &str) -> Result<(), RateLimited> {
    let _ = tenant;
    Ok(())
}

fn main() {}
