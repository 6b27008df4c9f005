//! Client configuration: address, credentials, TLS, key prefix, timeouts, reconnect backoff.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::error::RedisError;
use super::keys::validate_prefix;
use super::secret::Secret;
use crate::circuit_breaker::CircuitBreaker;
use crate::error::ConfigError;

/// TLS options. Certificate verification is always on; with no `ca_file` the system's trust
/// store is used. Only file paths are kept here: the files are read when connecting, so no key
/// material lives in the configuration (and `Debug` shows paths only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate for mutual TLS (servers with `tls-auth-clients yes`).
    pub client_cert: Option<TlsClientCert>,
}

/// A client certificate and its private key, as PEM file paths (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClientCert {
    /// The certificate chain, end-entity certificate first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key_file: PathBuf,
}

/// How a one-server client reconnects in the background after losing its connection (or when
/// Redis was down at start-up): delays grow from `min_delay` by `factor` per attempt, capped at
/// `max_delay`, for `max_retries` attempts. Calls never wait for this round nor inherit its
/// errors: a call that finds no connection makes its own attempt. Any value the builder
/// accepts is safe (`Duration::MAX` delays saturate: "never").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectBackoff {
    /// First delay (at least 1 ms).
    pub min_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
    /// Growth per attempt (≥ 1).
    pub factor: f32,
    /// Attempts per reconnect round.
    pub max_retries: usize,
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            factor: 2.0,
            max_retries: 4,
        }
    }
}

/// Everything [`RedisClient::connect`](super::RedisClient::connect) needs. Build it with
/// [`RedisConfig::builder`] or [`RedisConfig::from_url`]. `Debug` never shows the password.
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) db: i64,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) tls: Option<TlsOptions>,
    pub(crate) key_prefix: Arc<str>,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) reconnect: ReconnectBackoff,
    pub(crate) breaker: Option<Arc<CircuitBreaker>>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("reconnect", &self.reconnect)
            .field(
                "breaker",
                &self.breaker.as_ref().map(|b| b.name().to_owned()),
            )
            .finish()
    }
}

impl RedisConfig {
    /// A builder with the defaults: `127.0.0.1:6379`, db 0, no auth, no TLS, no key prefix,
    /// connect timeout 5 s, response timeout 2 s, the global "redis" breaker.
    pub fn builder() -> RedisConfigBuilder {
        RedisConfigBuilder::default()
    }

    /// A builder preset from `redis://[user[:password]@]host[:port][/db]` (or `rediss://` for
    /// TLS). A malformed URL, or `rediss://...#insecure` (verification cannot be turned off),
    /// is an [`RedisError::InvalidUrl`]; the error never repeats the URL, which may hold a
    /// password.
    pub fn from_url(url: &str) -> Result<RedisConfigBuilder, RedisError> {
        use ::redis::{ConnectionAddr, IntoConnectionInfo};
        let scheme_ok = ["redis://", "rediss://", "valkey://", "valkeys://"]
            .iter()
            .any(|s| url.starts_with(s));
        if !scheme_ok {
            return Err(RedisError::InvalidUrl {
                reason: if url.contains("unix") {
                    "unix sockets are not supported"
                } else {
                    "the scheme must be `redis://` or `rediss://`"
                },
            });
        }
        let info = url
            .into_connection_info()
            .map_err(|_| RedisError::InvalidUrl {
                reason: "it could not be parsed (check the host, the port number and the db index)",
            })?;
        let mut b = RedisConfigBuilder::default();
        match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                b.host = host.clone();
                b.port = *port;
            }
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                if *insecure {
                    return Err(RedisError::InvalidUrl {
                        reason: "`#insecure` is not supported: TLS certificates are always \
                                 verified (use `ca_file` for a private CA)",
                    });
                }
                b.host = host.clone();
                b.port = *port;
                b.tls = Some(TlsOptions::default());
            }
            _ => {
                return Err(RedisError::InvalidUrl {
                    reason: "unix sockets are not supported",
                });
            }
        }
        if b.host.is_empty() {
            return Err(RedisError::InvalidUrl {
                reason: "the host is missing",
            });
        }
        let settings = info.redis_settings();
        b.db = settings.db();
        b.username = settings
            .username()
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        b.password = settings
            .password()
            .filter(|p| !p.is_empty())
            .map(Secret::new);
        Ok(b)
    }

    /// The key prefix (empty: none).
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Whether TLS is on.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The per-call deadline.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }
}

/// Builder for [`RedisConfig`].
#[derive(Clone)]
pub struct RedisConfigBuilder {
    host: String,
    port: u16,
    db: i64,
    username: Option<String>,
    password: Option<Secret>,
    tls: Option<TlsOptions>,
    key_prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    reconnect: ReconnectBackoff,
    breaker: Option<Arc<CircuitBreaker>>,
}

impl std::fmt::Debug for RedisConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfigBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl Default for RedisConfigBuilder {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 6379,
            db: 0,
            username: None,
            password: None,
            tls: None,
            key_prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(2),
            reconnect: ReconnectBackoff::default(),
            breaker: None,
        }
    }
}

impl RedisConfigBuilder {
    /// Host name or IP address (TLS verifies the certificate against it).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// TCP port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Database index.
    pub fn db(mut self, db: i64) -> Self {
        self.db = db;
        self
    }

    /// ACL user name.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Password (of the ACL user, or `requirepass`).
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Turn TLS on, verifying the server against the system's trust store.
    pub fn tls(mut self) -> Self {
        self.tls.get_or_insert_with(TlsOptions::default);
        self
    }

    /// Turn TLS on, trusting the CA certificates in this PEM file.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.get_or_insert_with(TlsOptions::default).ca_file = Some(path.into());
        self
    }

    /// Turn TLS on and present this client certificate (mutual TLS, for servers with
    /// `tls-auth-clients yes`): `cert_file` holds the PEM certificate chain, `key_file` its
    /// unencrypted PEM private key. Both are read (and checked to match) when connecting; a bad
    /// file is a [`RedisError::TlsFile`] that never shows the key.
    pub fn tls_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.tls.get_or_insert_with(TlsOptions::default).client_cert = Some(TlsClientCert {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        });
        self
    }

    /// Prefix of every key: `[A-Za-z0-9_.-]` parts joined by `:` (e.g. `nova` or `nova:v1`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Deadline of one connection attempt (TCP + TLS + AUTH); `Duration::MAX`: none.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Deadline of every call, connecting included: no call hangs longer. `Duration::MAX`:
    /// no deadline.
    pub fn response_timeout(mut self, d: Duration) -> Self {
        self.response_timeout = d;
        self
    }

    /// Reconnect backoff.
    pub fn reconnect(mut self, backoff: ReconnectBackoff) -> Self {
        self.reconnect = backoff;
        self
    }

    /// Use this breaker instead of the global "redis" one (e.g. a private one in tests).
    pub fn circuit_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Checks and builds the configuration.
    pub fn build(self) -> Result<RedisConfig, ConfigError> {
        if self.host.is_empty() {
            return Err(ConfigError::new("host", "must not be empty"));
        }
        if self.port == 0 {
            return Err(ConfigError::new("port", "must not be 0"));
        }
        if self.db < 0 {
            return Err(ConfigError::new("db", "must not be negative"));
        }
        if self.username.as_deref() == Some("") {
            return Err(ConfigError::new("username", "must not be empty"));
        }
        if self.username.is_some() && self.password.is_none() {
            return Err(ConfigError::new(
                "password",
                "is required when a username is set (ACL users authenticate with both)",
            ));
        }
        validate_prefix(&self.key_prefix)?;
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "connect_timeout",
                "must be greater than zero",
            ));
        }
        if self.response_timeout.is_zero() {
            return Err(ConfigError::new(
                "response_timeout",
                "must be greater than zero",
            ));
        }
        let r = self.reconnect;
        // Below 1 ms (and a factor of 1) the background reconnect would spin while the server
        // is down.
        if r.min_delay < Duration::from_millis(1) {
            return Err(ConfigError::new(
                "reconnect.min_delay",
                "must be at least 1 ms",
            ));
        }
        if r.max_delay < r.min_delay {
            return Err(ConfigError::new(
                "reconnect.max_delay",
                "must be at least min_delay",
            ));
        }
        if !(r.factor.is_finite() && r.factor >= 1.0) {
            return Err(ConfigError::new(
                "reconnect.factor",
                "must be a finite number ≥ 1",
            ));
        }
        if r.max_retries == 0 {
            return Err(ConfigError::new(
                "reconnect.max_retries",
                "must be at least 1",
            ));
        }
        Ok(RedisConfig {
            host: self.host,
            port: self.port,
            db: self.db,
            username: self.username,
            password: self.password,
            tls: self.tls,
            key_prefix: Arc::from(self.key_prefix),
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            reconnect: self.reconnect,
            breaker: self.breaker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parses_and_debug_redacts() {
        let c = RedisConfig::from_url("redis://bob:s3cr%40t@example.com:6380/2")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(c.addr(), "example.com:6380");
        assert_eq!(c.db, 2);
        assert_eq!(c.username.as_deref(), Some("bob"));
        assert_eq!(c.password.as_ref().unwrap().expose(), "s3cr@t");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr"), "{dbg}");
        assert!(c.tls.is_none());
        assert!(
            RedisConfig::from_url("rediss://h")
                .unwrap()
                .build()
                .unwrap()
                .tls()
        );
    }

    #[test]
    fn bad_urls_are_typed_errors_without_the_secret() {
        for url in [
            "http://x",
            "redis://:pw@host:notaport",
            "rediss://h/#insecure",
            "redis+unix:///tmp/x",
            "",
        ] {
            let e = RedisConfig::from_url(url).unwrap_err();
            assert!(matches!(e, RedisError::InvalidUrl { .. }), "{url}: {e:?}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn tls_options_combine_in_any_order() {
        let a = RedisConfig::builder()
            .tls_client_cert("c.pem", "k.pem")
            .tls_ca_file("ca.pem")
            .build()
            .unwrap();
        let b = RedisConfig::builder()
            .tls_ca_file("ca.pem")
            .tls_client_cert("c.pem", "k.pem")
            .tls()
            .build()
            .unwrap();
        assert_eq!(a.tls, b.tls);
        let tls = a.tls.unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert_eq!(
            tls.client_cert.unwrap().key_file,
            std::path::PathBuf::from("k.pem")
        );
    }

    #[test]
    fn builder_names_the_bad_field() {
        let e = RedisConfig::builder()
            .key_prefix("a b")
            .build()
            .unwrap_err();
        assert_eq!(e.field, "key_prefix");
        let e = RedisConfig::builder().username("u").build().unwrap_err();
        assert_eq!(e.field, "password");
        let e = RedisConfig::builder()
            .response_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.field, "response_timeout");
    }

    #[test]
    fn extreme_values_build_or_name_the_field() {
        let max = RedisConfig::builder()
            .connect_timeout(Duration::MAX)
            .response_timeout(Duration::MAX)
            .reconnect(ReconnectBackoff {
                min_delay: Duration::MAX,
                max_delay: Duration::MAX,
                factor: f32::MAX,
                max_retries: usize::MAX,
            })
            .build()
            .unwrap();
        assert_eq!(max.response_timeout(), Duration::MAX);
        for (backoff, field) in [
            (
                ReconnectBackoff {
                    min_delay: Duration::from_nanos(1),
                    ..ReconnectBackoff::default()
                },
                "reconnect.min_delay",
            ),
            (
                ReconnectBackoff {
                    factor: f32::NAN,
                    ..ReconnectBackoff::default()
                },
                "reconnect.factor",
            ),
            (
                ReconnectBackoff {
                    factor: f32::INFINITY,
                    ..ReconnectBackoff::default()
                },
                "reconnect.factor",
            ),
            (
                ReconnectBackoff {
                    max_retries: 0,
                    ..ReconnectBackoff::default()
                },
                "reconnect.max_retries",
            ),
        ] {
            let e = RedisConfig::builder()
                .reconnect(backoff)
                .build()
                .unwrap_err();
            assert_eq!(e.field, field);
        }
        let e = RedisConfig::builder()
            .connect_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.field, "connect_timeout");
    }
}
