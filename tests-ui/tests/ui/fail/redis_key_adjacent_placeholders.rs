use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "{user}{goal}")]
struct GoalKey {
    user: String,
    goal: String,
}

fn main() {}
