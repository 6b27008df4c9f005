use resilience::retry;

#[retry(max_attempts = 3, backoff = "expnential")]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
