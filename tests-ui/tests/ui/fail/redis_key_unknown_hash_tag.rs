use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "user:{user}:goal:{goal}", hash_tag = "usr")]
struct GoalKey {
    user: String,
    goal: String,
}

fn main() {}
