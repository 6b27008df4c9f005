#![deny(warnings)]
//! `#[retry(service = "...")]` with every service, alone or with hooks and timeouts.

use resilience::{TimeoutError, retry};

#[derive(Debug)]
pub enum DbError {
    Transient,
    TimedOut(TimeoutError),
}

impl From<TimeoutError> for DbError {
    fn from(e: TimeoutError) -> Self {
        Self::TimedOut(e)
    }
}

fn is_transient(e: &DbError) -> bool {
    matches!(e, DbError::Transient | DbError::TimedOut(_))
}

#[retry(service = "database", retry_if = is_transient, attempt_timeout_ms = 2_000)]
pub async fn query(id: u64) -> Result<u64, DbError> {
    Ok(id)
}

#[retry(service = "network")]
pub async fn fetch() -> Result<(), std::io::Error> {
    Ok(())
}

#[retry(service = "kafka")]
pub fn publish() -> Result<(), std::io::Error> {
    Ok(())
}

#[retry(service = "vault")]
pub async fn read_secret(path: String) -> Result<String, std::io::Error> {
    Ok(path)
}

fn main() {}
