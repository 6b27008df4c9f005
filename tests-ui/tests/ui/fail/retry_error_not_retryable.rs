//! Without `retry_if`, `#[retry]` asks the error type whether an error is worth retrying.
use resilience::retry;

#[derive(Debug)]
pub struct ApiError;

#[retry(preset = "quick")]
pub async fn fetch() -> Result<(), ApiError> {
    Err(ApiError)
}

fn main() {}
