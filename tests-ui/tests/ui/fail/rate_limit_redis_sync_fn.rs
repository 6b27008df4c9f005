use resilience::{RateLimited, rate_limit};

#[derive(Debug)]
pub struct MyError;

impl From<RateLimited> for MyError {
    fn from(_: RateLimited) -> Self {
        Self
    }
}

#[rate_limit(per_second = 10, backend = "redis")]
fn fetch() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
