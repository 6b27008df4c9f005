//! The lock watchdog: a task that extends a lock every TTL/3 while its guard lives, and fires
//! the guard's `lost` token when the lock is gone or may have expired.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::client::RedisClient;
use super::super::error::RedisError;
use super::super::scripts::ttl_millis;
use super::{LockOwner, extend};

/// What the watchdog keeps alive.
pub(super) struct Watch {
    pub(super) client: RedisClient,
    pub(super) key: String,
    pub(super) owner: LockOwner,
    pub(super) ttl: Duration,
    /// Until when the lock surely holds (the last successful acquire or extend was *sent* then
    /// plus the TTL); `None`: beyond the clock's range.
    pub(super) valid_until: Option<Instant>,
    pub(super) lost: CancellationToken,
}

/// Why the watchdog gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// An extend found the lock gone or held by another owner.
    Taken,
    /// No extend succeeded for a whole TTL: the lock may have expired.
    Expired,
}

/// Starts the watchdog; returns the token that stops it (cancelled by the guard on release or
/// drop). Without a runtime (impossible after an async acquire) there is no task and the token
/// stops nothing.
pub(super) fn spawn(watch: Watch) -> CancellationToken {
    let stop = CancellationToken::new();
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return stop;
    };
    let stopped = stop.clone();
    rt.spawn(async move {
        tokio::select! {
            biased;
            () = stopped.cancelled() => {}
            loss = keep_alive(&watch) => {
                // A release may have raced the last extend: that is not a loss.
                if !stopped.is_cancelled() {
                    match loss {
                        Loss::Taken => tracing::warn!(key = %watch.key, "lock lost: it expired or another owner holds it"),
                        Loss::Expired => tracing::warn!(key = %watch.key, ttl = ?watch.ttl, "lock presumed lost: not extended for a whole TTL (Redis unreachable?)"),
                    }
                    watch.lost.cancel();
                }
            }
        }
    });
    stop
}

/// Extends every TTL/3 until the lock is lost. Never returns while the lock holds.
async fn keep_alive(w: &Watch) -> Loss {
    // The TTL was checked by the acquire; 1 ms is the floor either way.
    let ttl_ms = ttl_millis(w.ttl).unwrap_or(1);
    let interval = (w.ttl / 3).max(Duration::from_millis(1));
    let mut valid_until = w.valid_until;
    let mut next = after(Instant::now(), interval);
    loop {
        tokio::time::sleep_until(at_most(next, valid_until)).await;
        let sent = Instant::now();
        if valid_until.is_some_and(|v| sent >= v) {
            return Loss::Expired;
        }
        let extended = extend(&w.client, &w.key, w.owner, ttl_ms);
        let result = match valid_until {
            Some(v) => tokio::select! {
                r = extended => r,
                () = tokio::time::sleep_until(v) => return Loss::Expired,
            },
            None => extended.await,
        };
        match result {
            Ok(()) => valid_until = sent.checked_add(w.ttl),
            Err(RedisError::LockLost) => return Loss::Taken,
            Err(e) => {
                tracing::debug!(key = %w.key, error = %e, "lock watchdog could not extend; trying again");
            }
        }
        // From when this extend was sent: a slow reply does not push the next one back.
        next = after(sent, interval);
    }
}

/// `t + d`, or a year later when that is beyond the clock's range.
fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(t)
}

fn at_most(t: Instant, limit: Option<Instant>) -> Instant {
    match limit {
        Some(l) => t.min(l),
        None => t,
    }
}
