#![deny(warnings)]
//! `#[retry]` above `#[timeout]` / `#[circuit_breaker]` on `&mut self` methods (as the README
//! stacks them): the inner layer's body borrows `self` per attempt instead of moving it.

use resilience::{CircuitOpenError, TimeoutError, circuit_breaker, retry, timeout};

#[derive(Debug)]
pub enum ApiError {
    Down,
    TimedOut,
    Open,
}

impl resilience::retry::Retryable for ApiError {
    fn is_retryable(&self) -> bool {
        !matches!(self, Self::Open)
    }
}

impl From<TimeoutError> for ApiError {
    fn from(_: TimeoutError) -> Self {
        Self::TimedOut
    }
}

impl From<CircuitOpenError> for ApiError {
    fn from(_: CircuitOpenError) -> Self {
        Self::Open
    }
}

pub struct Client {
    calls: u32,
}

impl Client {
    #[retry(preset = "quick")]
    #[timeout(ms = 5_000)]
    pub async fn fetch(&mut self, url: String, mut tries: Vec<u32>) -> Result<u32, ApiError> {
        self.calls += 1;
        tries.push(self.calls);
        if url.is_empty() { Err(ApiError::Down) } else { Ok(tries.len() as u32) }
    }

    #[retry(preset = "quick")]
    #[circuit_breaker("ui-stacked")]
    #[timeout(ms = 5_000)]
    pub async fn send(&mut self, mut by: u32) -> Result<u32, ApiError> {
        by += 1;
        self.calls += by;
        Ok(self.calls)
    }

    /// Without `#[retry]`, destructured arguments still move into the layers' bodies.
    #[circuit_breaker("ui-destructured")]
    #[timeout(ms = 5_000)]
    pub async fn add(&mut self, (a, mut b): (u32, u32), _unused: String) -> Result<u32, ApiError> {
        b += a;
        self.calls += b;
        Ok(self.calls)
    }

    #[retry(max_attempts = 2, initial_delay_ms = 1, max_delay_ms = 1)]
    #[circuit_breaker("ui-stacked-sync")]
    pub fn send_blocking(&mut self, by: &mut u32) -> Result<u32, ApiError> {
        *by += 1;
        self.calls += *by;
        Ok(self.calls)
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let mut client = Client { calls: 0 };
    let _ = client.fetch("x".into(), Vec::new()).await;
    let _ = client.send(1).await;
    let _ = client.add((1, 2), String::new()).await;
    let mut by = 0;
    let _ = client.send_blocking(&mut by);
}
