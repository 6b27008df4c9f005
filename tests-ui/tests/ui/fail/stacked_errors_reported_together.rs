use resilience::{circuit_breaker, retry};

#[circuit_breaker(name = "payments", preset = "moderat")]
#[retry(preset = "quik")]
async fn charge() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = charge();
}
