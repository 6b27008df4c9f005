use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "goal:{goal_id}")]
struct GoalKey(String);

fn main() {}
