use resilience::retry;

#[retry(max_attempts = 3, initial_delay_ms = 100, max_attempts = 5)]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
