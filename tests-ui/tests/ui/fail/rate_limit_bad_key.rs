use resilience::rate_limit;

#[derive(Clone)]
pub struct User {
    pub id: u64,
}

#[rate_limit(per_second = 10, key = user)]
async fn fetch(user: User) -> Result<u64, resilience::RateLimited> {
    Ok(user.id)
}

fn main() {
    let _ = fetch(User { id: 1 });
}
