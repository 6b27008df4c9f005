use resilience::circuit_breaker;

#[circuit_breaker("payments", shared = true)]
fn charge() -> Result<u32, anyhow::Error> {
    Ok(1)
}

fn main() {
    let _ = charge();
}
