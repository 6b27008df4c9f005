use resilience::rate_limit;

#[rate_limit(per_second = 10, burst = 0)]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
