use resilience::retry;

#[retry(retry_if = "is_transient")]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
