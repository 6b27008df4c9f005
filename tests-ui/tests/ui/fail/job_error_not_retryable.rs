use resilience::job;

#[job(queue = "emails")]
async fn welcome(user: u64) -> Result<u64, String> {
    Ok(user)
}

fn main() {}
