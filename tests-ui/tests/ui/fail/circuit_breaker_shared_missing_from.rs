use resilience::circuit_breaker;

#[derive(Debug)]
pub struct MyError;

#[circuit_breaker("payments", shared = true)]
async fn charge() -> Result<u32, MyError> {
    Ok(1)
}

fn main() {
    let _ = charge();
}
