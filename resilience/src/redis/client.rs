//! [`RedisClient`]: one auto-reconnecting multiplexed connection, every call behind the "redis"
//! circuit breaker, a deadline and the `redis_*` metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, FromRedisValue, ServerErrorKind, ToRedisArgs,
};

use super::cluster::Conn;
use super::config::RedisConfig;
use super::connection::SingleConnection;
use super::error::{RedisError, connect_failure};
use super::keys::{RedisKey, render_trusted};
use super::ops::{ClientMetrics, Op};
use super::scripts::{LuaScript, SCRIPT_REFUSED_TTL, SCRIPTS, ttl_millis};
use super::tls::build_client;
use crate::circuit_breaker::{CircuitBreaker, get_circuit_breaker};
use crate::rate_limit::RateLimitDecision;

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
