//! Distributed locks with fencing tokens; a bounded wait ([`LockRequest::wait`]) and a
//! watchdog that keeps a lock alive while its guard lives ([`LockRequest::watchdog`]).
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
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::client::RedisClient;
use super::error::{RedisError, ServerReply};
use super::keys::{RedisKey, colocated_keys};
use super::ops::Op;
use super::scripts::{SCRIPT_REFUSED_TTL, SCRIPTS, ttl_millis};

mod request;
mod watchdog;

pub use request::{DEFAULT_LOCK_TTL, LockRequest};

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
/// and leaves the lock to expire with its TTL (a watchdog, if any, stops extending it).
///
/// [`lost`](Self::lost) fires when the lock is known or presumed lost: an
/// [`extend`](Self::extend) or the watchdog found another owner (or no lock), or the watchdog
/// could not reach Redis for a whole TTL since its last successful extend.
#[must_use = "a lock guard should be released; dropping it keeps the lock until its TTL expires"]
pub struct LockGuard {
    client: RedisClient,
    key: String,
    owner: LockOwner,
    token: u64,
    released: bool,
    /// Cancelled when the lock is lost.
    loss: CancellationToken,
    /// What [`lost`](Self::lost) hands out: a child of `loss`, so a holder cancelling it does
    /// not mark the lock lost.
    lost: CancellationToken,
    /// Stops the watchdog task (cancelled on release and on drop).
    watchdog: Option<CancellationToken>,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .field("owner", &self.owner)
            .field("token", &self.token)
            .field("watchdog", &self.watchdog.is_some())
            .field("lost", &self.loss.is_cancelled())
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

    /// This holder's owner id (what [`RedisClient::release_lock`] takes).
    pub fn owner(&self) -> LockOwner {
        self.owner
    }

    /// The lock's full Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether a watchdog keeps this lock alive.
    pub fn has_watchdog(&self) -> bool {
        self.watchdog.is_some()
    }

    /// A token cancelled when the lock is lost: an extend (yours or the watchdog's) found it
    /// gone or held by another owner, or the watchdog could not extend it for a whole TTL (the
    /// lock may have expired while Redis was unreachable). Select on `lost().cancelled()` to
    /// stop work that must not outlive the lock; `lost().clone()` to hand it to another task.
    /// Cancelling it yourself does not mark the lock lost.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Whether [`lost`](Self::lost) has fired.
    pub fn is_lost(&self) -> bool {
        self.loss.is_cancelled()
    }

    /// Sets the TTL to `ttl` from now. [`RedisError::LockLost`] if the lock expired or is held
    /// by someone else (and [`lost`](Self::lost) fires); [`RedisError::InvalidArgument`] for a
    /// `ttl` outside 1 ms to [`MAX_TTL`](super::MAX_TTL) (the lock is left as it was).
    pub async fn extend(&self, ttl: Duration) -> Result<(), RedisError> {
        let ttl_ms = ttl_millis(ttl)?;
        let r = extend(&self.client, &self.key, self.owner, ttl_ms).await;
        if matches!(r, Err(RedisError::LockLost)) {
            self.loss.cancel();
        }
        r
    }

    /// Releases the lock (stopping its watchdog first). [`RedisError::LockLost`] if it was no
    /// longer ours (it expired, maybe was taken by someone else, while we held the guard).
    pub async fn release(mut self) -> Result<(), RedisError> {
        // Whatever happens now, the drop warning would be noise.
        self.released = true;
        self.stop_watchdog();
        let ok = release(&self.client, &self.key, self.owner).await?;
        if ok {
            Ok(())
        } else {
            self.loss.cancel();
            Err(RedisError::LockLost)
        }
    }

    /// Gives up the guard without releasing the lock, and returns its owner id: the lock stays
    /// held until its TTL runs out or someone calls [`RedisClient::release_lock`] with that id
    /// (e.g. another process the id was handed to). A watchdog stops; no drop warning.
    pub fn detach(mut self) -> LockOwner {
        self.released = true;
        self.stop_watchdog();
        self.owner
    }

    fn stop_watchdog(&mut self) {
        if let Some(stop) = self.watchdog.take() {
            stop.cancel();
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop_watchdog();
        if !self.released {
            tracing::warn!(
                key = %self.key,
                fencing_token = self.token,
                "lock guard dropped without release(); the lock stays held until its TTL expires"
            );
        }
    }
}

/// The extend script: `Ok` if `owner` held the lock (its TTL is now `ttl_ms`),
/// [`RedisError::LockLost`] if not.
async fn extend(
    client: &RedisClient,
    key: &str,
    owner: LockOwner,
    ttl_ms: u64,
) -> Result<(), RedisError> {
    let s = &SCRIPTS.lock_extend;
    let mut cmd = ::redis::cmd("EVALSHA");
    cmd.arg(&s.sha)
        .arg(1)
        .arg(key)
        .arg(owner.to_string())
        .arg(ttl_ms);
    let ok: i64 = match client.exec(Op::LockExtend, &cmd, Some(s)).await {
        Err(e) if is_wrong_type(&e) => return Err(RedisError::LockLost),
        r => r?,
    };
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

/// The release script: whether `owner` held the lock (it is gone now).
async fn release(client: &RedisClient, key: &str, owner: LockOwner) -> Result<bool, RedisError> {
    let s = &SCRIPTS.lock_release;
    let mut cmd = ::redis::cmd("EVALSHA");
    cmd.arg(&s.sha).arg(1).arg(key).arg(owner.to_string());
    match client.exec::<i64>(Op::LockRelease, &cmd, Some(s)).await {
        Ok(ok) => Ok(ok == 1),
        Err(e) if is_wrong_type(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Something other than a lock was written under the lock's key: it is not ours any more.
fn is_wrong_type(e: &RedisError) -> bool {
    matches!(
        e,
        RedisError::Server {
            reply: ServerReply::WrongType,
            ..
        }
    )
}

/// One acquire: the fencing token, or why not.
async fn acquire_once(
    client: &RedisClient,
    lock: &str,
    fence: &str,
    ttl_ms: u64,
    owner: LockOwner,
) -> Result<u64, RedisError> {
    let s = &SCRIPTS.lock_acquire;
    let mut cmd = ::redis::cmd("EVALSHA");
    cmd.arg(&s.sha)
        .arg(2)
        .arg(lock)
        .arg(fence)
        .arg(owner.to_string())
        .arg(ttl_ms);
    let (acquired, value): (i64, i64) = client.exec(Op::LockAcquire, &cmd, Some(s)).await?;
    if acquired == 1 && value > 0 {
        Ok(value as u64)
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

impl RedisClient {
    /// A lock request on `key`, to configure (TTL, bounded wait, watchdog, owner) and then
    /// [`acquire`](LockRequest::acquire) or [`run`](LockRequest::run):
    ///
    /// ```no_run
    /// # async fn demo(redis: resilience::redis::RedisClient) -> Result<(), resilience::redis::RedisError> {
    /// use std::time::Duration;
    /// use resilience::redis::Keys;
    ///
    /// let guard = redis
    ///     .lock(&Keys::lock("report"))
    ///     .ttl(Duration::from_secs(10))
    ///     .wait(Duration::from_secs(3)) // retry with backoff while someone else holds it
    ///     .watchdog()                   // extend every ttl/3 while `guard` lives
    ///     .acquire()
    ///     .await?;
    /// tokio::select! {
    ///     _ = guard.lost().cancelled() => { /* stop: the lock is gone */ }
    ///     _ = async { /* ... the work, passing guard.fencing_token() ... */ } => {}
    /// }
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn lock<'a, K: RedisKey + ?Sized>(&'a self, key: &'a K) -> LockRequest<'a, K> {
        LockRequest::new(self, key)
    }

    /// Takes the lock on `key` for `ttl` with a fresh random owner id, in one try.
    /// [`RedisError::LockBusy`] (with the holder's remaining TTL) when someone else has it;
    /// [`RedisError::InvalidArgument`] for a `ttl` outside 1 ms to [`MAX_TTL`](super::MAX_TTL)
    /// (nothing is written). [`lock`](Self::lock) waits, keeps the lock alive and more.
    ///
    /// The lock lives at `<prefix>:{<namespace>:...}` and its fencing counter at
    /// `<prefix>:{<namespace>:...}:fence`: the prefix first, both in one Cluster slot for every
    /// name, and never the key `key` itself (a value stored there is left alone).
    pub async fn acquire_lock<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        ttl: Duration,
    ) -> Result<LockGuard, RedisError> {
        self.lock(key).ttl(ttl).acquire().await
    }

    /// Takes the lock as `owner`, in one try. Idempotent: if `owner` already holds it, the
    /// same fencing token comes back and the TTL is refreshed — so an acquire whose reply was
    /// lost can simply be retried with the same owner.
    pub async fn acquire_lock_as<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        ttl: Duration,
        owner: LockOwner,
    ) -> Result<LockGuard, RedisError> {
        self.lock(key).ttl(ttl).owner(owner).acquire().await
    }

    /// Releases the lock on `key` if `owner` holds it, without a guard (seed 000's
    /// `releaseLock(key, ownerId)`; e.g. from another process that was handed the owner id).
    /// Returns whether it was released: `false` when the lock is free or held by another owner
    /// (nothing is changed then).
    pub async fn release_lock<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        owner: LockOwner,
    ) -> Result<bool, RedisError> {
        let [lock] = colocated_keys(self.key_prefix(), key, [""])?;
        release(self, &lock, owner).await
    }

    /// Runs `f` holding the lock on `key` (TTL `ttl`, one try), then releases it. `f` gets the
    /// guard: its [`fencing_token`](LockGuard::fencing_token) to pass along, and
    /// [`extend`](LockGuard::extend) / [`lost`](LockGuard::lost) for long sections. If the lock
    /// turned out to be lost by the time `f` finished (it ran longer than the TTL), the result
    /// is [`RedisError::LockLost`]: the exclusive section was not exclusive. A failure to reach
    /// Redis for the release only logs a warning (the TTL frees the lock) and `f`'s value is
    /// returned. [`lock(key)...run(f)`](LockRequest::run) adds a bounded wait and a watchdog.
    pub async fn with_lock<K, F, T>(&self, key: &K, ttl: Duration, f: F) -> Result<T, RedisError>
    where
        K: RedisKey + ?Sized,
        F: AsyncFnOnce(&LockGuard) -> T,
    {
        self.lock(key).ttl(ttl).run(f).await
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
