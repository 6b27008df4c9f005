use resilience::rate_limit;

#[rate_limit(per_secnd = 10)]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
