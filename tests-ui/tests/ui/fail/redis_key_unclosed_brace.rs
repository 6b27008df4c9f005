use resilience::RedisKey;

// Each template gives exactly one error: no "unknown placeholder" or "unused field" after it.
#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "user:{user}:goal:{goal")]
struct AtTheEnd {
    user: String,
    goal: u64,
}

#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "user:{user:goal:{goal}")]
struct BeforeAnother {
    user: String,
    goal: u64,
}

fn main() {}
