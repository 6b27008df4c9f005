#![deny(unused_must_use)]
//! `#[must_use]` survives the expansion: ignoring the awaited result is still an error.

use resilience::retry;

#[must_use]
#[retry(preset = "quick")]
async fn important() -> Result<u32, std::io::Error> {
    Ok(1)
}

#[must_use = "the count matters"]
#[retry]
fn important_sync() -> Result<u32, std::io::Error> {
    Ok(1)
}

#[tokio::main]
async fn main() {
    important().await;
    important_sync();
}
