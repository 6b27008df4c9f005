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
//! [`MASTER_CHECK_INTERVAL`] and drops the connection when the address changed; it ends when
//! the client is dropped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisFuture,
    ServerErrorKind, Value,
};
use arc_swap::ArcSwapOption;

use super::client::RedisClient;
use super::cluster::{Conn, load_scripts, nodelay, reject_tls};
use super::config::RedisConfig;
use super::error::RedisError;

struct Shared {
    /// Discovery is serialised: one caller asks the sentinels, the others wait (within their
    /// deadlines) and then use its connection.
    client: tokio::sync::Mutex<SentinelClient>,
    /// The current master's connection and address; `None` until discovered, or after it
    /// failed or the sentinels named another master.
    current: ArcSwapOption<(MultiplexedConnection, (String, u16))>,
    conn_cfg: AsyncConnectionConfig,
    db: i64,
}

/// A connection to the master named by Sentinel, re-discovered after a failover.
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    shared: Arc<Shared>,
}

impl SentinelConnection {
    async fn connection(&self) -> ::redis::RedisResult<MultiplexedConnection> {
        if let Some(c) = self.shared.current.load_full() {
            return Ok(c.0.clone());
        }
        let mut client = self.shared.client.lock().await;
        // Someone else may have discovered it while we waited for the lock.
        if let Some(c) = self.shared.current.load_full() {
            return Ok(c.0.clone());
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

    /// Forget `failed` (if it is still the current one) so the next call re-discovers.
    fn invalidate(&self, e: &::redis::RedisError) {
        if needs_rediscovery(e) {
            tracing::warn!(error = %e, "Redis master connection failed; asking Sentinel again");
            self.shared.current.store(None);
        }
    }
}

/// How often the background task asks a sentinel where the master is.
pub const MASTER_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Asks the sentinels (in turn) for the master's address every [`MASTER_CHECK_INTERVAL`] and
/// drops the current connection when it points elsewhere. Ends when the client is dropped.
async fn watch_master(
    shared: Weak<Shared>,
    sentinels: Vec<Client>,
    master_name: String,
    cfg: AsyncConnectionConfig,
) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut next = 0usize;
    loop {
        tokio::time::sleep(MASTER_CHECK_INTERVAL).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
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
            MASTER_CHECK_INTERVAL,
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
    /// `master_name`, and follows it through failovers. The config's credentials and db apply
    /// to the master (the sentinels themselves are reached without auth), and its key prefix,
    /// timeouts and breaker as usual; its host and port are not used. TLS is not supported
    /// with Sentinel yet.
    pub async fn connect_sentinel<I, S>(
        config: RedisConfig,
        master_name: &str,
        sentinels: I,
    ) -> Result<Self, RedisError>
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        reject_tls(&config, "sentinel")?;
        if master_name.is_empty() {
            return Err(RedisError::Config(crate::error::ConfigError::new(
                "master_name",
                "must not be empty",
            )));
        }
        let addrs: Vec<ConnectionAddr> = sentinels
            .into_iter()
            .map(|(h, p)| ConnectionAddr::Tcp(h.into(), p))
            .collect();
        let sentinel_addrs = addrs.clone();
        if addrs.is_empty() {
            return Err(RedisError::Config(crate::error::ConfigError::new(
                "sentinels",
                "at least one sentinel address is required",
            )));
        }
        let label = format!("sentinel master `{master_name}`");
        let connect_err = |e| RedisError::Connect {
            addr: label.clone(),
            source: e,
        };
        let mut b = SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)
            .map_err(connect_err)?
            .set_client_to_redis_db(config.db)
            .set_client_to_redis_tcp_settings(nodelay())
            .set_client_to_sentinel_tcp_settings(nodelay());
        if let Some(u) = &config.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &config.password {
            b = b.set_client_to_redis_password(p.expose());
        }
        let client = b.build().map_err(connect_err)?;
        let conn = SentinelConnection {
            shared: Arc::new(Shared {
                client: tokio::sync::Mutex::new(client),
                current: ArcSwapOption::empty(),
                conn_cfg: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout)),
                db: config.db,
            }),
        };
        // Discover now, so a wrong name or unreachable sentinels are reported at once.
        tokio::time::timeout(config.connect_timeout, conn.connection())
            .await
            .map_err(|_| RedisError::Timeout {
                operation: "connect",
                after: config.connect_timeout,
            })?
            .map_err(|e| {
                if super::error::is_auth_failure(&e) {
                    RedisError::Auth {
                        username: config.username.clone(),
                    }
                } else {
                    RedisError::Connect {
                        addr: label.clone(),
                        source: e,
                    }
                }
            })?;
        let watcher_clients = sentinel_clients(&sentinel_addrs);
        tokio::spawn(watch_master(
            Arc::downgrade(&conn.shared),
            watcher_clients,
            master_name.to_owned(),
            AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout)),
        ));
        Ok(RedisClient::from_parts(
            Conn::Sentinel(conn),
            &config,
            label,
        ))
    }
}

fn sentinel_clients(addrs: &[ConnectionAddr]) -> Vec<Client> {
    addrs
        .iter()
        .filter_map(|a| {
            let info = ::redis::IntoConnectionInfo::into_connection_info(a.clone()).ok()?;
            Client::open(info.set_tcp_settings(nodelay())).ok()
        })
        .collect()
}
