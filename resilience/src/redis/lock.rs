//! Distributed locks with fencing tokens.
//!
//! Acquire is one Lua script: if the lock is free, take the next fencing token from a counter
//! that never expires and store `owner, token` with a TTL; if it is already ours, return the same
//! token and refresh the TTL (so retrying an acquire whose reply was lost is safe). Release and
//! extend act only when the caller is still the owner. TTLs run from 1 ms to
//! [`MAX_TTL`](super::MAX_TTL) (100 years), checked before the call and again in the script
//! before its first write: a refused acquire writes nothing and leaves the counter alone.
//!
//! Keys: the lock on `key` (any [`RedisKey`]; [`Keys::lock`](super::Keys::lock) for a lock by
//! name) lives at `<prefix>:{<namespace>:...}` and its counter at `<prefix>:{<namespace>:...}:fence`:
//! the prefix first (ACL key patterns, `SCAN`), one Cluster slot for any name, and never the same
//! key as a value stored under `key` itself.
//!
//! Fencing tokens are `max(last token + 1, the server's TIME in µs)`, so they keep growing when
//! the counter is lost — a restart of a server without persistence, a failover to a replica that
//! missed the last writes. The residual assumption: the server's clock (each server's, after a
//! failover) is not stepped back by more than the time between the loss and the next acquire.
//! Keep the servers on NTP (which slews rather than steps small corrections).
//!
//! Limits: a lock on a single Redis primary is lost if the primary fails over before the write
//! reached a replica (replication is asynchronous), and a paused process can outlive its TTL.
//! Pass the [`fencing_token`](LockGuard::fencing_token) to the protected resource and have it
//! reject tokens lower than the highest it has seen — that, not the lock, is what makes writes
//! safe.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::client::{Op, RedisClient};
use super::error::RedisError;
use super::keys::{RedisKey, colocated_keys};
use super::scripts::{SCRIPT_REFUSED_TTL, SCRIPTS, ttl_millis};

/// A lock owner id: 128 random bits, printed as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LockOwner(u128);

impl LockOwner {
    /// A fresh random owner id.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// An owner id from known bits (e.g. to re-acquire after a lost reply).
    pub fn from_u128(bits: u128) -> Self {
        Self(bits)
    }

    /// The bits.
    pub fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for LockOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for LockOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockOwner({self})")
    }
}

/// A held lock. Call [`release`](Self::release) when done; dropping it unreleased logs a warning
/// and leaves the lock to expire with its TTL.
#[must_use = "a lock guard should be released; dropping it keeps the lock until its TTL expires"]
pub struct LockGuard {
    client: RedisClient,
    key: String,
    owner: LockOwner,
    token: u64,
    released: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .field("owner", &self.owner)
            .field("token", &self.token)
            .finish()
    }
}

impl LockGuard {
    /// The fencing token: strictly greater than every token handed out before for this lock.
    ///
    /// It is `max(last token + 1, the server's TIME in µs)`, so it keeps growing even when the
    /// counter is lost (a restart of a server without persistence, a failover to a replica that
    /// missed the last writes). What remains assumed: the server's clock — the new primary's,
    /// after a failover — is not stepped back by more than the time between the loss and the
    /// next acquire (keep servers on NTP, which slews small corrections rather than stepping).
    pub fn fencing_token(&self) -> u64 {
        self.token
    }

    /// This holder's owner id.
    pub fn owner(&self) -> LockOwner {
        self.owner
    }

    /// The lock's full Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Sets the TTL to `ttl` from now. [`RedisError::LockLost`] if the lock expired or is held
    /// by someone else; [`RedisError::InvalidArgument`] for a `ttl` outside 1 ms to
    /// [`MAX_TTL`](super::MAX_TTL) (the lock is left as it was).
    pub async fn extend(&self, ttl: Duration) -> Result<(), RedisError> {
        let ttl_ms = ttl_millis(ttl)?;
        let s = &SCRIPTS.lock_extend;
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(&s.sha)
            .arg(1)
            .arg(&self.key)
            .arg(self.owner.to_string())
            .arg(ttl_ms);
        let ok: i64 = self.client.exec(Op::LockExtend, &cmd, Some(s)).await?;
        match ok {
            1 => Ok(()),
            0 => Err(RedisError::LockLost),
            -1 => Err(SCRIPT_REFUSED_TTL),
            _ => Err(RedisError::UnexpectedReply {
                operation: "lock_extend",
                detail: "the script returned an impossible result",
            }),
        }
    }

    /// Releases the lock. [`RedisError::LockLost`] if it was no longer ours (it expired, maybe
    /// was taken by someone else, while we held the guard).
    pub async fn release(mut self) -> Result<(), RedisError> {
        // Whatever happens now, the drop warning would be noise.
        self.released = true;
        let ok = release(&self.client, &self.key, self.owner).await?;
        if ok {
            Ok(())
        } else {
            Err(RedisError::LockLost)
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            tracing::warn!(
                key = %self.key,
                fencing_token = self.token,
                "lock guard dropped without release(); the lock stays held until its TTL expires"
            );
        }
    }
}

async fn release(client: &RedisClient, key: &str, owner: LockOwner) -> Result<bool, RedisError> {
    let s = &SCRIPTS.lock_release;
    let mut cmd = ::redis::cmd("EVALSHA");
    cmd.arg(&s.sha).arg(1).arg(key).arg(owner.to_string());
    let ok: i64 = client.exec(Op::LockRelease, &cmd, Some(s)).await?;
    Ok(ok == 1)
}

impl RedisClient {
    /// Takes the lock on `key` for `ttl` with a fresh random owner id.
    /// [`RedisError::LockBusy`] (with the holder's remaining TTL) when someone else has it;
    /// [`RedisError::InvalidArgument`] for a `ttl` outside 1 ms to [`MAX_TTL`](super::MAX_TTL)
    /// (nothing is written).
    ///
    /// The lock lives at `<prefix>:{<namespace>:...}` and its fencing counter at
    /// `<prefix>:{<namespace>:...}:fence`: the prefix first, both in one Cluster slot for every
    /// name, and never the key `key` itself (a value stored there is left alone).
    pub async fn acquire_lock<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        ttl: Duration,
    ) -> Result<LockGuard, RedisError> {
        self.acquire_lock_as(key, ttl, LockOwner::random()).await
    }

    /// Takes the lock as `owner`. Idempotent: if `owner` already holds it, the same fencing
    /// token comes back and the TTL is refreshed — so an acquire whose reply was lost can simply
    /// be retried with the same owner.
    pub async fn acquire_lock_as<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        ttl: Duration,
        owner: LockOwner,
    ) -> Result<LockGuard, RedisError> {
        let ttl_ms = ttl_millis(ttl)?;
        let [lock, fence] = colocated_keys(self.key_prefix(), key, ["", ":fence"])?;
        let s = &SCRIPTS.lock_acquire;
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(&s.sha)
            .arg(2)
            .arg(&lock)
            .arg(&fence)
            .arg(owner.to_string())
            .arg(ttl_ms);
        let (acquired, value): (i64, i64) = self.exec(Op::LockAcquire, &cmd, Some(s)).await?;
        if acquired == 1 && value > 0 {
            Ok(LockGuard {
                client: self.clone(),
                key: lock,
                owner,
                token: value as u64,
                released: false,
            })
        } else if acquired == 0 {
            Err(RedisError::LockBusy {
                retry_after: Duration::from_millis(value.max(0) as u64),
            })
        } else if acquired == -1 {
            Err(SCRIPT_REFUSED_TTL)
        } else if acquired == -2 {
            Err(RedisError::UnexpectedReply {
                operation: "lock_acquire",
                detail: "the fencing counter holds a value that is not a token",
            })
        } else {
            Err(RedisError::UnexpectedReply {
                operation: "lock_acquire",
                detail: "the script returned an impossible result",
            })
        }
    }

    /// Runs `f` holding the lock on `key` (TTL `ttl`), then releases it. `f` gets the fencing
    /// token. If the lock turned out to be lost by the time `f` finished (it ran longer than
    /// the TTL), the result is [`RedisError::LockLost`]: the exclusive section was not
    /// exclusive. A failure to reach Redis for the release only logs a warning (the TTL frees
    /// the lock) and `f`'s value is returned.
    pub async fn with_lock<K, F, Fut, T>(
        &self,
        key: &K,
        ttl: Duration,
        f: F,
    ) -> Result<T, RedisError>
    where
        K: RedisKey + ?Sized,
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = T>,
    {
        let guard = self.acquire_lock(key, ttl).await?;
        let value = f(guard.fencing_token()).await;
        match guard.release().await {
            Ok(()) => Ok(value),
            Err(RedisError::LockLost) => Err(RedisError::LockLost),
            Err(e) => {
                tracing::warn!(error = %e, "releasing a lock failed; it will expire with its TTL");
                Ok(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_prints_as_hex() {
        assert_eq!(
            LockOwner::from_u128(255).to_string(),
            format!("{:0>32}", "ff")
        );
        assert_ne!(LockOwner::random(), LockOwner::random());
    }
}
