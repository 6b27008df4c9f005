use resilience::rate_limit;

#[rate_limit(per_second = 10, backend = "rediss")]
async fn fetch() -> Result<u32, anyhow::Error> {
    Ok(1)
}

#[rate_limit(per_second = 10, backend = "redis", on_redis_error = "fail-open")]
async fn store() -> Result<u32, anyhow::Error> {
    Ok(1)
}

#[rate_limit(per_second = 10, backend = "redis", on_redis_error = "closd")]
async fn load() -> Result<u32, anyhow::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
    let _ = store();
    let _ = load();
}
