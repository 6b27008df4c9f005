//! [`LockRequest`]: a lock to take, with a bounded wait, an owner and a watchdog.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::client::RedisClient;
use super::super::error::RedisError;
use super::super::keys::{RedisKey, colocated_keys};
use super::super::scripts::ttl_millis;
use super::{LockGuard, LockOwner, acquire_once, release, watchdog};

/// The TTL of a [`LockRequest`] that sets none (Redisson's watchdog default).
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(30);

/// The first retry delay of a bounded wait; it doubles per try up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// A retry delay below this would hammer the server.
const BACKOFF_FLOOR: Duration = Duration::from_millis(1);

/// A lock to take; from [`RedisClient::lock`]. Defaults: TTL [`DEFAULT_LOCK_TTL`] (30 s), one
/// try (no wait), a fresh random owner, no watchdog.
#[must_use = "a lock request does nothing until `.acquire().await` or `.run(f).await`"]
#[derive(Debug)]
pub struct LockRequest<'a, K: ?Sized> {
    client: &'a RedisClient,
    key: &'a K,
    ttl: Duration,
    wait: Duration,
    owner: Option<LockOwner>,
    watchdog: bool,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl<'a, K: RedisKey + ?Sized> LockRequest<'a, K> {
    pub(super) fn new(client: &'a RedisClient, key: &'a K) -> Self {
        Self {
            client,
            key,
            ttl: DEFAULT_LOCK_TTL,
            wait: Duration::ZERO,
            owner: None,
            watchdog: false,
            min_backoff: MIN_BACKOFF,
            max_backoff: MAX_BACKOFF,
        }
    }

    /// The lock's time to live, 1 ms to [`MAX_TTL`](crate::redis::MAX_TTL) (checked when
    /// acquiring: [`RedisError::InvalidArgument`], nothing written). With a watchdog, the TTL
    /// each extend sets: how long the lock outlives a crashed holder.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Waits up to `max_wait` for a lock someone else holds: tries again after a backoff (10 ms
    /// doubling to 500 ms, jittered to 50–100 %), at the latest when the holder's TTL runs out
    /// (the `retry_after` of [`RedisError::LockBusy`]), and once more at the bound; then gives
    /// up with the last [`RedisError::LockBusy`]. Transient failures (timeouts, a lost
    /// connection, an open breaker) are retried the same way — with the same owner id, so an
    /// attempt whose reply was lost is harmless — and the last one is returned at the bound.
    /// `Duration::ZERO` (the default): one try. `Duration::MAX`: wait without bound.
    pub fn wait(mut self, max_wait: Duration) -> Self {
        self.wait = max_wait;
        self
    }

    /// The retry delays of [`wait`](Self::wait): the first (at least 1 ms) and the cap.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.min_backoff = first.max(BACKOFF_FLOOR);
        self.max_backoff = max.max(self.min_backoff);
        self
    }

    /// Acquire as `owner` instead of a fresh random id. Idempotent: if `owner` already holds
    /// the lock, the same fencing token comes back and the TTL is refreshed.
    pub fn owner(mut self, owner: LockOwner) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Keeps the lock alive while its guard lives (Redisson's watchdog): a task extends it to
    /// the TTL every TTL/3 and stops on [`release`](LockGuard::release) or drop. When an extend
    /// finds the lock gone or taken, or no extend succeeded for a whole TTL (Redis unreachable:
    /// the lock may have expired meanwhile), the guard's [`lost`](LockGuard::lost) fires and
    /// the task ends. A holder that crashes stops extending: the lock frees one TTL later.
    pub fn watchdog(mut self) -> Self {
        self.watchdog = true;
        self
    }

    /// Takes the lock (waiting as configured).
    ///
    /// Cancel-safe: dropping the future while an attempt is in flight (or giving up after an
    /// attempt whose reply was lost) releases, in the background, whatever that attempt may
    /// have taken — unless an explicit [`owner`](Self::owner) was given (that owner may hold the
    /// lock from before; release it with [`RedisClient::release_lock`] if needed).
    pub async fn acquire(self) -> Result<LockGuard, RedisError> {
        let ttl_ms = ttl_millis(self.ttl)?;
        let client = self.client;
        let [lock, fence] = colocated_keys(client.key_prefix(), self.key, ["", ":fence"])?;
        let owner = self.owner.unwrap_or_else(LockOwner::random);
        let deadline = Instant::now().checked_add(self.wait);
        let mut delay = self.min_backoff;
        let mut undo = ReleaseOnDrop {
            client,
            lock: &lock,
            owner,
            armed: false,
        };
        let fresh_owner = self.owner.is_none();
        let (token, sent) = loop {
            let sent = Instant::now();
            undo.armed = fresh_owner;
            let last = match acquire_once(client, &lock, &fence, ttl_ms, owner).await {
                Ok(token) => {
                    undo.disarm();
                    break (token, sent);
                }
                Err(e @ RedisError::LockBusy { .. }) => {
                    // Held by someone else: this attempt took nothing.
                    undo.disarm();
                    e
                }
                // May have been applied with its reply lost: stays armed.
                Err(e) if e.is_transient() => e,
                Err(e) => {
                    undo.disarm();
                    return Err(e);
                }
            };
            let now = Instant::now();
            let left = match deadline {
                Some(d) => d.saturating_duration_since(now),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return Err(last);
            }
            let mut pause = jitter(delay);
            if let RedisError::LockBusy { retry_after } = last
                && !retry_after.is_zero()
            {
                // Free by then unless the holder extends it: no use sleeping longer.
                pause = pause.min(retry_after.saturating_add(BACKOFF_FLOOR));
            }
            tokio::time::sleep(pause.min(left)).await;
            delay = delay.saturating_mul(2).min(self.max_backoff);
        };
        drop(undo);
        Ok(self.guard(lock, owner, token, sent))
    }

    /// Takes the lock, runs `f` with the guard, and releases it. [`RedisError::LockLost`] if
    /// the lock was lost before the release (the section was not exclusive; with a watchdog,
    /// also when [`lost`](LockGuard::lost) fired and the release could not confirm we still
    /// held it). A failure to reach Redis for the release otherwise only logs a warning (the
    /// TTL frees the lock) and `f`'s value is returned. `f` is not cancelled on loss: select
    /// on [`guard.lost()`](LockGuard::lost) inside it if it must stop.
    pub async fn run<F, T>(self, f: F) -> Result<T, RedisError>
    where
        F: AsyncFnOnce(&LockGuard) -> T,
    {
        let guard = self.acquire().await?;
        let value = f(&guard).await;
        let lost = guard.is_lost();
        match guard.release().await {
            // Still ours at the release: nobody else held it in between.
            Ok(()) => Ok(value),
            Err(RedisError::LockLost) => Err(RedisError::LockLost),
            Err(_) if lost => Err(RedisError::LockLost),
            Err(e) => {
                tracing::warn!(error = %e, "releasing a lock failed; it will expire with its TTL");
                Ok(value)
            }
        }
    }

    fn guard(&self, key: String, owner: LockOwner, token: u64, sent: Instant) -> LockGuard {
        let loss = CancellationToken::new();
        let watchdog = self.watchdog.then(|| {
            watchdog::spawn(watchdog::Watch {
                client: self.client.clone(),
                key: key.clone(),
                owner,
                ttl: self.ttl,
                // The server set the TTL after we sent the acquire: valid at least until then.
                valid_until: sent.checked_add(self.ttl),
                lost: loss.clone(),
            })
        });
        LockGuard {
            client: self.client.clone(),
            key,
            owner,
            token,
            released: false,
            lost: loss.child_token(),
            loss,
            watchdog,
        }
    }
}

/// 50–100 % of `d`: spreads waiters that collided so they do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Releases, in the background, a lock an attempt may have taken for a fresh owner id that
/// nobody else knows, if the acquire is dropped or gives up before it knows the outcome.
/// Borrows until it must act, so the usual path allocates nothing.
struct ReleaseOnDrop<'a> {
    client: &'a RedisClient,
    lock: &'a str,
    owner: LockOwner,
    armed: bool,
}

impl ReleaseOnDrop<'_> {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (client, lock, owner) = (self.client.clone(), self.lock.to_owned(), self.owner);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Ok(true) = release(&client, &lock, owner).await {
                    tracing::debug!(key = %lock, "released a lock taken by an abandoned acquire");
                }
            });
        }
    }
}
