use resilience::job;

// `background` is a shutdown priority, not a job priority.
#[job(queue = "emails", priority = "hihg")]
async fn welcome(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

#[job(queue = "emails", priority = "background")]
async fn digest(day: String) -> Result<(), std::io::Error> {
    let _ = day;
    Ok(())
}

fn main() {}
