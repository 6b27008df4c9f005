use resilience::rate_limit;

#[rate_limit(preset = "apii")]
async fn fetch() -> Result<u32, resilience::RateLimited> {
    Ok(1)
}

#[rate_limit(preset = "network")]
async fn send() -> Result<u32, resilience::RateLimited> {
    Ok(1)
}

fn main() {
    let _ = fetch();
    let _ = send();
}
