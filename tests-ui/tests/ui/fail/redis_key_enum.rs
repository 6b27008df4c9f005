use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespace = "sword")]
enum GoalKey {
    A,
}

fn main() {}
