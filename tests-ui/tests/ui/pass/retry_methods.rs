#![deny(warnings)]
//! `#[retry]` on methods: `&self` and `&mut self` are re-borrowed per attempt, arguments are
//! cloned (`&mut T` ones re-borrowed), `mut` arguments stay mutable per attempt.

use resilience::retry;

#[derive(Debug)]
pub struct ApiError;

impl resilience::retry::Retryable for ApiError {
    fn is_retryable(&self) -> bool {
        true
    }
}

pub struct Client {
    calls: u32,
    base: String,
}

impl Client {
    #[retry(max_attempts = 3, initial_delay_ms = 1, max_delay_ms = 1)]
    pub async fn get(&self, path: String, id: u64) -> Result<String, ApiError> {
        Ok(format!("{}/{path}/{id}", self.base))
    }

    #[retry(preset = "quick")]
    pub async fn bump(&mut self, by: &u32, log: &mut Vec<u32>, mut extra: u32) -> Result<u32, ApiError> {
        extra += 1;
        self.calls += *by + extra;
        log.push(self.calls);
        if self.calls < 5 { Err(ApiError) } else { Ok(self.calls) }
    }

    #[retry(max_attempts = 2, initial_delay_ms = 1, max_delay_ms = 1)]
    pub fn get_blocking(&mut self, _unused: u8) -> Result<u32, ApiError> {
        self.calls += 1;
        Ok(self.calls)
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let mut client = Client { calls: 0, base: "http://x".into() };
    let _ = client.get("a".into(), 1).await;
    let mut log = Vec::new();
    let _ = client.bump(&1, &mut log, 0).await;
    let _ = client.get_blocking(0);
}
