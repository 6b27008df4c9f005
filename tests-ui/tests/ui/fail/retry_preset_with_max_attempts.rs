use resilience::retry;

#[retry(preset = "patient", max_attempts = 7)]
async fn fetch() -> Result<u32, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
