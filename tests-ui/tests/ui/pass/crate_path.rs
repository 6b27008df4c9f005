#![deny(warnings)]
//! `crate = "..."` points the generated code at a re-exported or renamed runtime.

mod runtime {
    pub use ::resilience::*;
}

use resilience::{retry, shutdown_hook, timeout};

#[derive(Debug)]
pub struct TimedOut;

impl From<runtime::TimeoutError> for TimedOut {
    fn from(_: runtime::TimeoutError) -> Self {
        Self
    }
}

impl runtime::retry::Retryable for TimedOut {
    fn is_retryable(&self) -> bool {
        true
    }
}

#[retry(crate = "crate::runtime", preset = "quick")]
#[timeout(ms = 10, crate = "crate::runtime")]
pub async fn fetch() -> Result<(), TimedOut> {
    Ok(())
}

#[shutdown_hook(crate = "crate::runtime")]
async fn bye() {}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let _ = fetch().await;
    let _ = bye();
}
