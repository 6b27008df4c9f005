use resilience::job;

#[job(queue = "emails", prority = "high")]
async fn welcome(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

fn main() {}
