#![deny(warnings)]
//! `retry_if` takes a path or a closure; `attempt_timeout_ms` needs `From<TimeoutError>`.

use resilience::{TimeoutError, retry};

#[derive(Debug)]
pub enum FetchError {
    Transient,
    Fatal,
    TimedOut(TimeoutError),
}

impl From<TimeoutError> for FetchError {
    fn from(e: TimeoutError) -> Self {
        Self::TimedOut(e)
    }
}

fn is_transient(e: &FetchError) -> bool {
    matches!(e, FetchError::Transient | FetchError::TimedOut(_))
}

#[retry(max_attempts = 3, initial_delay_ms = 10, retry_if = is_transient)]
pub async fn with_path(fail: bool) -> Result<(), FetchError> {
    if fail { Err(FetchError::Fatal) } else { Ok(()) }
}

#[retry(retry_if = |e| matches!(e, FetchError::Transient), attempt_timeout_ms = 100)]
pub async fn with_closure() -> Result<(), FetchError> {
    Err(FetchError::Transient)
}

#[retry(max_attempts = 2, initial_delay_ms = 1, max_delay_ms = 5, retry_if = is_transient)]
pub fn blocking_with_path() -> Result<(), FetchError> {
    Ok(())
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let _ = with_path(false).await;
    let _ = with_closure().await;
    let _ = blocking_with_path();
    let _ = classified().await;
    let _ = journaled(Journal(Default::default()), true).await;
}

/// The runtime's classifier works as a predicate for error types implementing `Retryable`.
#[retry(preset = "quick", retry_if = resilience::Retryable::is_retryable)]
pub async fn classified() -> Result<(), std::io::Error> {
    Ok(())
}

/// Not `Clone`: fine as an argument the body does not use (only `on_retry` does), since only
/// the arguments the body mentions are cloned per attempt.
pub struct Journal(std::sync::Mutex<Vec<u32>>);

#[retry(
    max_attempts = 3,
    initial_delay_ms = 1,
    max_delay_ms = 1,
    retry_if = is_transient,
    on_retry = |ev| journal.0.lock().unwrap().push(ev.attempt)
)]
pub async fn journaled(journal: Journal, fail: bool) -> Result<(), FetchError> {
    if fail { Err(FetchError::Transient) } else { Ok(()) }
}
