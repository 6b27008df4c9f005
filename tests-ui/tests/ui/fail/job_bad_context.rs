use resilience::job;

#[job(queue = "emails")]
async fn welcome(user: u64, attempt: u32) -> Result<u64, std::io::Error> {
    Ok(user + u64::from(attempt))
}

fn main() {}
