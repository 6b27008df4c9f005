//! The Lua scripts, compiled into the binary and called with EVALSHA (loaded once when the client
//! connects, and again whenever the server answers NOSCRIPT: after a restart, failover or
//! `SCRIPT FLUSH`).
//!
//! No script half-applies: each checks its arguments (and the type of what it finds) before its
//! first write, and its writes come in an order where only the first can fail. Redis does not
//! roll a script back, so a failure after a write would leave that write behind. Arguments are
//! checked in Rust first, so the scripts' own checks only answer a caller that skipped them
//! (they return a status the client turns into a typed error, never an error after a write).

use std::sync::LazyLock;
use std::time::Duration;

use super::error::RedisError;

/// The longest time to live the client accepts (locks, `set`, `create_if_not_exists`): 100
/// years (365-day years). For longer, store without expiry. Redis itself refuses an expiry
/// whose `now + ttl` overflows; this bound keeps far from that and from the precision of Lua's
/// numbers, and the scripts check it again before their first write.
pub const MAX_TTL: Duration = Duration::from_millis(MAX_TTL_MS);

/// [`MAX_TTL`] in ms, as the scripts spell it.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

/// Whole milliseconds of a TTL in `1 ms..=MAX_TTL`; below 1 ms is an error, never silently
/// rounded to "no expiry".
pub(crate) fn ttl_millis(ttl: Duration) -> Result<u64, RedisError> {
    if ttl < Duration::from_millis(1) {
        return Err(RedisError::InvalidArgument {
            name: "ttl",
            reason: "must be at least 1 ms",
        });
    }
    if ttl > MAX_TTL {
        return Err(RedisError::InvalidArgument {
            name: "ttl",
            reason: "must be at most 100 years (resilience::redis::MAX_TTL); store without a TTL instead",
        });
    }
    // At most MAX_TTL_MS, so the cast cannot truncate.
    Ok(ttl.as_millis() as u64)
}

/// The error for a script that refused its TTL although Rust accepted it (a version skew).
pub(crate) const SCRIPT_REFUSED_TTL: RedisError = RedisError::InvalidArgument {
    name: "ttl",
    reason: "refused by the server-side script (must be whole ms, 1 ms to 100 years)",
};

/// One script: its name, source and SHA-1.
pub(crate) struct LuaScript {
    pub(crate) name: &'static str,
    pub(crate) code: &'static str,
    pub(crate) sha: String,
}

impl LuaScript {
    fn new(name: &'static str, code: &'static str) -> Self {
        Self {
            name,
            code,
            sha: ::redis::Script::new(code).get_hash().to_owned(),
        }
    }
}

/// Every script the client uses.
pub(crate) struct Scripts {
    pub(crate) rate_limit: LuaScript,
    pub(crate) lock_acquire: LuaScript,
    pub(crate) lock_release: LuaScript,
    pub(crate) lock_extend: LuaScript,
    pub(crate) create_if_not_exists: LuaScript,
    pub(crate) conditional_update: LuaScript,
    pub(crate) breaker_acquire: LuaScript,
    pub(crate) breaker_record: LuaScript,
}

impl Scripts {
    pub(crate) fn all(&self) -> [&LuaScript; 8] {
        [
            &self.rate_limit,
            &self.lock_acquire,
            &self.lock_release,
            &self.lock_extend,
            &self.create_if_not_exists,
            &self.conditional_update,
            &self.breaker_acquire,
            &self.breaker_record,
        ]
    }
}

macro_rules! script {
    ($name:literal) => {
        LuaScript::new($name, include_str!(concat!("lua/", $name, ".lua")))
    };
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    rate_limit: script!("rate_limit"),
    lock_acquire: script!("lock_acquire"),
    lock_release: script!("lock_release"),
    lock_extend: script!("lock_extend"),
    create_if_not_exists: script!("create_if_not_exists"),
    conditional_update: script!("conditional_update"),
    breaker_acquire: script!("breaker_acquire"),
    breaker_record: script!("breaker_record"),
});

/// The SHA-1 of the rate-limit script (for `redis-benchmark ... EVALSHA <sha> ...` comparisons).
pub fn rate_limit_script_sha() -> &'static str {
    &SCRIPTS.rate_limit.sha
}

/// The source of the rate-limit script.
pub fn rate_limit_script_source() -> &'static str {
    SCRIPTS.rate_limit.code
}

/// The source of the script called `name` (`rate_limit`, `lock_acquire`, `lock_release`,
/// `lock_extend`, `create_if_not_exists`, `conditional_update`, `breaker_acquire`,
/// `breaker_record`), for review or for calling it with `EVAL` directly; `None` for another name.
pub fn script_source(name: &str) -> Option<&'static str> {
    SCRIPTS
        .all()
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_bounds() {
        assert!(ttl_millis(Duration::ZERO).is_err());
        assert!(ttl_millis(Duration::from_micros(999)).is_err());
        assert_eq!(ttl_millis(Duration::from_micros(1500)).unwrap(), 1);
        assert_eq!(ttl_millis(MAX_TTL).unwrap(), MAX_TTL_MS);
        assert!(ttl_millis(MAX_TTL + Duration::from_nanos(1)).is_err());
        assert!(ttl_millis(Duration::MAX).is_err());
    }

    #[test]
    fn scripts_check_the_same_ttl_bound() {
        for s in [
            &SCRIPTS.lock_acquire,
            &SCRIPTS.lock_extend,
            &SCRIPTS.create_if_not_exists,
        ] {
            assert!(
                s.code.contains(&MAX_TTL_MS.to_string()),
                "{} does not check MAX_TTL",
                s.name
            );
        }
        assert_eq!(
            script_source("lock_acquire"),
            Some(SCRIPTS.lock_acquire.code)
        );
        assert_eq!(script_source("nope"), None);
    }
}
