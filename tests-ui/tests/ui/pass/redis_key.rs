#![deny(warnings)]
//! `#[derive(RedisKey)]`: named and tuple structs, default template, hash tags, generics.

use resilience::RedisKey;

#[derive(RedisKey)]
#[redis_key(namespace = "sword", template = "goal:{goal_id}")]
pub struct GoalKey {
    pub goal_id: String,
}

#[derive(RedisKey)]
#[redis_key(namespace = "limits", template = "user:{user}:window:{window}", hash_tag = "user")]
pub struct WindowKey {
    pub user: String,
    pub window: u64,
}

#[derive(RedisKey)]
#[redis_key(namespace = "session")]
pub struct SessionKey(pub u64);

#[derive(RedisKey)]
#[redis_key(namespace = "pair", template = "{0}:to:{1}")]
pub struct PairKey(pub String, pub u32);

#[derive(RedisKey)]
#[redis_key(namespace = "config", template = "global")]
pub struct GlobalKey;

#[derive(RedisKey)]
#[redis_key(namespace = "cache", template = "v1:{id}")]
pub struct CacheKey<T: resilience::redis::KeySegment> {
    pub id: T,
}

fn main() {
    let _ = (
        GoalKey { goal_id: String::new() },
        WindowKey { user: String::new(), window: 0 },
        SessionKey(1),
        PairKey(String::new(), 2),
        GlobalKey,
        CacheKey { id: 1u32 },
    );
    assert_eq!(<GoalKey as resilience::redis::RedisKey>::NAMESPACE, "sword");
}
