//! [`RedisClient`]: one auto-reconnecting multiplexed connection, every call behind the "redis"
//! circuit breaker, a deadline and the `redis_*` metrics.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::io::tcp::TcpSettings;
use ::redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ErrorKind, FromRedisValue,
    IntoConnectionInfo, RedisConnectionInfo, ServerErrorKind, TlsCertificates, ToRedisArgs,
};
use arc_swap::ArcSwapOption;
use metrics::{Counter, Gauge, Histogram};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::cluster::Conn;
use super::config::{ReconnectBackoff, RedisConfig, TlsClientCert, TlsOptions};
use super::error::{RedisError, ServerReply, connect_failure};
use super::keys::{RedisKey, render_trusted};
use super::scripts::{LuaScript, SCRIPT_REFUSED_TTL, SCRIPTS, ttl_millis};
use crate::circuit_breaker::{CircuitBreaker, get_circuit_breaker};
use crate::metrics::lazy::LazyHandle;
use crate::metrics::{REDIS_CONNECTED, REDIS_ERRORS_TOTAL, REDIS_OPERATION_DURATION_SECONDS};
use crate::rate_limit::RateLimitDecision;

/// What a call does; the `operation` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Ping,
    Get,
    Set,
    Del,
    RateLimit,
    LockAcquire,
    LockRelease,
    LockExtend,
    Create,
    Update,
    GetVersioned,
    Command,
    BreakerAcquire,
    BreakerRecord,
}

const OPS: [Op; 14] = [
    Op::Ping,
    Op::Get,
    Op::Set,
    Op::Del,
    Op::RateLimit,
    Op::LockAcquire,
    Op::LockRelease,
    Op::LockExtend,
    Op::Create,
    Op::Update,
    Op::GetVersioned,
    Op::Command,
    Op::BreakerAcquire,
    Op::BreakerRecord,
];

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Get => "get",
            Op::Set => "set",
            Op::Del => "del",
            Op::RateLimit => "rate_limit",
            Op::LockAcquire => "lock_acquire",
            Op::LockRelease => "lock_release",
            Op::LockExtend => "lock_extend",
            Op::Create => "create_if_not_exists",
            Op::Update => "conditional_update",
            Op::GetVersioned => "get_versioned",
            Op::Command => "command",
            Op::BreakerAcquire => "breaker_acquire",
            Op::BreakerRecord => "breaker_record",
        }
    }

    /// Safe to send twice with the same answer: retried once at once when the connection
    /// turned out to be dead (e.g. the first call after a server restart). Not rate limits,
    /// conditional updates or breaker scripts (a reply lost after the server applied them would
    /// count twice), nor create / release / del (the second answer would differ from the
    /// first: "exists", "not ours", "not found").
    fn idempotent(self) -> bool {
        matches!(
            self,
            Op::Ping | Op::Get | Op::Set | Op::LockAcquire | Op::LockExtend | Op::GetVersioned
        )
    }
}

const KINDS: [&str; 11] = [
    "config",
    "tls",
    "auth",
    "permission",
    "connection",
    "timeout",
    "circuit_open",
    "server",
    "invalid_argument",
    "conflict",
    "protocol",
];

/// Metric handles, each registered the first time it records (a fresh client exports no
/// zero-valued combinations) and kept.
struct ClientMetrics {
    duration: [LazyHandle<Histogram>; OPS.len()],
    errors: [[LazyHandle<Counter>; KINDS.len()]; OPS.len()],
    connected: Gauge,
}

impl ClientMetrics {
    fn new() -> Self {
        Self {
            duration: std::array::from_fn(|_| LazyHandle::new()),
            errors: std::array::from_fn(|_| std::array::from_fn(|_| LazyHandle::new())),
            connected: metrics::gauge!(REDIS_CONNECTED),
        }
    }

    #[inline]
    fn duration(&self, op: Op) -> &Histogram {
        self.duration[op as usize]
            .get(|| metrics::histogram!(REDIS_OPERATION_DURATION_SECONDS, "operation" => op.name()))
    }

    fn error(&self, op: Op, kind: &str) {
        let k = KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS.len() - 1);
        let name = KINDS[k];
        self.errors[op as usize][k]
            .get(|| metrics::counter!(REDIS_ERRORS_TOTAL, "operation" => op.name(), "kind" => name))
            .increment(1);
    }
}

/// A connection that was idle this long is checked (without a round trip) before a command is
/// sent on it: a server restarted meanwhile closed it, and the command then goes to a fresh
/// connection instead of failing on the dead one. Busier connections learn of a restart from
/// the calls in flight.
pub(crate) const PROBE_WHEN_IDLE_FOR: Duration = Duration::from_millis(100);

/// One live connection to a single server.
struct Live {
    conn: MultiplexedConnection,
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
    fn new(client: Client, conn_cfg: AsyncConnectionConfig, backoff: ReconnectBackoff) -> Self {
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
    async fn live(&self) -> ::redis::RedisResult<(MultiplexedConnection, usize)> {
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

    async fn connect_now(&self) -> ::redis::RedisResult<Arc<Live>> {
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
    fn on_error(&self, id: usize, e: &::redis::RedisError) {
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
    fn reconnect_in_background(&self) {
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

struct Inner {
    conn: Conn,
    prefix: Arc<str>,
    username: Option<String>,
    addr: String,
    tls: bool,
    breaker: Arc<CircuitBreaker>,
    timeout: Duration,
    metrics: ClientMetrics,
    connected: AtomicBool,
    /// Set by [`RedisClient::close`]: every call fails with [`RedisError::Closed`].
    closed: AtomicBool,
}

/// A Redis client: cheap to clone (one shared multiplexed connection), safe to use from many
/// tasks at once. Build it with [`RedisClient::connect`].
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("addr", &self.inner.addr)
            .field("username", &self.inner.username)
            .field("key_prefix", &self.inner.prefix)
            .field("breaker", &self.inner.breaker.name())
            .finish_non_exhaustive()
    }
}

/// A value stored by [`RedisClient::create_if_not_exists`] with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<V> {
    /// The value.
    pub value: V,
    /// Its version: 1 when created, +1 per [`RedisClient::conditional_update`].
    pub version: u64,
}

impl RedisClient {
    /// A client for one server. Configuration mistakes fail here: a bad TLS file, refused
    /// credentials ([`RedisError::Auth`]), an untrusted certificate ([`RedisError::Tls`]). A
    /// server that cannot be reached does not: the client is returned anyway (after one
    /// attempt bounded by the connect timeout), calls fail fast with
    /// [`RedisError::Connect`] until the server answers, [`is_connected`](Self::is_connected)
    /// and [`RedisCheck`](crate::health::RedisCheck) report it, and the first call after the
    /// server comes up connects. So a service whose rate limiter falls back to a local limit
    /// can start while Redis is down.
    pub async fn connect(config: RedisConfig) -> Result<Self, RedisError> {
        let addr = config.addr();
        let client = build_client(&config)?;
        let conn_cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout));
        let single = SingleConnection::new(client, conn_cfg, config.reconnect);
        let map_connect = |e: ::redis::RedisError| {
            connect_failure(e, config.username.as_deref(), config.tls.is_some(), &addr)
        };
        let first = tokio::time::timeout(config.connect_timeout, single.connect_now()).await;
        let live = match first {
            Ok(Ok(live)) => Some(live),
            Ok(Err(e)) => match map_connect(e) {
                e @ RedisError::Connect { .. } => {
                    tracing::warn!(error = %e, "Redis is unreachable; the client will connect when it answers");
                    None
                }
                e => return Err(e),
            },
            Err(_) => {
                tracing::warn!(addr = %addr, after = ?config.connect_timeout, "Redis did not answer in time; the client will connect when it answers");
                None
            }
        };
        let connected = match live {
            Some(live) => {
                Self::check_and_load(&live.conn, &config, &map_connect).await?;
                true
            }
            None => {
                single.reconnect_in_background();
                false
            }
        };
        let client = Self::from_parts(Conn::Single(single), &config, addr);
        client.set_connected(connected);
        Ok(client)
    }

    /// The first command on a new connection: its error (NOAUTH: a password is missing) is
    /// reported as is, where a pipeline would wrap it. Then the scripts are loaded; an ACL that
    /// forbids `SCRIPT` only costs a warning (the calls that need a script will say so).
    async fn check_and_load(
        conn: &MultiplexedConnection,
        config: &RedisConfig,
        map_connect: &impl Fn(::redis::RedisError) -> RedisError,
    ) -> Result<(), RedisError> {
        let mut probe = conn.clone();
        let timeout_err = |operation| RedisError::Timeout {
            operation,
            after: config.response_timeout,
        };
        tokio::time::timeout(
            config.response_timeout,
            ::redis::cmd("PING").query_async::<String>(&mut probe),
        )
        .await
        .map_err(|_| timeout_err("ping"))?
        .map_err(map_connect)?;
        let mut load = ::redis::pipe();
        for s in SCRIPTS.all() {
            load.cmd("SCRIPT").arg("LOAD").arg(s.code);
        }
        match tokio::time::timeout(
            config.response_timeout,
            load.query_async::<Vec<String>>(&mut probe),
        )
        .await
        .map_err(|_| timeout_err("script_load"))?
        .map_err(map_connect)
        {
            Ok(_) => Ok(()),
            Err(e @ RedisError::PermissionDenied { .. }) => {
                tracing::warn!(error = %e, "scripts not preloaded");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A client over an established connection (one server, Cluster or Sentinel).
    pub(crate) fn from_parts(conn: Conn, config: &RedisConfig, addr: String) -> Self {
        let metrics = ClientMetrics::new();
        metrics.connected.set(1.0);
        let breaker = config
            .breaker
            .clone()
            .unwrap_or_else(|| get_circuit_breaker("redis"));
        Self {
            inner: Arc::new(Inner {
                conn,
                prefix: config.key_prefix.clone(),
                username: config.username.clone(),
                addr,
                tls: config.tls.is_some(),
                breaker,
                timeout: config.response_timeout,
                metrics,
                connected: AtomicBool::new(true),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Shuts the client down, for a shutdown hook: every later call, on this handle and on
    /// every clone of it (they share the connection), fails at once with
    /// [`RedisError::Closed`] without touching the network or the breaker. Calls already in
    /// flight finish on the connection they hold (each within the response timeout). A
    /// one-server or Sentinel client drops its connection now (it closes when the last call
    /// in flight is done) and stops reconnecting (and watching the sentinels); a Cluster
    /// client's connections close when the last clone of the client is dropped. Idempotent.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        match &self.inner.conn {
            Conn::Single(single) => single.close().await,
            Conn::Sentinel(sentinel) => sentinel.close().await,
            // redis-rs's cluster connection closes when its last handle (ours) is dropped.
            Conn::Cluster(_) => {}
        }
        self.set_connected(false);
    }

    /// Whether [`close`](Self::close) was called on this client or a clone of it.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Relaxed)
    }

    /// Whether the last call reached the server (`false` from a failed connection or a
    /// timeout until a call succeeds; also the `redis_connected` gauge).
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The breaker every call goes through.
    pub fn circuit_breaker(&self) -> &Arc<CircuitBreaker> {
        &self.inner.breaker
    }

    /// The full key of `key`: `<prefix>:<namespace>:...`.
    pub fn key<K: RedisKey + ?Sized>(&self, key: &K) -> Result<String, RedisError> {
        render_trusted(&self.inner.prefix, key)
    }

    /// Round-trip time of one `PING`.
    pub async fn ping(&self) -> Result<Duration, RedisError> {
        let start = Instant::now();
        let pong: String = self.exec(Op::Ping, &::redis::cmd("PING"), None).await?;
        if pong != "PONG" {
            return Err(RedisError::UnexpectedReply {
                operation: "ping",
                detail: "the server did not answer PONG",
            });
        }
        Ok(start.elapsed())
    }

    /// `GET`: the value under `key`, or `None`.
    pub async fn get<K, V>(&self, key: &K) -> Result<Option<V>, RedisError>
    where
        K: RedisKey + ?Sized,
        V: FromRedisValue,
    {
        let k = self.key(key)?;
        self.exec(Op::Get, ::redis::cmd("GET").arg(&k), None).await
    }

    /// `SET`, with an optional time to live (1 ms to [`MAX_TTL`](super::MAX_TTL)).
    pub async fn set<K, V>(
        &self,
        key: &K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<(), RedisError>
    where
        K: RedisKey + ?Sized,
        V: ToRedisArgs,
    {
        let k = self.key(key)?;
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(&k).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_millis(ttl)?);
        }
        self.exec::<()>(Op::Set, &cmd, None).await
    }

    /// `DEL`: whether the key existed.
    pub async fn del<K: RedisKey + ?Sized>(&self, key: &K) -> Result<bool, RedisError> {
        let k = self.key(key)?;
        let n: u64 = self
            .exec(Op::Del, ::redis::cmd("DEL").arg(&k), None)
            .await?;
        Ok(n > 0)
    }

    /// Any command, through the breaker, the deadline and the metrics (operation `command`).
    /// Not retried: the client cannot know whether it is idempotent.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        self.exec(Op::Command, cmd, None).await
    }

    /// One GCRA decision for a bucket of `capacity` tokens refilled at `refill_per_sec`,
    /// taking `cost` tokens if they are there. One round trip; the server's clock decides.
    ///
    /// `cost` 0 only looks. A `cost` above `capacity` can never pass and is rejected with
    /// [`RedisError::InvalidArgument`] (before any network call).
    pub async fn rate_limit<K: RedisKey + ?Sized>(
        &self,
        key: &K,
        capacity: u64,
        refill_per_sec: f64,
        cost: u64,
    ) -> Result<RateLimitDecision, RedisError> {
        let k = self.key(key)?;
        self.rate_limit_raw(&k, capacity, refill_per_sec, cost)
            .await
    }

    /// [`rate_limit`](Self::rate_limit) on an already rendered key.
    pub(crate) async fn rate_limit_raw(
        &self,
        key: &str,
        capacity: u64,
        refill_per_sec: f64,
        cost: u64,
    ) -> Result<RateLimitDecision, RedisError> {
        let emission = check_rate(capacity, refill_per_sec, cost)?;
        let s = &SCRIPTS.rate_limit;
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(&s.sha)
            .arg(1)
            .arg(key)
            .arg(capacity)
            .arg(emission)
            .arg(cost);
        let (allowed, remaining, retry_us, reset_us): (i64, i64, i64, i64) =
            self.exec(Op::RateLimit, &cmd, Some(s)).await?;
        if allowed == -1 {
            // The script's own check (same bounds as `check_rate`) refused before writing.
            return Err(RedisError::InvalidArgument {
                name: "capacity",
                reason: "refused by the server-side script (capacity, rate or cost out of range)",
            });
        }
        Ok(RateLimitDecision {
            allowed: allowed == 1,
            remaining: remaining.max(0) as u64,
            retry_after: micros(retry_us),
            reset_after: micros(reset_us),
        })
    }

    /// Stores `value` (version 1) unless `key` exists; `ttl` `None` keeps it forever. Returns
    /// whether it was created. Read it back with [`get_versioned`](Self::get_versioned).
    /// [`RedisError::InvalidArgument`] for a `ttl` outside 1 ms to
    /// [`MAX_TTL`](super::MAX_TTL): nothing is stored.
    pub async fn create_if_not_exists<K, V>(
        &self,
        key: &K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<bool, RedisError>
    where
        K: RedisKey + ?Sized,
        V: ToRedisArgs,
    {
        let ttl_ms = match ttl {
            Some(t) => ttl_millis(t)?,
            None => 0,
        };
        let k = self.key(key)?;
        let s = &SCRIPTS.create_if_not_exists;
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(&s.sha).arg(1).arg(&k).arg(value).arg(ttl_ms);
        let (created, _version): (i64, i64) = self.exec(Op::Create, &cmd, Some(s)).await?;
        match created {
            1 => Ok(true),
            0 => Ok(false),
            -1 => Err(SCRIPT_REFUSED_TTL),
            _ => Err(RedisError::UnexpectedReply {
                operation: "create_if_not_exists",
                detail: "the script returned an impossible result",
            }),
        }
    }

    /// Replaces the value if its version is `expected_version`, and returns the new version
    /// (`expected_version + 1`); the key's TTL is kept. Otherwise
    /// [`RedisError::VersionMismatch`] with the version found (`None`: no such key).
    pub async fn conditional_update<K, V>(
        &self,
        key: &K,
        expected_version: u64,
        value: V,
    ) -> Result<u64, RedisError>
    where
        K: RedisKey + ?Sized,
        V: ToRedisArgs,
    {
        let k = self.key(key)?;
        let s = &SCRIPTS.conditional_update;
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(&s.sha)
            .arg(1)
            .arg(&k)
            .arg(expected_version)
            .arg(value);
        let (updated, version): (i64, i64) = self.exec(Op::Update, &cmd, Some(s)).await?;
        match (updated, version) {
            (1, v) if v > 0 => Ok(v as u64),
            (0, -1) => Err(RedisError::VersionMismatch {
                expected: expected_version,
                actual: None,
            }),
            (0, -2) => Err(RedisError::UnexpectedReply {
                operation: "conditional_update",
                detail: "the key holds a value that was not written by create_if_not_exists",
            }),
            (0, v) if v >= 0 => Err(RedisError::VersionMismatch {
                expected: expected_version,
                actual: Some(v as u64),
            }),
            _ => Err(RedisError::UnexpectedReply {
                operation: "conditional_update",
                detail: "the script returned an impossible result",
            }),
        }
    }

    /// The value written by [`create_if_not_exists`](Self::create_if_not_exists) /
    /// [`conditional_update`](Self::conditional_update), with its version.
    pub async fn get_versioned<K, V>(&self, key: &K) -> Result<Option<Versioned<V>>, RedisError>
    where
        K: RedisKey + ?Sized,
        V: FromRedisValue,
    {
        let k = self.key(key)?;
        let (value, version): (Option<V>, Option<u64>) = self
            .exec(
                Op::GetVersioned,
                ::redis::cmd("HMGET").arg(&k).arg("val").arg("ver"),
                None,
            )
            .await?;
        Ok(match (value, version) {
            (Some(value), Some(version)) => Some(Versioned { value, version }),
            _ => None,
        })
    }

    /// Runs `cmd` (EVALSHA of `script`, reloading it on NOSCRIPT) through the breaker, within
    /// the deadline, recording the metrics. A command is never sent on a connection known to
    /// be dead (see [`SingleConnection`]); idempotent operations also get one immediate second
    /// try when the connection died under them (the first may or may not have been applied).
    pub(crate) async fn exec<T: FromRedisValue>(
        &self,
        op: Op,
        cmd: &Cmd,
        script: Option<&LuaScript>,
    ) -> Result<T, RedisError> {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Relaxed) {
            return Err(RedisError::Closed);
        }
        let permit = match inner.breaker.try_acquire() {
            Ok(p) => p,
            Err(open) => {
                inner.metrics.error(op, "circuit_open");
                return Err(RedisError::CircuitOpen(open));
            }
        };
        let start = Instant::now();
        // `None`: a timeout too large to add to the clock, i.e. no deadline.
        let deadline = tokio::time::Instant::now().checked_add(inner.timeout);
        let mut tries_left = if op.idempotent() { 2 } else { 1 };
        let result = loop {
            tries_left -= 1;
            let attempt = self.send::<T>(op, cmd, script);
            let r = match deadline {
                Some(at) => tokio::time::timeout_at(at, attempt)
                    .await
                    .unwrap_or_else(|_| {
                        Err(RedisError::Timeout {
                            operation: op.name(),
                            after: inner.timeout,
                        })
                    }),
                None => attempt.await,
            };
            match r {
                Err(RedisError::Command { ref source, .. })
                    if tries_left > 0 && source.is_connection_dropped() =>
                {
                    continue;
                }
                r => break r,
            }
        };
        inner.metrics.duration(op).record(start.elapsed());
        match &result {
            Ok(_) => {
                permit.success();
                self.set_connected(true);
            }
            Err(e) => {
                inner.metrics.error(op, e.kind());
                if e.is_infrastructure() {
                    permit.failure();
                    if matches!(e.kind(), "connection" | "timeout") {
                        self.set_connected(false);
                    }
                } else {
                    // The server answered: it is healthy, whatever it said.
                    permit.success();
                }
            }
        }
        result
    }

    /// One try of `cmd` over the client's connection.
    async fn send<T: FromRedisValue>(
        &self,
        op: Op,
        cmd: &Cmd,
        script: Option<&LuaScript>,
    ) -> Result<T, RedisError> {
        let inner = &*self.inner;
        let map =
            |e| RedisError::from_command(op.name(), e, inner.username.as_deref(), inner.timeout);
        match &inner.conn {
            Conn::Single(single) => {
                let (mut conn, id) = single.live().await.map_err(|e| {
                    if inner.closed.load(Ordering::Relaxed) {
                        RedisError::Closed
                    } else {
                        connect_failure(e, inner.username.as_deref(), inner.tls, &inner.addr)
                    }
                })?;
                let r = run(&mut conn, cmd, script).await;
                if let Err(e) = &r {
                    single.on_error(id, e);
                }
                r.map_err(map)
            }
            Conn::Cluster(c) => run(&mut c.clone(), cmd, script).await.map_err(map),
            Conn::Sentinel(c) => run(&mut c.clone(), cmd, script).await.map_err(map),
        }
    }

    fn set_connected(&self, up: bool) {
        // Touch the gauge only on changes: the hot path reads one atomic.
        if self.inner.connected.load(Ordering::Relaxed) != up
            && self.inner.connected.swap(up, Ordering::Relaxed) != up
        {
            self.inner.metrics.connected.set(if up { 1.0 } else { 0.0 });
        }
    }
}

/// `cmd` on `conn`; on NOSCRIPT, loads `script` and sends `cmd` again (the server answered
/// without running anything).
async fn run<C: ConnectionLike, T: FromRedisValue>(
    conn: &mut C,
    cmd: &Cmd,
    script: Option<&LuaScript>,
) -> ::redis::RedisResult<T> {
    match cmd.query_async::<T>(conn).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            let Some(s) = script else { return Err(e) };
            ::redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(s.code)
                .query_async::<String>(conn)
                .await?;
            cmd.query_async::<T>(conn).await
        }
        r => r,
    }
}

pub(crate) fn build_client(config: &RedisConfig) -> Result<Client, RedisError> {
    let addr = match &config.tls {
        None => ConnectionAddr::Tcp(config.host.clone(), config.port),
        Some(_) => ConnectionAddr::TcpTls {
            host: config.host.clone(),
            port: config.port,
            insecure: false,
            tls_params: None,
        },
    };
    let mut redis_info = RedisConnectionInfo::default()
        .set_db(config.db)
        .set_lib_name("resilience", env!("CARGO_PKG_VERSION"));
    if let Some(u) = &config.username {
        redis_info = redis_info.set_username(u);
    }
    if let Some(p) = &config.password {
        redis_info = redis_info.set_password(p.expose());
    }
    let info = addr
        .into_connection_info()
        .map_err(|_| RedisError::InvalidUrl {
            reason: "the address could not be used",
        })?
        // redis 1.8 leaves TCP_NODELAY off by default; small request/reply traffic needs it.
        .set_tcp_settings(TcpSettings::default().set_nodelay(true))
        .set_redis_settings(redis_info);
    let Some(tls) = &config.tls else {
        return Client::open(info).map_err(|_| RedisError::InvalidUrl {
            reason: "the address could not be used",
        });
    };
    Client::build_with_tls(info, tls_certificates(tls)?).map_err(|e| RedisError::Tls {
        reason: e.to_string(),
    })
}

/// Reads and checks the TLS files of `tls` (CA certificates, client certificate and key), once
/// per connect: a bad file is reported here, naming it, rather than as a failed handshake.
pub(crate) fn tls_certificates(tls: &TlsOptions) -> Result<TlsCertificates, RedisError> {
    install_crypto_provider();
    let root_cert = match &tls.ca_file {
        None => None,
        Some(path) => Some(read_certs(path, "CA certificate")?.0),
    };
    let client_tls = match &tls.client_cert {
        None => None,
        Some(c) => Some(read_client_cert(c)?),
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert,
    })
}

/// The file's bytes and its parsed certificates (at least one).
fn read_certs(
    path: &Path,
    role: &'static str,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), RedisError> {
    let file_err = |reason: String| RedisError::TlsFile {
        role,
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(format!("not a valid PEM certificate ({e})")))?;
    if certs.is_empty() {
        return Err(file_err(
            "no `-----BEGIN CERTIFICATE-----` block found".to_owned(),
        ));
    }
    Ok((bytes, certs))
}

/// The client certificate and key, checked to parse and to belong together. Errors describe the
/// problem, never the key's bytes.
fn read_client_cert(c: &TlsClientCert) -> Result<ClientTlsConfig, RedisError> {
    let (cert_bytes, chain) = read_certs(&c.cert_file, "client certificate")?;
    let key_err = |reason: String| RedisError::TlsFile {
        role: "client key",
        path: c.key_file.clone(),
        reason,
    };
    let key_bytes = std::fs::read(&c.key_file).map_err(|e| key_err(e.to_string()))?;
    // `PrivateKeyDer`'s parse error names the PEM section problem, not the bytes.
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        key_err(format!(
            "no unencrypted PEM private key found ({e}); expected `-----BEGIN PRIVATE KEY-----`, \
             `BEGIN EC PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`"
        ))
    })?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        key_err(match e {
            rustls::Error::InconsistentKeys(_) => {
                "does not match the client certificate's public key".to_owned()
            }
            e => format!("unusable private key ({e})"),
        })
    })?;
    Ok(ClientTlsConfig {
        client_cert: cert_bytes,
        client_key: key_bytes,
    })
}

/// rustls needs a process-wide crypto provider; install ring's unless the application already
/// chose one.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: a provider is then in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Validates a rate-limit request; returns the emission interval in µs.
pub(crate) fn check_rate(capacity: u64, refill_per_sec: f64, cost: u64) -> Result<f64, RedisError> {
    if capacity == 0 {
        return Err(RedisError::InvalidArgument {
            name: "capacity",
            reason: "must be at least 1",
        });
    }
    if capacity > (1 << 40) {
        return Err(RedisError::InvalidArgument {
            name: "capacity",
            reason: "must be at most 2^40",
        });
    }
    if !(refill_per_sec.is_finite() && refill_per_sec > 0.0) {
        return Err(RedisError::InvalidArgument {
            name: "refill_per_sec",
            reason: "must be a finite number greater than zero",
        });
    }
    if cost > capacity {
        return Err(RedisError::InvalidArgument {
            name: "cost",
            reason: "exceeds the bucket's capacity, so it could never be admitted",
        });
    }
    let emission = 1_000_000.0 / refill_per_sec;
    // The bucket's span (capacity × emission) must stay well inside f64's exact-integer range
    // next to a µs timestamp (~1.7e15).
    if !(emission.is_finite() && emission * capacity as f64 <= 1e15) {
        return Err(RedisError::InvalidArgument {
            name: "refill_per_sec",
            reason: "too slow for this capacity (a full refill must take under ~30 years)",
        });
    }
    Ok(emission)
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(us.max(0) as u64)
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
