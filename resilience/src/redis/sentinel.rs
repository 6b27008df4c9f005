//! Redis Sentinel: [`RedisClient::connect_sentinel`] finds the master through the sentinels and
//! finds it again after a failover.
//!
//! An auto-reconnecting connection alone would go back to the old address (dead, or demoted to
//! a read-only replica). So the connection is dropped when it fails at the transport level or
//! answers `READONLY`, and the next call asks the sentinels again (the `redis` crate checks the
//! named master's `ROLE` before using it). Every call keeps its deadline, discovery included.
//!
//! A graceful failover leaves the old master up and writable for several seconds (Sentinel
//! demotes it only after a while), so errors alone would keep a client writing to it. A
//! background task therefore asks a sentinel for the master's address every
//! [`SentinelOptionsBuilder::master_check_interval`] (default
//! [`DEFAULT_MASTER_CHECK_INTERVAL`]) and drops the connection when the address changed; it
//! ends when the client is dropped.
//!
//! Sentinels may have their own credentials (`requirepass` on the sentinels, which differ from
//! the data nodes' `requirepass` / `masterauth`) and TLS: see [`SentinelOptions`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisFuture, ServerErrorKind, TlsCertificates, TlsMode, Value,
};
use arc_swap::ArcSwapOption;

use super::client::RedisClient;
use super::cluster::{Conn, load_scripts, node_addr, nodelay};
use super::config::{RedisConfig, TlsOptions};
use super::connection::{PROBE_WHEN_IDLE_FOR, is_open};
use super::error::{RedisError, connect_failure};
use super::secret::Secret;
use super::tls::tls_certificates;
use crate::error::ConfigError;

/// How often the background task asks a sentinel where the master is, unless
/// [`SentinelOptionsBuilder::master_check_interval`] says otherwise.
pub const DEFAULT_MASTER_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// The shortest master check interval accepted (a tighter loop would only load the sentinels).
const MIN_MASTER_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// Where the sentinels are and how to reach them, for
/// [`RedisClient::connect_sentinel_with`]. Build it with [`SentinelOptions::builder`].
/// `Debug` never shows the password.
#[derive(Clone)]
pub struct SentinelOptions {
    master_name: String,
    sentinels: Vec<(String, u16)>,
    username: Option<String>,
    password: Option<Secret>,
    tls: Option<bool>,
    master_check_interval: Duration,
}

impl std::fmt::Debug for SentinelOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelOptions")
            .field("master_name", &self.master_name)
            .field("sentinels", &self.sentinels)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("master_check_interval", &self.master_check_interval)
            .finish()
    }
}

impl SentinelOptions {
    /// Options for the master the sentinels at `sentinels` (`(host, port)`) call
    /// `master_name`. Defaults: no sentinel auth, TLS to the sentinels exactly when the
    /// [`RedisConfig`] has TLS (with its CA file and client certificate), master check every
    /// [`DEFAULT_MASTER_CHECK_INTERVAL`].
    pub fn builder<I, S>(master_name: impl Into<String>, sentinels: I) -> SentinelOptionsBuilder
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        SentinelOptionsBuilder {
            inner: SentinelOptions {
                master_name: master_name.into(),
                sentinels: sentinels.into_iter().map(|(h, p)| (h.into(), p)).collect(),
                username: None,
                password: None,
                tls: None,
                master_check_interval: DEFAULT_MASTER_CHECK_INTERVAL,
            },
        }
    }

    /// The master's name.
    pub fn master_name(&self) -> &str {
        &self.master_name
    }

    /// How often the sentinels are asked where the master is.
    pub fn master_check_interval(&self) -> Duration {
        self.master_check_interval
    }
}

/// Builder for [`SentinelOptions`].
#[derive(Clone, Debug)]
pub struct SentinelOptionsBuilder {
    inner: SentinelOptions,
}

impl SentinelOptionsBuilder {
    /// ACL user on the sentinels (not on the data nodes: those use the [`RedisConfig`]'s).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.inner.username = Some(username.into());
        self
    }

    /// The sentinels' password (their `requirepass`; may differ from the data nodes').
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.inner.password = Some(password.into());
        self
    }

    /// Whether the sentinels are reached over TLS (default: when the [`RedisConfig`] has TLS).
    /// TLS to the sentinels uses the config's CA file and client certificate, or the system's
    /// trust store when the config has no TLS options.
    pub fn tls(mut self, on: bool) -> Self {
        self.inner.tls = Some(on);
        self
    }

    /// How often a background task asks a sentinel for the master's address, to leave a
    /// demoted master quickly after a graceful failover (at least 10 ms; default
    /// [`DEFAULT_MASTER_CHECK_INTERVAL`]).
    pub fn master_check_interval(mut self, interval: Duration) -> Self {
        self.inner.master_check_interval = interval;
        self
    }

    /// Checks and builds the options.
    pub fn build(self) -> Result<SentinelOptions, ConfigError> {
        let o = self.inner;
        if o.master_name.is_empty() {
            return Err(ConfigError::new("master_name", "must not be empty"));
        }
        if o.sentinels.is_empty() {
            return Err(ConfigError::new(
                "sentinels",
                "at least one sentinel address is required",
            ));
        }
        if o.sentinels.iter().any(|(h, p)| h.is_empty() || *p == 0) {
            return Err(ConfigError::new(
                "sentinels",
                "every sentinel needs a host and a non-zero port",
            ));
        }
        if o.username.as_deref() == Some("") {
            return Err(ConfigError::new("sentinel.username", "must not be empty"));
        }
        if o.username.is_some() && o.password.is_none() {
            return Err(ConfigError::new(
                "sentinel.password",
                "is required when a sentinel username is set",
            ));
        }
        if o.master_check_interval < MIN_MASTER_CHECK_INTERVAL {
            return Err(ConfigError::new(
                "master_check_interval",
                "must be at least 10 ms",
            ));
        }
        Ok(o)
    }
}

struct Shared {
    /// Discovery is serialised: one caller asks the sentinels, the others wait (within their
    /// deadlines) and then use its connection.
    client: tokio::sync::Mutex<SentinelClient>,
    /// The current master's connection and address; `None` until discovered, or after it
    /// failed or the sentinels named another master.
    current: ArcSwapOption<(MultiplexedConnection, (String, u16))>,
    conn_cfg: AsyncConnectionConfig,
    db: i64,
    /// When a command was last sent, in ms since `epoch` (see [`PROBE_WHEN_IDLE_FOR`]).
    last_used_ms: AtomicU64,
    epoch: Instant,
    /// Set by [`RedisClient::close`](super::RedisClient::close): no more discovery, and the
    /// master watcher ends.
    closed: AtomicBool,
}

/// A connection to the master named by Sentinel, re-discovered after a failover.
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    shared: Arc<Shared>,
}

impl SentinelConnection {
    async fn connection(&self) -> ::redis::RedisResult<MultiplexedConnection> {
        if let Some(c) = self.shared.current.load_full() {
            // As for one server: a connection idle for a while is checked first, so a command
            // is not sent on one the master closed meanwhile (a restart without failover).
            let now = u64::try_from(self.shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            let last = self.shared.last_used_ms.load(Ordering::Relaxed);
            if now.saturating_sub(last) < PROBE_WHEN_IDLE_FOR.as_millis() as u64
                || is_open(&c.0).await
            {
                if last != now {
                    self.shared.last_used_ms.store(now, Ordering::Relaxed);
                }
                return Ok(c.0.clone());
            }
            let _ = self.shared.current.compare_and_swap(&c, None);
        }
        let mut client = self.shared.client.lock().await;
        // Someone else may have discovered it while we waited for the lock.
        if let Some(c) = self.shared.current.load_full() {
            return Ok(c.0.clone());
        }
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(::redis::RedisError::from((
                ::redis::ErrorKind::Client,
                "the client was closed",
            )));
        }
        let master: Client = client.async_get_client().await?;
        let addr = match master.get_connection_info().addr() {
            ConnectionAddr::Tcp(h, p)
            | ConnectionAddr::TcpTls {
                host: h, port: p, ..
            } => (h.clone(), *p),
            _ => (String::new(), 0),
        };
        let conn = master
            .get_multiplexed_async_connection_with_config(&self.shared.conn_cfg)
            .await?;
        let mut probe = conn.clone();
        // A fresh master (promoted replica, restart) may lack our scripts; NOSCRIPT would
        // reload them anyway, but loading now saves the first caller a round trip.
        let _ = load_scripts(&mut probe, Duration::from_secs(1)).await;
        self.shared
            .current
            .store(Some(Arc::new((conn.clone(), addr))));
        Ok(conn)
    }

    /// Stops discovery and drops the master connection (calls holding it finish on it); the
    /// master watcher ends at its next tick.
    pub(crate) async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // After a discovery in progress has stored its connection.
        let _one_at_a_time = self.shared.client.lock().await;
        self.shared.current.store(None);
    }

    /// Forget `failed` (if it is still the current one) so the next call re-discovers.
    fn invalidate(&self, e: &::redis::RedisError) {
        if needs_rediscovery(e) {
            tracing::warn!(error = %e, "Redis master connection failed; asking Sentinel again");
            self.shared.current.store(None);
        }
    }
}

/// Asks the sentinels (in turn) for the master's address every `interval` and drops the
/// current connection when it points elsewhere. Ends when the client is dropped.
async fn watch_master(
    shared: Weak<Shared>,
    sentinels: Vec<Client>,
    master_name: String,
    cfg: AsyncConnectionConfig,
    interval: Duration,
    query_timeout: Duration,
) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut next = 0usize;
    loop {
        tokio::time::sleep(interval).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let Some(current) = shared.current.load_full() else {
            continue;
        };
        if conn.is_none() && !sentinels.is_empty() {
            let s = &sentinels[next % sentinels.len()];
            next = next.wrapping_add(1);
            conn = s
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
                .ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        let reply = tokio::time::timeout(
            query_timeout,
            ::redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&master_name)
                .query_async::<Option<(String, u16)>>(c),
        )
        .await;
        match reply {
            Ok(Ok(Some(addr))) if addr != current.1 => {
                tracing::warn!(
                    master = %master_name,
                    "Sentinel names a new Redis master; switching to it"
                );
                // Only if nobody replaced it meanwhile.
                let _ = shared.current.compare_and_swap(&current, None);
            }
            Ok(Ok(_)) => {}
            // This sentinel is unwell: try the next one next time.
            _ => conn = None,
        }
    }
}

fn needs_rediscovery(e: &::redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut c = self.connection().await?;
            let r = c.req_packed_command(cmd).await;
            if let Err(e) = &r {
                self.invalidate(e);
            }
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut c = self.connection().await?;
            let r = c.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &r {
                self.invalidate(e);
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.db
    }
}

impl RedisClient {
    /// Connects to the master that the sentinels at `sentinels` (`(host, port)`) name
    /// `master_name`, and follows it through failovers: [`connect_sentinel_with`] with the
    /// default [`SentinelOptions`] (sentinels without auth, TLS to them when the config has
    /// TLS).
    ///
    /// [`connect_sentinel_with`]: Self::connect_sentinel_with
    pub async fn connect_sentinel<I, S>(
        config: RedisConfig,
        master_name: &str,
        sentinels: I,
    ) -> Result<Self, RedisError>
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        let options = SentinelOptions::builder(master_name, sentinels).build()?;
        Self::connect_sentinel_with(config, options).await
    }

    /// Connects to the master named by the sentinels of `options`, and follows it through
    /// failovers. The config's credentials, db and TLS (CA file, client certificate) apply to
    /// the master; the sentinels use the credentials and TLS choice of `options`. The key
    /// prefix, timeouts and breaker apply as usual; the config's host and port are not used.
    ///
    /// With TLS, the data nodes' certificates must name the address the sentinels announce
    /// (usually an IP: `subjectAltName = IP:...`).
    pub async fn connect_sentinel_with(
        config: RedisConfig,
        options: SentinelOptions,
    ) -> Result<Self, RedisError> {
        let Discovery {
            client,
            addrs,
            sentinel_certs,
            label,
        } = Discovery::new(&config, &options)?;
        let conn = SentinelConnection {
            shared: Arc::new(Shared {
                client: tokio::sync::Mutex::new(client),
                current: ArcSwapOption::empty(),
                conn_cfg: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout)),
                db: config.db,
                last_used_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                closed: AtomicBool::new(false),
            }),
        };
        // Discover now, so a wrong name, wrong credentials or unreachable sentinels are
        // reported at once.
        let discovered = tokio::time::timeout(config.connect_timeout, conn.connection())
            .await
            .map_err(|_| RedisError::Timeout {
                operation: "connect",
                after: config.connect_timeout,
            })?;
        let watcher_clients = sentinel_clients(&addrs, &options, sentinel_certs.as_ref());
        if let Err(e) = discovered {
            return Err(discovery_failure(e, &config, &options, &watcher_clients, &label).await);
        }
        tokio::spawn(watch_master(
            Arc::downgrade(&conn.shared),
            watcher_clients,
            options.master_name.clone(),
            AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout)),
            options.master_check_interval,
            config.response_timeout,
        ));
        Ok(RedisClient::from_parts(
            Conn::Sentinel(conn),
            &config,
            label,
        ))
    }
}

/// A sentinel client for `options` with the config's credentials and TLS for the master, and
/// what else discovery needs.
struct Discovery {
    client: SentinelClient,
    addrs: Vec<ConnectionAddr>,
    sentinel_certs: Option<TlsCertificates>,
    label: String,
}

impl Discovery {
    fn new(config: &RedisConfig, options: &SentinelOptions) -> Result<Self, RedisError> {
        let master_name = options.master_name.as_str();
        let sentinel_tls = options.tls.unwrap_or(config.tls.is_some());
        let data_certs = config.tls.as_ref().map(tls_certificates).transpose()?;
        // The sentinels share the data nodes' PKI; without TLS options, the system's roots.
        let sentinel_certs = match (sentinel_tls, &data_certs) {
            (false, _) => None,
            (true, Some(certs)) => Some(certs.clone()),
            (true, None) => Some(tls_certificates(&TlsOptions::default())?),
        };
        let addrs: Vec<ConnectionAddr> = options
            .sentinels
            .iter()
            .map(|(h, p)| node_addr(h.clone(), *p, sentinel_tls))
            .collect();
        let label = format!("sentinel master `{master_name}`");
        let build_err = |e| RedisError::Connect {
            addr: label.clone(),
            source: e,
        };
        let mut b =
            SentinelClientBuilder::new(addrs.clone(), master_name, SentinelServerType::Master)
                .map_err(build_err)?
                .set_client_to_redis_db(config.db)
                .set_client_to_redis_tcp_settings(nodelay())
                .set_client_to_sentinel_tcp_settings(nodelay());
        if let Some(u) = &config.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &config.password {
            b = b.set_client_to_redis_password(p.expose());
        }
        if let Some(certs) = &data_certs {
            b = b
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_redis_certificates(certs.clone());
        }
        if let Some(u) = &options.username {
            b = b.set_client_to_sentinel_username(u);
        }
        if let Some(p) = &options.password {
            b = b.set_client_to_sentinel_password(p.expose());
        }
        if let Some(certs) = &sentinel_certs {
            b = b.set_client_to_sentinel_certificates(certs.clone());
        }
        let client = b.build().map_err(build_err)?;
        Ok(Self {
            client,
            addrs,
            sentinel_certs,
            label,
        })
    }
}

/// A failed discovery, typed. The error does not say whether a sentinel or the master refused
/// the credentials: a sentinel is asked directly.
async fn discovery_failure(
    e: ::redis::RedisError,
    config: &RedisConfig,
    options: &SentinelOptions,
    sentinels: &[Client],
    label: &str,
) -> RedisError {
    // TLS to the sentinels or to the master.
    let tls = options.tls.unwrap_or(config.tls.is_some()) || config.tls.is_some();
    let e = connect_failure(e, config.username.as_deref(), tls, label);
    if matches!(e, RedisError::Auth { .. })
        && sentinel_refuses(sentinels, config.connect_timeout).await
    {
        return RedisError::SentinelAuth {
            username: options.username.clone(),
        };
    }
    e
}

/// Asks the sentinels of `options` which server is the master now (checked by its `ROLE`,
/// with the config's credentials), for clients that connect to it by address (the job
/// queues). Bounded by the config's connect timeout; errors typed as for
/// [`RedisClient::connect_sentinel_with`].
#[cfg(feature = "jobs")]
pub(crate) async fn resolve_master(
    config: &RedisConfig,
    options: &SentinelOptions,
) -> Result<(String, u16), RedisError> {
    let Discovery {
        mut client,
        addrs,
        sentinel_certs,
        label,
    } = Discovery::new(config, options)?;
    let found = tokio::time::timeout(config.connect_timeout, client.async_get_client())
        .await
        .map_err(|_| RedisError::Timeout {
            operation: "connect",
            after: config.connect_timeout,
        })?;
    match found {
        Ok(master) => match master.get_connection_info().addr() {
            ConnectionAddr::Tcp(h, p)
            | ConnectionAddr::TcpTls {
                host: h, port: p, ..
            } => Ok((h.clone(), *p)),
            _ => Err(RedisError::InvalidUrl {
                reason: "the sentinels named a master that is not a TCP address",
            }),
        },
        Err(e) => {
            let clients = sentinel_clients(&addrs, options, sentinel_certs.as_ref());
            Err(discovery_failure(e, config, options, &clients, &label).await)
        }
    }
}

/// Whether the first sentinel refuses our credentials.
async fn sentinel_refuses(sentinels: &[Client], within: Duration) -> bool {
    let Some(client) = sentinels.first() else {
        return false;
    };
    let ping = async {
        let mut c = client.get_multiplexed_async_connection().await?;
        ::redis::cmd("PING").query_async::<Value>(&mut c).await
    };
    matches!(
        tokio::time::timeout(within, ping).await,
        Ok(Err(e)) if super::error::is_auth_failure(&e)
    )
}

/// Clients for the watcher: one per sentinel, with the sentinels' credentials and TLS.
fn sentinel_clients(
    addrs: &[ConnectionAddr],
    options: &SentinelOptions,
    certs: Option<&TlsCertificates>,
) -> Vec<Client> {
    let mut redis = RedisConnectionInfo::default();
    if let Some(u) = &options.username {
        redis = redis.set_username(u);
    }
    if let Some(p) = &options.password {
        redis = redis.set_password(p.expose());
    }
    addrs
        .iter()
        .filter_map(|a| {
            let info = a
                .clone()
                .into_connection_info()
                .ok()?
                .set_tcp_settings(nodelay())
                .set_redis_settings(redis.clone());
            match certs {
                Some(c) => Client::build_with_tls(info, c.clone()).ok(),
                None => Client::open(info).ok(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Duration::MAX` means "never check": the watcher sleeps (tokio saturates the deadline)
    /// and nothing overflows; below the floor is a typed error.
    #[tokio::test(start_paused = true)]
    async fn master_check_interval_extremes() {
        let o = SentinelOptions::builder("m", [("h", 1u16)])
            .master_check_interval(Duration::MAX)
            .build()
            .unwrap();
        assert_eq!(o.master_check_interval(), Duration::MAX);
        let e = SentinelOptions::builder("m", [("h", 1u16)])
            .master_check_interval(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.field, "master_check_interval");
        // The watcher's own sleep with that interval: pending, not a panic.
        let slept = tokio::time::timeout(
            Duration::from_secs(3600),
            tokio::time::sleep(o.master_check_interval()),
        )
        .await;
        assert!(slept.is_err());
    }
}
