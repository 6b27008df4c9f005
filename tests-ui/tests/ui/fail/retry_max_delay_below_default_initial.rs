use resilience::retry;

#[retry(max_delay_ms = 500)]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
