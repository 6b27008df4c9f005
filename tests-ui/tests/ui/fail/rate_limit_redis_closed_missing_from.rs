use resilience::{RateLimited, rate_limit};

#[derive(Debug)]
pub struct MyError;

impl From<RateLimited> for MyError {
    fn from(_: RateLimited) -> Self {
        Self
    }
}

// "open" and "local" always decide; "closed" can fail, and that needs a home in `MyError`.
#[rate_limit(per_second = 10, backend = "redis", on_redis_error = "local")]
async fn fetch() -> Result<u32, MyError> {
    Ok(1)
}

#[rate_limit(per_second = 10, backend = "redis", on_redis_error = "closed")]
async fn store() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {
    let _ = fetch();
    let _ = store();
}
