use resilience::RedisKey;

#[derive(RedisKey)]
struct GoalKey {
    goal_id: String,
}

fn main() {}
