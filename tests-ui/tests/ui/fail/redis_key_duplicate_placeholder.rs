use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "user:{user}:goal:{goal}:again:{user}")]
struct GoalKey {
    user: String,
    goal: u64,
}

fn main() {}
