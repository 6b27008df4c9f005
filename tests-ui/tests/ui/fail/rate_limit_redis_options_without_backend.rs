use resilience::rate_limit;

#[rate_limit(per_second = 10, on_redis_error = "closed", name = "api", client = redis())]
async fn fetch() -> Result<u32, anyhow::Error> {
    Ok(1)
}

#[rate_limit(per_second = 10, backend = "memory", name = "api")]
async fn store() -> Result<u32, anyhow::Error> {
    Ok(1)
}

#[rate_limit(per_second = 10, backend = "redis", name = "")]
async fn load() -> Result<u32, anyhow::Error> {
    Ok(1)
}

fn redis() -> resilience::RedisClient {
    unimplemented!()
}

fn main() {
    let _ = fetch();
    let _ = store();
    let _ = load();
}
