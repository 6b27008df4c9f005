use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespace = "sword:v2", template = "goal:{goal_id}")]
struct GoalKey {
    goal_id: String,
}

fn main() {}
