use resilience::rate_limit;

#[rate_limit(per_second = 10, backend = "redis", client = "redis://127.0.0.1")]
async fn fetch() -> Result<u32, anyhow::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
