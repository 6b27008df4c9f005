use resilience::job;

#[job(queue = "emails", priority = 2_097_152)]
async fn welcome(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

#[job(queue = "emails", priority = -1)]
async fn digest(day: String) -> Result<(), std::io::Error> {
    let _ = day;
    Ok(())
}

fn main() {}
