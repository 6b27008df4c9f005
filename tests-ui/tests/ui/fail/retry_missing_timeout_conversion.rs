use resilience::retry;

#[derive(Debug)]
pub struct MyError;

#[retry(attempt_timeout_ms = 100, retry_if = |_| true)]
async fn fetch() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
