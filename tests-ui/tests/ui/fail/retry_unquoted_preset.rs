use resilience::{circuit_breaker, retry, shutdown_hook};

#[retry(preset = patient)]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

#[retry(backoff = linear, max_attempts = 3)]
async fn fetch_linear() -> Result<u32, std::io::Error> {
    Ok(1)
}

#[circuit_breaker(name = payments, preset = agressive)]
async fn charge() -> Result<u32, std::io::Error> {
    Ok(1)
}

#[shutdown_hook(priority = high)]
async fn close() {}

fn main() {
    let _ = fetch();
    let _ = fetch_linear();
    let _ = charge();
    let _ = close();
}
