use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "goal:{a}")]
union GoalKey {
    a: u32,
    b: f32,
}

fn main() {}
