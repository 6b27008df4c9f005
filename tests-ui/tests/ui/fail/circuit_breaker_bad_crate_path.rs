use resilience::circuit_breaker;

#[circuit_breaker("payments", crate = "not a path")]
async fn charge() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = charge();
}
