use resilience::rate_limit;

// The preset doubles the rate for the burst: 3 000 000 000 × 2 does not fit in a u32.
#[rate_limit(preset = "api", per_minute = 3000000000)]
async fn fetch() -> Result<u32, resilience::RateLimited> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
