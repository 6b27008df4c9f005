//! One auto-reconnecting multiplexed connection to a single server, probed when idle and
//! re-established in the background with backoff.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{AsyncConnectionConfig, Client, ErrorKind};
use arc_swap::ArcSwapOption;

use super::config::ReconnectBackoff;
use super::error::ServerReply;

/// A connection that was idle this long is checked (without a round trip) before a command is
/// sent on it: a server restarted meanwhile closed it, and the command then goes to a fresh
/// connection instead of failing on the dead one. Busier connections learn of a restart from
/// the calls in flight.
pub(crate) const PROBE_WHEN_IDLE_FOR: Duration = Duration::from_millis(100);

/// One live connection to a single server.
pub(crate) struct Live {
    pub(crate) conn: MultiplexedConnection,
    /// When a command was last sent on it, in ms since [`SingleShared::epoch`].
    last_used_ms: AtomicU64,
}

/// The connection of a one-server client, owned here (not by redis-rs's `ConnectionManager`,
/// which hands the error of a failed background reconnect to the next caller, long after the
/// server came back). A call finds a live connection, or connects itself (one attempt at a
/// time: a caller that waited uses the connection made meanwhile, or makes its own attempt),
/// so every connect error a call sees comes from its own attempt. After a connection is lost, a background task reconnects with
/// [`ReconnectBackoff`] so that a quiet client is ready when traffic returns.
#[derive(Clone)]
pub(crate) struct SingleConnection {
    shared: Arc<SingleShared>,
}

struct SingleShared {
    client: Client,
    conn_cfg: AsyncConnectionConfig,
    backoff: ReconnectBackoff,
    current: ArcSwapOption<Live>,
    /// Held while connecting: one attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    /// Whether the background reconnect task runs.
    reconnecting: AtomicBool,
    /// Set by [`RedisClient::close`]: no new connection is made.
    closed: AtomicBool,
    epoch: Instant,
}

impl SingleConnection {
    pub(crate) fn new(
        client: Client,
        conn_cfg: AsyncConnectionConfig,
        backoff: ReconnectBackoff,
    ) -> Self {
        Self {
            shared: Arc::new(SingleShared {
                client,
                conn_cfg,
                backoff,
                current: ArcSwapOption::empty(),
                connecting: tokio::sync::Mutex::new(()),
                reconnecting: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                epoch: Instant::now(),
            }),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The connection for one call, and its identity for [`on_error`](Self::on_error): the
    /// live one, or a new one. An `Err` comes from an attempt made for this call, never from
    /// an earlier one; nothing of the call was sent.
    pub(crate) async fn live(&self) -> ::redis::RedisResult<(MultiplexedConnection, usize)> {
        // Hot path: a recently used connection, read without touching a shared refcount.
        {
            let guard = self.shared.current.load();
            if let Some(live) = guard.as_ref()
                && self.fresh(live)
            {
                return Ok((live.conn.clone(), identity(live)));
            }
        }
        if let Some(live) = self.shared.current.load_full() {
            if self.fresh(&live) || is_open(&live.conn).await {
                self.touch(&live);
                return Ok((live.conn.clone(), identity(&live)));
            }
            // Closed while idle (the server went away): provably nothing of this call was
            // sent on it, so the call goes on over a new connection.
            self.drop_live(&live);
        }
        let live = self.connect_now().await?;
        Ok((live.conn.clone(), identity(&live)))
    }

    /// Used within [`PROBE_WHEN_IDLE_FOR`] (then marked used now).
    fn fresh(&self, live: &Live) -> bool {
        let now = self.now_ms();
        let last = live.last_used_ms.load(Ordering::Relaxed);
        let fresh = now.saturating_sub(last) < PROBE_WHEN_IDLE_FOR.as_millis() as u64;
        // At most one write per ms: busy callers share this cache line.
        if fresh && last != now {
            live.last_used_ms.store(now, Ordering::Relaxed);
        }
        fresh
    }

    fn touch(&self, live: &Live) {
        live.last_used_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub(crate) async fn connect_now(&self) -> ::redis::RedisResult<Arc<Live>> {
        let _one_at_a_time = self.shared.connecting.lock().await;
        // Connected by whoever held the lock before us.
        if let Some(live) = self.shared.current.load_full() {
            return Ok(live);
        }
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(closed_io_error());
        }
        let conn = self
            .shared
            .client
            .get_multiplexed_async_connection_with_config(&self.shared.conn_cfg)
            .await?;
        let live = Arc::new(Live {
            conn,
            last_used_ms: AtomicU64::new(self.now_ms()),
        });
        self.shared.current.store(Some(live.clone()));
        // A close that ran while we connected (it waits for the connect lock, but a caller
        // that checked before it may still get here): drop what we made.
        if self.shared.closed.load(Ordering::Acquire) {
            self.shared.current.store(None);
            return Err(closed_io_error());
        }
        Ok(live)
    }

    /// Stops connecting and drops the current connection: calls holding a handle to it finish
    /// on it, and it closes when the last of them is done.
    pub(crate) async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // After a connect in progress has stored its connection.
        let _one_at_a_time = self.shared.connecting.lock().await;
        self.shared.current.store(None);
    }

    /// A command on `live` failed with `e`: drop the connection when `e` says it is unusable
    /// (lost, or a replica that cannot take writes), and reconnect in the background.
    pub(crate) fn on_error(&self, id: usize, e: &::redis::RedisError) {
        if e.is_unrecoverable_error() || ServerReply::of(e) == Some(ServerReply::ReadOnly) {
            // Still the one the call used? (A stale id can only match a newer connection
            // at the same address, which then reconnects once more: harmless.)
            if let Some(live) = self.shared.current.load_full()
                && identity(&live) == id
            {
                self.drop_live(&live);
            }
        }
    }

    fn drop_live(&self, live: &Arc<Live>) {
        // Only if nobody replaced it meanwhile.
        let prev = self
            .shared
            .current
            .compare_and_swap(live, None::<Arc<Live>>);
        if prev.as_ref().is_some_and(|p| Arc::ptr_eq(p, live)) {
            self.reconnect_in_background();
        }
    }

    /// Starts the background reconnect round unless one runs: up to `max_retries` attempts,
    /// `min_delay` apart growing by `factor` up to `max_delay`; it ends once connected (by it
    /// or by a caller), after the last attempt, or when the client is dropped.
    pub(crate) fn reconnect_in_background(&self) {
        if self.shared.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.shared.reconnecting.store(false, Ordering::Release);
            return;
        };
        let weak: Weak<SingleShared> = Arc::downgrade(&self.shared);
        let backoff = self.shared.backoff;
        rt.spawn(async move {
            for attempt in 0..backoff.max_retries {
                tokio::time::sleep(backoff_delay(&backoff, attempt)).await;
                let Some(shared) = weak.upgrade() else { return };
                if shared.closed.load(Ordering::Acquire) {
                    return;
                }
                let this = SingleConnection { shared };
                if this.shared.current.load().is_some() || this.connect_now().await.is_ok() {
                    break;
                }
            }
            if let Some(shared) = weak.upgrade() {
                shared.reconnecting.store(false, Ordering::Release);
            }
        });
    }
}

/// What a connect attempt after [`RedisClient::close`] fails with (calls see
/// [`RedisError::Closed`] before they get this far; this covers a race with the close).
fn closed_io_error() -> ::redis::RedisError {
    ::redis::RedisError::from((ErrorKind::Client, "the client was closed"))
}

/// A connection's identity while it is current (its address).
fn identity(live: &Arc<Live>) -> usize {
    Arc::as_ptr(live) as usize
}

/// Whether the connection's I/O task still runs: a fire-and-forget `PING` is accepted by its
/// queue at once, or refused at once when the task has ended (the server closed the
/// connection). No round trip.
pub(crate) async fn is_open(conn: &MultiplexedConnection) -> bool {
    let mut ping = ::redis::cmd("PING");
    ping.set_no_response(true);
    conn.clone().req_packed_command(&ping).await.is_ok()
}

/// The delay before background attempt `n` (from 0): `min_delay · factor^n`, at most
/// `max_delay`; any value the builder accepts (`Duration::MAX` included) saturates.
fn backoff_delay(b: &ReconnectBackoff, n: usize) -> Duration {
    let exp = i32::try_from(n).unwrap_or(i32::MAX);
    let secs = b.min_delay.as_secs_f64() * f64::from(b.factor).powi(exp);
    Duration::try_from_secs_f64(secs)
        .unwrap_or(b.max_delay)
        .min(b.max_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_delays_grow_and_saturate() {
        let b = ReconnectBackoff::default();
        let delays: Vec<_> = (0..7).map(|n| backoff_delay(&b, n)).collect();
        assert_eq!(delays[0], Duration::from_millis(50));
        assert_eq!(delays[2], Duration::from_millis(200));
        assert_eq!(delays[6], Duration::from_secs(2), "capped at max_delay");
        let extreme = ReconnectBackoff {
            min_delay: Duration::MAX,
            max_delay: Duration::MAX,
            factor: f32::MAX,
            max_retries: usize::MAX,
        };
        for n in [0, 1, 1000, usize::MAX] {
            assert_eq!(backoff_delay(&extreme, n), Duration::MAX);
        }
        let tiny = ReconnectBackoff {
            min_delay: Duration::from_nanos(1),
            ..extreme
        };
        assert_eq!(backoff_delay(&tiny, 0), Duration::from_nanos(1));
        assert_eq!(backoff_delay(&tiny, usize::MAX), Duration::MAX);
    }
}
