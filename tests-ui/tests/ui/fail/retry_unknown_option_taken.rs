use resilience::retry;

// `max_attempt` is closest to `max_attempts`, which is already given: not proposed.
#[retry(max_attempts = 3, max_attempt = 5)]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

// Here another option is close enough, and not given yet.
#[retry(max_attempts = 3, max_dlay_ms = 5)]
async fn fetch_again() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
    let _ = fetch_again();
}
