use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespase = "sword", template = "goal:{goal_id}")]
struct GoalKey {
    goal_id: String,
}

fn main() {}
