use resilience::job;

#[job(queue = "emails", retry = "patiant")]
async fn welcome(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

fn main() {}
