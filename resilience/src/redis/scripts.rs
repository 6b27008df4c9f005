//! The Lua scripts, compiled into the binary and called with EVALSHA (loaded once when the client
//! connects, and again whenever the server answers NOSCRIPT: after a restart, failover or
//! `SCRIPT FLUSH`).

use std::sync::LazyLock;

/// One script: its source and SHA-1.
pub(crate) struct LuaScript {
    pub(crate) code: &'static str,
    pub(crate) sha: String,
}

impl LuaScript {
    fn new(code: &'static str) -> Self {
        Self {
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

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    rate_limit: LuaScript::new(include_str!("lua/rate_limit.lua")),
    lock_acquire: LuaScript::new(include_str!("lua/lock_acquire.lua")),
    lock_release: LuaScript::new(include_str!("lua/lock_release.lua")),
    lock_extend: LuaScript::new(include_str!("lua/lock_extend.lua")),
    create_if_not_exists: LuaScript::new(include_str!("lua/create_if_not_exists.lua")),
    conditional_update: LuaScript::new(include_str!("lua/conditional_update.lua")),
    breaker_acquire: LuaScript::new(include_str!("lua/breaker_acquire.lua")),
    breaker_record: LuaScript::new(include_str!("lua/breaker_record.lua")),
});

/// The SHA-1 of the rate-limit script (for `redis-benchmark ... EVALSHA <sha> ...` comparisons).
pub fn rate_limit_script_sha() -> &'static str {
    &SCRIPTS.rate_limit.sha
}

/// The source of the rate-limit script.
pub fn rate_limit_script_source() -> &'static str {
    SCRIPTS.rate_limit.code
}
