//! A `retry_if` predicate typed for another error type than the function's: a compile error on
//! the predicate (at run time, a policy's predicate for another type would silently not fire).

use resilience::retry;

#[derive(Debug)]
pub struct FetchError;

fn is_transient_io(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
}

#[retry(max_attempts = 3, retry_if = is_transient_io)]
pub async fn fetch() -> Result<(), FetchError> {
    Err(FetchError)
}

#[retry(max_attempts = 3, retry_if = |e: &std::io::Error| e.kind() == std::io::ErrorKind::TimedOut)]
pub async fn fetch_closure() -> Result<(), FetchError> {
    Err(FetchError)
}

fn main() {}
