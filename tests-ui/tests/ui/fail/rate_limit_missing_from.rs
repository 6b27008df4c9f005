use resilience::rate_limit;

#[derive(Debug)]
pub struct MyError;

#[rate_limit(per_second = 10)]
async fn fetch() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
