//! Connecting: a quick probe of our own first (typed errors for refused credentials and bad
//! certificates, an unreachable server reported within the connect timeout), then bullmq's
//! connections, each bounded by the same timeout.

use std::future::Future;
use std::time::Duration;

use ::redis::cluster::ClusterClientBuilder;
use ::redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo};

use super::super::error::QueueError;
use super::config::{RedisJobsConfig, Topology};
use crate::redis::{RedisConfig, RedisError, build_client, connect_failure, resolve_master};

/// A connection failure as the queue reports it: the server could not be reached (or did not
/// answer in time) → [`QueueError::Unavailable`], the only case the memory fallback covers;
/// anything else (credentials, TLS, ACL, configuration) → [`QueueError::Redis`].
pub(crate) fn queue_error(e: RedisError) -> QueueError {
    let transport = match &e {
        RedisError::Connect { .. } | RedisError::Timeout { .. } | RedisError::CircuitOpen(_) => {
            true
        }
        RedisError::Command { source, .. } => is_transport(source),
        _ => false,
    };
    if transport {
        QueueError::Unavailable(e.to_string())
    } else {
        QueueError::Redis(e)
    }
}

fn is_transport(e: &::redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// A bullmq error as the queue reports it. bullmq's messages carry no credentials (its
/// connection URLs are never part of an error).
pub(crate) fn op_error(e: bullmq::Error) -> QueueError {
    match &e {
        bullmq::Error::Redis(r) if is_transport(r) => QueueError::Unavailable(e.to_string()),
        bullmq::Error::ConnectionClosed => QueueError::Unavailable(e.to_string()),
        _ => QueueError::Backend(e.to_string()),
    }
}

/// Runs `f` within `limit`, or reports Redis as unavailable.
pub(crate) async fn within<T>(
    limit: Duration,
    what: &'static str,
    f: impl Future<Output = Result<T, bullmq::Error>>,
) -> Result<T, QueueError> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(op_error),
        Err(_) => Err(QueueError::Unavailable(format!(
            "Redis did not answer `{what}` within {limit:?}"
        ))),
    }
}

/// The server to connect to: the config's own (`None`), or the master the sentinels name now.
pub(crate) async fn master_addr(
    config: &RedisJobsConfig,
) -> Result<Option<(String, u16)>, QueueError> {
    match &config.topology {
        Topology::Sentinel(options) => resolve_master(&config.redis, options)
            .await
            .map(Some)
            .map_err(queue_error),
        _ => Ok(None),
    }
}

/// Connects, authenticates and PINGs once, within the connect timeout.
pub(crate) async fn probe(
    config: &RedisJobsConfig,
    addr: Option<&(String, u16)>,
) -> Result<(), QueueError> {
    let r = &config.redis;
    let timed_out = || RedisError::Timeout {
        operation: "connect",
        after: r.connect_timeout,
    };
    let outcome = match &config.topology {
        Topology::Cluster(seeds) => {
            tokio::time::timeout(r.connect_timeout, probe_cluster(r, seeds)).await
        }
        _ => {
            let mut single = r.clone();
            if let Some((host, port)) = addr {
                single.host.clone_from(host);
                single.port = *port;
            }
            tokio::time::timeout(r.connect_timeout, probe_single(&single)).await
        }
    };
    outcome
        .unwrap_or_else(|_| Err(timed_out()))
        .map_err(queue_error)
}

async fn probe_single(c: &RedisConfig) -> Result<(), RedisError> {
    let label = c.addr();
    let fail = |e| connect_failure(e, c.username.as_deref(), c.tls.is_some(), &label);
    let client = build_client(c)?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(c.connect_timeout))
        .set_response_timeout(Some(c.response_timeout));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(fail)?;
    ::redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(fail)?;
    Ok(())
}

async fn probe_cluster(c: &RedisConfig, seeds: &[(String, u16)]) -> Result<(), RedisError> {
    let label = seeds
        .first()
        .map(|(h, p)| format!("cluster via {h}:{p}"))
        .unwrap_or_default();
    let tls = c.tls.is_some();
    let fail = |e| connect_failure(e, c.username.as_deref(), tls, &label);
    let infos = seeds
        .iter()
        .map(|(h, p)| {
            let addr = if tls {
                ConnectionAddr::TcpTls {
                    host: h.clone(),
                    port: *p,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(h.clone(), *p)
            };
            addr.into_connection_info()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| RedisError::InvalidUrl {
            reason: "a cluster node address could not be used",
        })?;
    let mut b = ClusterClientBuilder::new(infos)
        .connection_timeout(c.connect_timeout)
        .response_timeout(c.response_timeout)
        .retries(1);
    if let Some(u) = &c.username {
        b = b.username(u);
    }
    if let Some(p) = &c.password {
        b = b.password(p.expose());
    }
    if let Some(t) = &c.tls {
        b = b.certs(crate::redis::tls_certificates(t)?);
    }
    let client = b.build().map_err(fail)?;
    let mut conn = client.get_async_connection().await.map_err(fail)?;
    ::redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(fail)?;
    Ok(())
}
