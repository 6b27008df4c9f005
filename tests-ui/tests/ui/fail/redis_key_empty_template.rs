use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "")]
struct GoalKey {
    goal_id: String,
}

fn main() {}
