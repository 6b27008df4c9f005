use resilience::RedisKey;

pub struct GoalId(u64);

#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "goal:{goal_id}")]
struct GoalKey {
    goal_id: GoalId,
}

fn main() {}
