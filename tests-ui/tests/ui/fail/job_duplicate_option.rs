use resilience::job;

#[job(queue = "emails", priority = "high", queue = "mail")]
async fn welcome(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

fn main() {}
