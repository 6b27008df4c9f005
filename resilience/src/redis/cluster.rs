//! Redis Cluster: [`RedisClient::connect_cluster`], and the connection kinds a [`RedisClient`]
//! can sit on (one server, a Cluster, a Sentinel-managed master).
//!
//! On a Cluster every script keeps its keys in one slot (the key encoding wraps multi-key
//! families in one hash tag), `SCRIPT LOAD` goes to every node, and a node that lost its
//! scripts (a promoted replica, a restart) answers NOSCRIPT, which reloads them.

use std::time::Duration;

use ::redis::aio::ConnectionLike;
use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;
use ::redis::io::tcp::TcpSettings;
use ::redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};

use super::client::RedisClient;
use super::config::RedisConfig;
use super::connection::SingleConnection;
use super::error::{RedisError, connect_failure};
use super::scripts::SCRIPTS;
use super::sentinel::SentinelConnection;
use super::tls::tls_certificates;
use crate::error::ConfigError;

/// The connection behind a [`RedisClient`]; cheap to clone (all variants are handles to shared,
/// multiplexed connections).
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server; connects lazily and again after a loss.
    Single(SingleConnection),
    /// A Redis Cluster: commands routed by slot, topology refreshed on MOVED / failures.
    Cluster(ClusterConnection),
    /// The master named by Sentinel, re-discovered after a failover.
    Sentinel(SentinelConnection),
}

/// `host:port` as a TCP or (verified) TLS address.
pub(crate) fn node_addr(host: String, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

pub(crate) fn nodelay() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

impl RedisClient {
    /// Connects to a Redis Cluster. `nodes` (`(host, port)`) are seeds: any reachable one is
    /// enough to learn the topology; the config's own host and port are tried too. The
    /// config's credentials (`requirepass` or ACL user), TLS (CA file, client certificate; for
    /// `tls-cluster yes`, the nodes' certificates must name the addresses the cluster
    /// announces, usually IPs), key prefix, timeouts and breaker apply to every node; the db
    /// must be 0. Scripts are loaded on every node.
    pub async fn connect_cluster<I, S>(config: RedisConfig, nodes: I) -> Result<Self, RedisError>
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        if config.db != 0 {
            return Err(RedisError::Config(ConfigError::new(
                "db",
                "must be 0 with Redis Cluster (it has only one database)",
            )));
        }
        let mut seeds: Vec<(String, u16)> = nodes.into_iter().map(|(h, p)| (h.into(), p)).collect();
        seeds.push((config.host.clone(), config.port));
        let tls = config.tls.is_some();
        let infos = seeds
            .iter()
            .map(|(h, p)| node_addr(h.clone(), *p, tls).into_connection_info())
            .collect::<Result<Vec<ConnectionInfo>, _>>()
            .map_err(|_| RedisError::InvalidUrl {
                reason: "a cluster node address could not be used",
            })?;
        let label = seeds
            .first()
            .map(|(h, p)| format!("cluster via {h}:{p}"))
            .unwrap_or_default();
        let mut b = ClusterClientBuilder::new(infos)
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.response_timeout)
            .tcp_settings(nodelay())
            // Our own deadline bounds every call; a few quick retries ride over MOVED/ASK and a
            // failover's first moments.
            .retries(3)
            .min_retry_wait(20)
            .max_retry_wait(200);
        if let Some(u) = &config.username {
            b = b.username(u);
        }
        if let Some(p) = &config.password {
            b = b.password(p.expose());
        }
        if let Some(t) = &config.tls {
            // Also for the nodes learnt from the topology, not only the seeds.
            b = b.certs(tls_certificates(t)?);
        }
        let client = b.build().map_err(|e| RedisError::Connect {
            addr: label.clone(),
            source: e,
        })?;
        let timeout_err = |operation| RedisError::Timeout {
            operation,
            after: config.connect_timeout,
        };
        let connect_err = |e| connect_failure(e, config.username.as_deref(), tls, &label);
        let conn = tokio::time::timeout(config.connect_timeout, client.get_async_connection())
            .await
            .map_err(|_| timeout_err("connect"))?
            .map_err(connect_err)?;
        load_scripts(&mut conn.clone(), config.connect_timeout)
            .await
            .map_err(|e| match e {
                Some(e) => connect_err(e),
                None => timeout_err("script_load"),
            })?;
        Ok(RedisClient::from_parts(Conn::Cluster(conn), &config, label))
    }
}

/// `SCRIPT LOAD` of every script; on a Cluster it goes to every node. `None`: timed out.
pub(crate) async fn load_scripts<C: ConnectionLike>(
    conn: &mut C,
    within: Duration,
) -> Result<(), Option<::redis::RedisError>> {
    tokio::time::timeout(within, async {
        for s in SCRIPTS.all() {
            ::redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(s.code)
                .query_async::<Value>(conn)
                .await?;
        }
        Ok(())
    })
    .await
    .map_err(|_| None)?
    .map_err(Some)
}
