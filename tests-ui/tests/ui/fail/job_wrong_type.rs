use resilience::job;

// A bare name where a string goes, a string where a number goes.
#[job(queue = emails, timeout_ms = "30s")]
async fn welcome(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

fn main() {}
