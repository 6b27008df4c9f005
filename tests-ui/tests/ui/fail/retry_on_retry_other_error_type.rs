//! An `on_retry` observer typed for another error type than the function's: a compile error on
//! the observer (at run time, a policy's observer for another type would silently not fire).

use resilience::retry::RetryEvent;
use resilience::retry;

#[derive(Debug)]
pub struct FetchError;

impl resilience::Retryable for FetchError {
    fn is_retryable(&self) -> bool {
        true
    }
}

fn log_io(ev: &RetryEvent<'_, std::io::Error>) {
    let _ = ev.attempt;
}

#[retry(max_attempts = 3, on_retry = log_io)]
pub async fn fetch() -> Result<(), FetchError> {
    Err(FetchError)
}

fn main() {}
