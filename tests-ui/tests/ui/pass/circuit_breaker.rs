#![deny(warnings)]
//! `#[circuit_breaker]` on async and sync fns and methods, generics, `impl Trait` returns,
//! `anyhow` and boxed errors, and stacked over `#[retry]`.

use std::fmt::Display;

use resilience::{CircuitOpenError, circuit_breaker, retry};

#[derive(Debug)]
pub enum ApiError {
    Open(CircuitOpenError),
    Http(u16),
}

impl From<CircuitOpenError> for ApiError {
    fn from(e: CircuitOpenError) -> Self {
        Self::Open(e)
    }
}

/// Server errors are worth retrying; client errors and the breaker's refusal are not.
impl resilience::retry::Retryable for ApiError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Http(500..))
    }
}

#[circuit_breaker("openai")]
#[retry(preset = "patient")]
pub async fn complete(prompt: &str) -> Result<String, ApiError> {
    if prompt.is_empty() {
        return Err(ApiError::Http(400));
    }
    Ok(prompt.to_uppercase())
}

#[circuit_breaker(name = "payments", preset = "critical")]
pub fn charge_blocking(cents: u64) -> Result<u64, ApiError> {
    Ok(cents)
}

#[circuit_breaker]
pub async fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}

#[circuit_breaker(preset = "tolerant")]
pub async fn with_anyhow() -> anyhow::Result<u8> {
    let n: u8 = "7".parse()?;
    Ok(n)
}

#[circuit_breaker("generic")]
pub async fn describe<T>(value: T) -> Result<impl Display, ApiError>
where
    T: Display + Send,
{
    Ok(format!("<{value}>"))
}

pub struct Client {
    hits: u32,
}

impl Client {
    /// Docs are kept.
    #[circuit_breaker("client")]
    pub async fn get(&self, path: &str) -> Result<String, ApiError> {
        Ok(format!("{path}:{}", self.hits))
    }

    #[circuit_breaker("client")]
    #[retry(max_attempts = 2, initial_delay_ms = 1, max_delay_ms = 1)]
    pub async fn hit(&mut self) -> Result<u32, ApiError> {
        self.hits += 1;
        Ok(self.hits)
    }

    #[circuit_breaker(name = "client-sync", preset = "aggressive")]
    pub fn hit_blocking(&mut self) -> Result<u32, ApiError> {
        self.hits += 1;
        Ok(self.hits)
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let _ = complete("hi").await;
    let _ = charge_blocking(1);
    let _ = boxed().await;
    let _ = with_anyhow().await;
    if let Ok(d) = describe(1).await {
        println!("{d}");
    }
    let mut client = Client { hits: 0 };
    let _ = client.get("/").await;
    let _ = client.hit().await;
    let _ = client.hit_blocking();
}
