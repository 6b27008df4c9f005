use resilience::job;

// The runtime's rules: no `:` or braces in a queue name (BullMQ's separator, the Cluster hash
// tag), no empty names.
#[job(queue = "mail:out")]
async fn welcome(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

#[job(queue = "{emails}")]
async fn digest(day: String) -> Result<(), std::io::Error> {
    let _ = day;
    Ok(())
}

#[job(queue = "", name = "")]
async fn notify(user: u64) -> Result<(), std::io::Error> {
    let _ = user;
    Ok(())
}

fn main() {}
