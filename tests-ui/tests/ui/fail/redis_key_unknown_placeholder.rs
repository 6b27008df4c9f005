use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "goal:{goal_idd}")]
struct GoalKey {
    goal_id: String,
}

fn main() {}
