use resilience::job;

#[job(name = "welcome", priority = "high")]
async fn welcome(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

fn main() {}
