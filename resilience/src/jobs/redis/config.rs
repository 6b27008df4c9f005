//! [`RedisJobsConfig`]: where the queues live (one server, a Cluster, or the master a Sentinel
//! names), under which BullMQ prefix, and whether to fall back to memory.

use std::fmt;

use bullmq::options::{RedisConnectionOptions, TlsCerts};

use super::super::memory::MemoryBroker;
use crate::ConfigError;
use crate::redis::{RedisConfig, RedisError, SentinelOptions};

/// The BullMQ prefix used when the key prefix is empty.
const DEFAULT_PREFIX: &str = "jobs";

/// Where a queue's Redis is, for [`Queue::connect`](super::super::Queue::connect). Build it
/// with [`RedisJobsConfig::builder`]. `Debug` never shows a password.
///
/// ```
/// use resilience::jobs::redis::RedisJobsConfig;
/// use resilience::redis::RedisConfig;
///
/// let redis = RedisConfig::builder().key_prefix("nova:prod").build()?;
/// let config = RedisJobsConfig::builder(redis).build()?;
/// // Our `:` becomes `/` (BullMQ forbids `:` in a prefix), then `/jobs`.
/// assert_eq!(config.bullmq_prefix(), "nova/prod/jobs");
/// assert_eq!(config.bullmq_queue_name("emails"), "emails");
/// # Ok::<(), resilience::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisJobsConfig {
    pub(crate) redis: RedisConfig,
    pub(crate) topology: Topology,
    pub(crate) prefix: String,
    pub(crate) fallback: Option<MemoryBroker>,
}

/// One server, a Cluster (seed nodes), or the master the sentinels name.
#[derive(Clone, Debug)]
pub(crate) enum Topology {
    Single,
    Cluster(Vec<(String, u16)>),
    Sentinel(SentinelOptions),
}

impl fmt::Debug for RedisJobsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // RedisConfig and SentinelOptions redact their passwords themselves.
        f.debug_struct("RedisJobsConfig")
            .field("redis", &self.redis)
            .field("topology", &self.topology)
            .field("bullmq_prefix", &self.prefix)
            .field("fallback_to_memory", &self.fallback.is_some())
            .finish()
    }
}

impl RedisJobsConfig {
    /// A builder over `redis` (host, port, db, credentials, TLS, key prefix, connect timeout).
    pub fn builder(redis: RedisConfig) -> RedisJobsConfigBuilder {
        RedisJobsConfigBuilder {
            redis,
            topology: Topology::Single,
            prefix: None,
            fallback: None,
        }
    }

    /// The BullMQ prefix (a Node process sharing the queues passes it as `prefix`): the key
    /// prefix with `:` turned into `/`, then `/jobs` (`jobs` when the key prefix is empty), or
    /// the one given to [`RedisJobsConfigBuilder::bullmq_prefix`].
    pub fn bullmq_prefix(&self) -> &str {
        &self.prefix
    }

    /// The queue name BullMQ uses for our queue `name` (a Node process passes it as the queue
    /// name): `name` itself, or `{name}` on a Cluster, so that all of a queue's keys share one
    /// hash slot.
    pub fn bullmq_queue_name(&self, name: &str) -> String {
        match self.topology {
            Topology::Cluster(_) => format!("{{{name}}}"),
            _ => name.to_owned(),
        }
    }

    /// Whether the queues are on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.topology, Topology::Cluster(_))
    }

    /// bullmq's connection options for `(host, port)` (the config's own address, or the master
    /// a Sentinel named), or for the Cluster's seeds. Reads the TLS files.
    pub(crate) fn bullmq_connection(
        &self,
        addr: Option<(&str, u16)>,
    ) -> Result<RedisConnectionOptions, RedisError> {
        let c = &self.redis;
        let mut o = RedisConnectionOptions::new();
        if let Some(u) = &c.username {
            o = o.username(u.clone());
        }
        if let Some(p) = &c.password {
            o = o.password(p.expose());
        }
        if let Some(tls) = &c.tls {
            // Our reader checks the files (naming the bad one) and installs the crypto provider.
            let certs = crate::redis::tls_certificates(tls)?;
            let (client_cert, client_key) = match certs.client_tls {
                Some(ct) => (Some(ct.client_cert), Some(ct.client_key)),
                None => (None, None),
            };
            o = o.tls(true).tls_certs(TlsCerts {
                root_cert: certs.root_cert,
                client_cert,
                client_key,
            });
        }
        match &self.topology {
            Topology::Cluster(seeds) => {
                let scheme = if c.tls.is_some() { "rediss" } else { "redis" };
                o = o.cluster_nodes(
                    seeds
                        .iter()
                        .map(|(h, p)| format!("{scheme}://{}:{p}", url_host(h))),
                );
            }
            _ => {
                let (host, port) = addr.unwrap_or((&c.host, c.port));
                // Checked by the builder: 0..=255.
                let db = u8::try_from(c.db).unwrap_or_default();
                o = o.host(host).port(port).db(db);
            }
        }
        Ok(o)
    }
}

/// A host as it goes into a URL (IPv6 in brackets).
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Builder for [`RedisJobsConfig`].
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Clone)]
pub struct RedisJobsConfigBuilder {
    redis: RedisConfig,
    topology: Topology,
    prefix: Option<String>,
    fallback: Option<MemoryBroker>,
}

impl fmt::Debug for RedisJobsConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisJobsConfigBuilder")
            .field("redis", &self.redis)
            .field("topology", &self.topology)
            .field("bullmq_prefix", &self.prefix)
            .field("fallback_to_memory", &self.fallback.is_some())
            .finish()
    }
}

impl RedisJobsConfigBuilder {
    /// Redis Cluster: the seed nodes (`(host, port)`; the rest of the topology is learnt from
    /// them). Queue names are then wrapped as `{<queue>}` so that each queue's keys share one
    /// slot. Credentials and TLS of the [`RedisConfig`] apply to every node; its db must be 0.
    pub fn cluster<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = (S, u16)>,
        S: Into<String>,
    {
        self.topology = Topology::Cluster(nodes.into_iter().map(|(h, p)| (h.into(), p)).collect());
        self
    }

    /// Redis Sentinel: the master is looked up through the sentinels when the queue is built
    /// (and again when each worker starts); see the module docs for the failover limitation.
    pub fn sentinel(mut self, options: SentinelOptions) -> Self {
        self.topology = Topology::Sentinel(options);
        self
    }

    /// Overrides the BullMQ prefix derived from the key prefix: non-empty, without `:`,
    /// braces, whitespace or control characters (BullMQ's own default is `bull`).
    pub fn bullmq_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// When Redis cannot be reached while the queue is built, build it on `broker`'s in-memory
    /// backend instead ([`BackendKind::MemoryFallback`](super::super::BackendKind), a warning
    /// and `job_queue_fallback_total`). An explicit opt-in: those jobs live in this process
    /// only and are **lost when it exits**. Refused credentials or a bad TLS file never fall
    /// back (they are configuration errors).
    pub fn fallback_to_memory(mut self, broker: &MemoryBroker) -> Self {
        self.fallback = Some(broker.clone());
        self
    }

    /// Checks and builds the configuration.
    pub fn build(self) -> Result<RedisJobsConfig, ConfigError> {
        if !(0..=255).contains(&self.redis.db) {
            return Err(ConfigError::new(
                "db",
                "must be 0 to 255 for job queues (bullmq-official takes a u8)",
            ));
        }
        if let Topology::Cluster(seeds) = &self.topology {
            if seeds.is_empty() {
                return Err(ConfigError::new(
                    "cluster",
                    "at least one seed node is required",
                ));
            }
            if seeds.iter().any(|(h, p)| h.is_empty() || *p == 0) {
                return Err(ConfigError::new(
                    "cluster",
                    "every seed node needs a host and a non-zero port",
                ));
            }
            if self.redis.db != 0 {
                return Err(ConfigError::new(
                    "db",
                    "must be 0 with Redis Cluster (it has only one database)",
                ));
            }
        }
        let prefix = match self.prefix {
            Some(p) => {
                validate_bullmq_prefix(&p)?;
                p
            }
            None => derive_prefix(&self.redis.key_prefix),
        };
        Ok(RedisJobsConfig {
            redis: self.redis,
            topology: self.topology,
            prefix,
            fallback: self.fallback,
        })
    }
}

/// `nova:prod` → `nova/prod/jobs`; empty → `jobs`. Our key prefixes are `[A-Za-z0-9_.-]` parts
/// joined by `:`, so the mapping is one to one.
fn derive_prefix(key_prefix: &str) -> String {
    if key_prefix.is_empty() {
        DEFAULT_PREFIX.to_owned()
    } else {
        format!("{}/{DEFAULT_PREFIX}", key_prefix.replace(':', "/"))
    }
}

fn validate_bullmq_prefix(p: &str) -> Result<(), ConfigError> {
    if p.is_empty()
        || p.chars()
            .any(|c| matches!(c, ':' | '{' | '}') || c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::new(
            "bullmq_prefix",
            "must be non-empty, without `:`, braces, whitespace or control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis() -> RedisConfig {
        RedisConfig::builder().build().unwrap()
    }

    #[test]
    fn prefix_rule() {
        assert_eq!(derive_prefix(""), "jobs");
        assert_eq!(derive_prefix("nova"), "nova/jobs");
        assert_eq!(derive_prefix("nova:prod"), "nova/prod/jobs");
        let c = RedisJobsConfig::builder(redis())
            .bullmq_prefix("bull")
            .build()
            .unwrap();
        assert_eq!(c.bullmq_prefix(), "bull");
        for bad in ["", "a:b", "{x}", "a b", "a\nb"] {
            let e = RedisJobsConfig::builder(redis())
                .bullmq_prefix(bad)
                .build()
                .unwrap_err();
            assert_eq!(e.field, "bullmq_prefix", "{bad:?}");
        }
    }

    #[test]
    fn cluster_wraps_the_queue_name_and_needs_db_0() {
        let c = RedisJobsConfig::builder(redis())
            .cluster([("127.0.0.1", 7000u16)])
            .build()
            .unwrap();
        assert!(c.is_cluster());
        assert_eq!(c.bullmq_queue_name("emails"), "{emails}");
        let o = c.bullmq_connection(None).unwrap();
        assert_eq!(o.cluster_nodes, ["redis://127.0.0.1:7000"]);
        let e = RedisJobsConfig::builder(RedisConfig::builder().db(3).build().unwrap())
            .cluster([("h", 1u16)])
            .build()
            .unwrap_err();
        assert_eq!(e.field, "db");
        let e = RedisJobsConfig::builder(redis())
            .cluster(Vec::<(String, u16)>::new())
            .build()
            .unwrap_err();
        assert_eq!(e.field, "cluster");
    }

    #[test]
    fn db_over_255_is_a_config_error() {
        let e = RedisJobsConfig::builder(RedisConfig::builder().db(256).build().unwrap())
            .build()
            .unwrap_err();
        assert_eq!(e.field, "db");
        let c = RedisJobsConfig::builder(RedisConfig::builder().db(255).build().unwrap())
            .build()
            .unwrap();
        assert_eq!(c.bullmq_connection(None).unwrap().db, Some(255));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = RedisJobsConfig::builder(
            RedisConfig::builder()
                .username("app")
                .password("hunter2")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
        let o = c.bullmq_connection(None).unwrap();
        assert_eq!(o.password.as_deref(), Some("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", RedisJobsConfig::builder(c.redis.clone())).contains("hunter2"));
    }
}
