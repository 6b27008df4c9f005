use resilience::retry;

#[retry(service = "database", preset = "quick")]
async fn query() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = query();
}
