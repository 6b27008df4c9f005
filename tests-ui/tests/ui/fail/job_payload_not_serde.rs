use resilience::job;

struct Welcome {
    user: u64,
}

#[job(queue = "emails")]
async fn welcome(payload: Welcome) -> Result<u64, std::io::Error> {
    Ok(payload.user)
}

fn main() {}
