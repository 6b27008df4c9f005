//! [`RedisClient`]: one auto-reconnecting multiplexed connection, every call behind the "redis"
//! circuit breaker, a deadline and the `redis_*` metrics.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::io::tcp::TcpSettings;
use ::redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ErrorKind, FromRedisValue,
    IntoConnectionInfo, RedisConnectionInfo, ServerErrorKind, TlsCertificates, ToRedisArgs,
};
use metrics::{Counter, Gauge, Histogram};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::cluster::Conn;
use super::config::{RedisConfig, TlsClientCert, TlsOptions};
use super::error::{RedisError, connect_failure, is_auth_failure};
use super::keys::{RedisKey, render_trusted};
use super::scripts::{LuaScript, SCRIPT_REFUSED_TTL, SCRIPTS, ttl_millis};
use crate::circuit_breaker::{CircuitBreaker, get_circuit_breaker};
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

const KINDS: [&str; 10] = [
    "config",
    "tls",
    "auth",
    "connection",
    "timeout",
    "circuit_open",
    "server",
    "invalid_argument",
    "conflict",
    "protocol",
];

/// Metric handles, resolved once per client.
struct ClientMetrics {
    duration: [Histogram; OPS.len()],
    errors: [[Counter; KINDS.len()]; OPS.len()],
    connected: Gauge,
}

impl ClientMetrics {
    fn new() -> Self {
        Self {
            duration: std::array::from_fn(
                |i| metrics::histogram!(REDIS_OPERATION_DURATION_SECONDS, "operation" => OPS[i].name()),
            ),
            errors: std::array::from_fn(|i| {
                std::array::from_fn(
                    |k| metrics::counter!(REDIS_ERRORS_TOTAL, "operation" => OPS[i].name(), "kind" => KINDS[k]),
                )
            }),
            connected: metrics::gauge!(REDIS_CONNECTED),
        }
    }

    fn error(&self, op: Op, kind: &str) {
        let k = KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS.len() - 1);
        self.errors[op as usize][k].increment(1);
    }
}

struct Inner {
    conn: Conn,
    prefix: Arc<str>,
    username: Option<String>,
    addr: String,
    breaker: Arc<CircuitBreaker>,
    timeout: Duration,
    metrics: ClientMetrics,
    connected: AtomicBool,
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
    /// Connects (one attempt, bounded by the connect timeout, so a wrong password or an
    /// untrusted certificate is reported at once as [`RedisError::Auth`] / [`RedisError::Tls`]),
    /// loads the scripts, and starts the auto-reconnecting connection.
    pub async fn connect(config: RedisConfig) -> Result<Self, RedisError> {
        let addr = config.addr();
        let client = build_client(&config)?;
        let conn_cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout));
        let map_connect = |e: ::redis::RedisError| {
            connect_failure(e, config.username.as_deref(), config.tls.is_some(), &addr)
        };
        let timeout_err = |operation| RedisError::Timeout {
            operation,
            after: config.connect_timeout,
        };

        // The probe: one plain attempt, so configuration mistakes surface now and clearly
        // rather than after the connection manager's reconnect rounds.
        let mut probe = tokio::time::timeout(
            config.connect_timeout,
            client.get_multiplexed_async_connection_with_config(&conn_cfg),
        )
        .await
        .map_err(|_| timeout_err("connect"))?
        .map_err(&map_connect)?;
        // A single command first: its error (NOAUTH, NOPERM, ...) is reported as is, where a
        // pipeline would wrap it.
        tokio::time::timeout(
            config.response_timeout,
            ::redis::cmd("PING").query_async::<String>(&mut probe),
        )
        .await
        .map_err(|_| timeout_err("ping"))?
        .map_err(&map_connect)?;
        let mut load = ::redis::pipe();
        for s in SCRIPTS.all() {
            load.cmd("SCRIPT").arg("LOAD").arg(s.code);
        }
        tokio::time::timeout(
            config.response_timeout,
            load.query_async::<Vec<String>>(&mut probe),
        )
        .await
        .map_err(|_| timeout_err("script_load"))?
        .map_err(&map_connect)?;
        drop(probe);

        let r = config.reconnect;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_min_delay(r.min_delay)
            .set_max_delay(r.max_delay)
            .set_exponent_base(r.factor)
            .set_number_of_retries(r.max_retries);
        let conn = tokio::time::timeout(
            config.connect_timeout,
            ConnectionManager::new_with_config(client, manager_cfg),
        )
        .await
        .map_err(|_| timeout_err("connect"))?
        .map_err(&map_connect)?;

        Ok(Self::from_parts(Conn::Single(conn), &config, addr))
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
                breaker,
                timeout: config.response_timeout,
                metrics,
                connected: AtomicBool::new(true),
            }),
        }
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
    /// the deadline, recording the metrics. Idempotent operations get one immediate second try
    /// when the connection turned out to be dead.
    pub(crate) async fn exec<T: FromRedisValue>(
        &self,
        op: Op,
        cmd: &Cmd,
        script: Option<&LuaScript>,
    ) -> Result<T, RedisError> {
        let inner = &*self.inner;
        let permit = match inner.breaker.try_acquire() {
            Ok(p) => p,
            Err(open) => {
                inner.metrics.error(op, "circuit_open");
                return Err(RedisError::CircuitOpen(open));
            }
        };
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + inner.timeout;
        let mut tries_left = if op.idempotent() { 2 } else { 1 };
        let result = loop {
            tries_left -= 1;
            let r = match tokio::time::timeout_at(deadline, self.send::<T>(cmd, script)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(self.map_err(op, e)),
                Err(_) => Err(RedisError::Timeout {
                    operation: op.name(),
                    after: inner.timeout,
                }),
            };
            match r {
                Err(RedisError::Command { ref source, .. })
                    if tries_left > 0
                        && (source.is_connection_dropped() || source.is_io_error()) =>
                {
                    continue;
                }
                r => break r,
            }
        };
        inner.metrics.duration[op as usize].record(start.elapsed());
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

    async fn send<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        script: Option<&LuaScript>,
    ) -> ::redis::RedisResult<T> {
        let mut conn = self.inner.conn.clone();
        match cmd.query_async::<T>(&mut conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let Some(s) = script else { return Err(e) };
                ::redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(s.code)
                    .query_async::<String>(&mut conn)
                    .await?;
                cmd.query_async::<T>(&mut conn).await
            }
            r => r,
        }
    }

    fn map_err(&self, op: Op, e: ::redis::RedisError) -> RedisError {
        if is_auth_failure(&e) {
            RedisError::Auth {
                username: self.inner.username.clone(),
            }
        } else if e.is_timeout() {
            RedisError::Timeout {
                operation: op.name(),
                after: self.inner.timeout,
            }
        } else {
            RedisError::Command {
                operation: op.name(),
                source: e,
            }
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

fn build_client(config: &RedisConfig) -> Result<Client, RedisError> {
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
