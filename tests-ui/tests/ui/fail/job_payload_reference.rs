use resilience::job;

#[job(queue = "emails")]
async fn welcome(user: &str) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

fn main() {}
