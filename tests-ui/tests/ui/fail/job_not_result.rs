use resilience::job;

#[job(queue = "emails")]
async fn welcome(user: u64) -> Option<u64> {
    Some(user)
}

#[job(queue = "emails")]
async fn digest(day: String) {
    let _ = day;
}

fn main() {}
