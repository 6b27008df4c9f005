use resilience::retry;

#[retry(initial_delay_ms = 500, max_delay_ms = 100)]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
