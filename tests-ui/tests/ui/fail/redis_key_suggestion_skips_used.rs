use resilience::RedisKey;

// `{user_idd}` is one edit from `user_id` and from `user_ids`; `user_id` is already in the
// template, so only `user_ids` is proposed.
#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "a:{user_id}:b:{user_idd}")]
struct PairKey {
    user_id: u64,
    user_ids: String,
}

fn main() {}
