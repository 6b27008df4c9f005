use resilience::job;

#[job(queue = "emails")]
fn welcome(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

fn main() {
    let _ = welcome(1);
}
