use resilience::retry;

#[retry(service = "postgres")]
async fn query() -> Result<u32, std::io::Error> {
    Ok(1)
}

#[retry(service = "kafak")]
async fn publish() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = query();
    let _ = publish();
}
