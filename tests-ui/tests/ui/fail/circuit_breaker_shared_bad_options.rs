use resilience::circuit_breaker;

#[circuit_breaker("payments", shared = "yes")]
async fn charge() -> Result<u32, anyhow::Error> {
    Ok(1)
}

#[circuit_breaker("payments", client = redis())]
async fn refund() -> Result<u32, anyhow::Error> {
    Ok(1)
}

#[circuit_breaker("payments", shared = false, client = redis())]
async fn capture() -> Result<u32, anyhow::Error> {
    Ok(1)
}

#[circuit_breaker("payments", shraed = true)]
async fn void() -> Result<u32, anyhow::Error> {
    Ok(1)
}

fn redis() -> resilience::RedisClient {
    unimplemented!()
}

fn main() {
    let _ = charge();
    let _ = refund();
    let _ = capture();
    let _ = void();
}
