use resilience::job;

#[job(queue = "emails", timeout_ms = 0)]
async fn welcome(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

fn main() {}
