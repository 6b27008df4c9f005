use resilience::rate_limit;

#[rate_limit(burst = 20)]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
