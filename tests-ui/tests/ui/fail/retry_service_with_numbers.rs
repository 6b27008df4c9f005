use resilience::retry;

#[retry(service = "vault", max_attempts = 5, initial_delay_ms = 100)]
async fn read_secret() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = read_secret();
}
