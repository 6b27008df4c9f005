//! Errors of the Redis layer: each says what went wrong and what to fix, and none contains a
//! secret.

use std::path::PathBuf;
use std::time::Duration;

use crate::circuit_breaker::CircuitOpenError;
use crate::error::ConfigError;

/// An error from the Redis layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The configuration was rejected.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The connection URL could not be used.
    #[error(
        "malformed Redis URL: {reason}; expected `redis://[user[:password]@]host[:port][/db]` \
         (or `rediss://` for TLS), with special characters in the password percent-encoded"
    )]
    InvalidUrl {
        /// What is wrong with it (never the URL itself, which may hold a password).
        reason: &'static str,
    },
    /// A TLS file (CA certificates, client certificate or client key) could not be read or
    /// parsed, or the client key does not match the client certificate.
    #[error("cannot use the TLS {role} file `{path}`: {reason}")]
    TlsFile {
        /// What the file was for: `CA certificate`, `client certificate` or `client key`.
        role: &'static str,
        /// The file.
        path: PathBuf,
        /// Why (never the file's contents).
        reason: String,
    },
    /// The TLS handshake failed (e.g. the server's certificate is not trusted).
    #[error(
        "TLS handshake with Redis failed: {reason}; check that `ca_file` holds the CA that signed \
         the server's certificate, that the host name matches it, and (servers with \
         `tls-auth-clients`) that the client certificate is signed by a CA the server trusts"
    )]
    Tls {
        /// The TLS library's reason.
        reason: String,
    },
    /// The server refused the credentials.
    #[error(
        "Redis authentication failed{}: check the username and password (RedisConfig / REDIS_URL)",
        username.as_ref().map(|u| format!(" for user `{u}`")).unwrap_or_default()
    )]
    Auth {
        /// The user name that was tried, if any (the password is never kept here).
        username: Option<String>,
    },
    /// The sentinels refused the credentials of [`SentinelOptions`](super::SentinelOptions).
    #[error(
        "Redis Sentinel authentication failed{}: check the sentinels' username and password \
         (SentinelOptions; they may differ from the data nodes')",
        username.as_ref().map(|u| format!(" for user `{u}`")).unwrap_or_default()
    )]
    SentinelAuth {
        /// The sentinel user name that was tried, if any (never the password).
        username: Option<String>,
    },
    /// The server could not be reached.
    #[error("cannot connect to Redis at {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The cause.
        #[source]
        source: ::redis::RedisError,
    },
    /// An operation did not finish within its deadline.
    #[error(
        "Redis `{operation}` timed out after {after:?} (raise `response_timeout` if the server is just slow)"
    )]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The "redis" circuit breaker is open: calls are refused without touching the network.
    #[error(transparent)]
    CircuitOpen(#[from] CircuitOpenError),
    /// The server refused the command under its ACL rules (`NOPERM`): the user authenticated,
    /// but may not run this command or touch this key. The server answered, so the "redis"
    /// breaker does not count it; it is not transient (fix the ACL, not the password).
    #[error(
        "Redis refused `{operation}`{}: the ACL user lacks a permission ({detail}); grant it          with `ACL SETUSER` (command, key pattern `~prefix:*`) or use another user",
        username.as_ref().map(|u| format!(" for user `{u}`")).unwrap_or_default()
    )]
    PermissionDenied {
        /// The operation.
        operation: &'static str,
        /// The ACL user, if one was configured.
        username: Option<String>,
        /// The server's explanation (which command or key; never a credential).
        detail: String,
    },
    /// The server answered with an error reply of a known kind; [`ServerReply`] says which,
    /// whether the breaker counts it and whether a later try may succeed.
    #[error("Redis `{operation}` failed: {reply} (server said: {detail})")]
    Server {
        /// The operation.
        operation: &'static str,
        /// What kind of refusal.
        reply: ServerReply,
        /// The server's message, without its error code.
        detail: String,
    },
    /// A command failed (another server error reply, lost connection, ...).
    #[error("Redis `{operation}` failed: {source}")]
    Command {
        /// The operation.
        operation: &'static str,
        /// The cause.
        #[source]
        source: ::redis::RedisError,
    },
    /// A key could not be rendered.
    #[error("invalid Redis key: {reason}")]
    InvalidKey {
        /// Why.
        reason: &'static str,
    },
    /// An argument is out of range.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The lock is held by another owner.
    #[error("the lock is held by another owner; it expires in at most {retry_after:?}")]
    LockBusy {
        /// The lock's remaining time to live.
        retry_after: Duration,
    },
    /// The lock is no longer ours (it expired, or was released or taken over).
    #[error("the lock was lost: it expired or is held by another owner")]
    LockLost,
    /// The client was closed with [`RedisClient::close`](super::RedisClient::close) (by this
    /// handle or a clone of it): it sends no more commands.
    #[error("the Redis client was closed (RedisClient::close); it sends no more commands")]
    Closed,
    /// `conditional_update` found another version.
    #[error("version mismatch: expected {expected}, found {}", actual.map_or_else(|| "no value".to_owned(), |v| v.to_string()))]
    VersionMismatch {
        /// The version the caller expected.
        expected: u64,
        /// The stored version, `None` when the key does not exist.
        actual: Option<u64>,
    },
    /// A script returned something it never returns (a bug, or a foreign value under the key).
    #[error("unexpected reply from `{operation}`: {detail}")]
    UnexpectedReply {
        /// The operation.
        operation: &'static str,
        /// What was wrong.
        detail: &'static str,
    },
}

/// A server error reply the client recognises (the error code at the start of the reply).
///
/// Each says whether the "redis" circuit breaker counts it: a reply that says the server (or
/// the path to a writable master) cannot serve anyone right now counts; a reply about this one
/// command or key (the server is fine) does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerReply {
    /// `WRONGTYPE`: the key holds another data type. Not counted (the server is healthy; a
    /// caller or data bug), not transient.
    WrongType,
    /// `OOM`: `maxmemory` is reached and the eviction policy frees nothing. Counted (every write
    /// fails until memory is freed; calling on only adds load), transient.
    OutOfMemory,
    /// `READONLY`: the node is a replica (e.g. the old master after a failover). Counted (the
    /// path to the master is broken), transient: the connection is dropped and the next call
    /// reconnects (Sentinel asks again).
    ReadOnly,
    /// `BUSY`: a script or function runs past `busy-reply-threshold` and blocks the server.
    /// Counted (nothing is served meanwhile), transient.
    Busy,
    /// `LOADING`: the server is loading its dataset. Counted (nothing is served meanwhile),
    /// transient.
    Loading,
    /// `MASTERDOWN`: a replica lost its master (`replica-serve-stale-data no`). Counted,
    /// transient.
    MasterDown,
    /// `TRYAGAIN`: a Cluster slot is migrating. Counted, transient.
    TryAgain,
    /// `CLUSTERDOWN`: the Cluster cannot serve this slot. Counted, transient.
    ClusterDown,
}

impl ServerReply {
    /// The reply's error code, e.g. `"OOM"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::WrongType => "WRONGTYPE",
            Self::OutOfMemory => "OOM",
            Self::ReadOnly => "READONLY",
            Self::Busy => "BUSY",
            Self::Loading => "LOADING",
            Self::MasterDown => "MASTERDOWN",
            Self::TryAgain => "TRYAGAIN",
            Self::ClusterDown => "CLUSTERDOWN",
        }
    }

    /// The reply of `e`, if it is one of these.
    pub(crate) fn of(e: &::redis::RedisError) -> Option<Self> {
        Some(match e.code()? {
            "WRONGTYPE" => Self::WrongType,
            "OOM" => Self::OutOfMemory,
            "READONLY" => Self::ReadOnly,
            "BUSY" => Self::Busy,
            "LOADING" => Self::Loading,
            "MASTERDOWN" => Self::MasterDown,
            "TRYAGAIN" => Self::TryAgain,
            "CLUSTERDOWN" => Self::ClusterDown,
            _ => return None,
        })
    }

    /// Whether the "redis" breaker counts it as a failure (see each variant for why).
    pub fn counts_as_failure(self) -> bool {
        !matches!(self, Self::WrongType)
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(self) -> bool {
        !matches!(self, Self::WrongType)
    }
}

impl std::fmt::Display for ServerReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::WrongType => "WRONGTYPE: the key holds a value of another type",
            Self::OutOfMemory => {
                "OOM: the server reached `maxmemory` and evicts nothing (raise it or choose an \
                 eviction policy)"
            }
            Self::ReadOnly => "READONLY: the server is a replica; writes need the master",
            Self::Busy => "BUSY: a long-running script or function blocks the server",
            Self::Loading => "LOADING: the server is loading its dataset",
            Self::MasterDown => "MASTERDOWN: the replica lost its master",
            Self::TryAgain => "TRYAGAIN: the Cluster slot is being migrated",
            Self::ClusterDown => "CLUSTERDOWN: the Cluster cannot serve this slot",
        })
    }
}

impl RedisError {
    /// A short, stable name for metrics (`kind` label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) | Self::InvalidUrl { .. } | Self::TlsFile { .. } => "config",
            Self::Tls { .. } => "tls",
            Self::Auth { .. } | Self::SentinelAuth { .. } => "auth",
            Self::Connect { .. } => "connection",
            Self::Timeout { .. } => "timeout",
            Self::CircuitOpen(_) => "circuit_open",
            Self::PermissionDenied { .. } => "permission",
            Self::Command { source, .. } if is_transport(source) => "connection",
            Self::Command { .. } | Self::Server { .. } => "server",
            Self::InvalidKey { .. } | Self::InvalidArgument { .. } => "invalid_argument",
            Self::LockBusy { .. } | Self::LockLost | Self::VersionMismatch { .. } => "conflict",
            Self::UnexpectedReply { .. } => "protocol",
            Self::Closed => "closed",
        }
    }

    /// Whether trying again later may succeed (transport failures, timeouts, an open breaker);
    /// `false` for bad input, auth and logical conflicts.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::CircuitOpen(_) => true,
            Self::Server { reply, .. } => reply.is_transient(),
            Self::Command { source, .. } => is_transport(source),
            _ => false,
        }
    }

    /// Whether the failure says the server (or the path to it) is unhealthy: what the "redis"
    /// circuit breaker counts. A reply about this one command (NOPERM, WRONGTYPE, a script
    /// error, ...) is not: the server answered.
    pub(crate) fn is_infrastructure(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::Tls { .. }
            | Self::Auth { .. }
            | Self::SentinelAuth { .. } => true,
            Self::Server { reply, .. } => reply.counts_as_failure(),
            Self::Command { source, .. } => is_transport(source),
            _ => false,
        }
    }

    /// `e`, a failed command's error, typed: NOPERM, refused credentials, a deadline, a known
    /// server reply, or else [`RedisError::Command`].
    pub(crate) fn from_command(
        operation: &'static str,
        e: ::redis::RedisError,
        username: Option<&str>,
        timeout: Duration,
    ) -> Self {
        if is_noperm(&e) {
            Self::PermissionDenied {
                operation,
                username: username.map(str::to_owned),
                detail: server_detail(&e),
            }
        } else if is_auth_failure(&e) {
            Self::Auth {
                username: username.map(str::to_owned),
            }
        } else if e.is_timeout() {
            Self::Timeout {
                operation,
                after: timeout,
            }
        } else if let Some(reply) = ServerReply::of(&e) {
            Self::Server {
                operation,
                reply,
                detail: server_detail(&e),
            }
        } else {
            Self::Command {
                operation,
                source: e,
            }
        }
    }
}

/// The server's message without its code (for NOPERM: which command or key was refused).
fn server_detail(e: &::redis::RedisError) -> String {
    e.detail().unwrap_or_default().trim().to_owned()
}

fn is_transport(e: &::redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// An ACL refusal: authenticated, but not allowed this command or key.
pub(crate) fn is_noperm(e: &::redis::RedisError) -> bool {
    e.code() == Some("NOPERM")
        // Flattened into an I/O error's text by the cluster client (see `is_auth_failure`).
        || (e.kind() == ::redis::ErrorKind::Io && e.detail().is_some_and(|d| d.contains("NOPERM")))
}

/// Whether the server refused our credentials (not NOPERM: that user did authenticate).
pub(crate) fn is_auth_failure(e: &::redis::RedisError) -> bool {
    e.kind() == ::redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
        // The cluster client reports "Failed to create initial connections" as an I/O error
        // with the nodes' errors flattened into its text.
        || (e.kind() == ::redis::ErrorKind::Io
            && e.detail().is_some_and(|d| {
                ["AuthenticationFailed", "WRONGPASS", "NOAUTH"]
                    .iter()
                    .any(|m| d.contains(m))
            }))
}

/// A failed connection attempt, typed: refused credentials are [`RedisError::Auth`], an ACL
/// refusal [`RedisError::PermissionDenied`], a failed handshake (with TLS on)
/// [`RedisError::Tls`], anything else [`RedisError::Connect`].
pub(crate) fn connect_failure(
    e: ::redis::RedisError,
    username: Option<&str>,
    tls: bool,
    addr: &str,
) -> RedisError {
    if is_noperm(&e) {
        RedisError::PermissionDenied {
            operation: "connect",
            username: username.map(str::to_owned),
            detail: server_detail(&e),
        }
    } else if is_auth_failure(&e) {
        RedisError::Auth {
            username: username.map(str::to_owned),
        }
    } else if let Some(reason) = tls.then(|| tls_failure(&e)).flatten() {
        RedisError::Tls { reason }
    } else {
        RedisError::Connect {
            addr: addr.to_owned(),
            source: e,
        }
    }
}

/// The TLS library's error, if `e` was caused by one.
pub(crate) fn tls_failure(e: &::redis::RedisError) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        cur = err.source();
    }
    // Fallback for wrappers that hide the source: rustls's messages are distinctive (a refused
    // client certificate arrives as "received fatal alert: CertificateRequired" / "UnknownCA").
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    ["certificate", "handshake", "fatal alert", "unknownca"]
        .iter()
        .any(|m| lower.contains(m))
        .then_some(text)
}

impl crate::retry::Retryable for RedisError {
    fn is_retryable(&self) -> bool {
        self.is_transient()
    }

    /// An open breaker says when it may let calls through again.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::CircuitOpen(open) => open.retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Retryable;

    #[test]
    fn flattened_connect_errors_are_still_typed() {
        // What the cluster client reports when every seed refused the password.
        let e = ::redis::RedisError::from((
            ::redis::ErrorKind::Io,
            "Failed to create initial connections",
            "Io: Password authentication failed - AuthenticationFailed".to_owned(),
        ));
        assert!(is_auth_failure(&e));
        assert!(matches!(
            connect_failure(e, Some("app"), true, "x:1"),
            RedisError::Auth { username: Some(u) } if u == "app"
        ));
        // A refused client certificate, as a text-only I/O error.
        let e = ::redis::RedisError::from(std::io::Error::other(
            "received fatal alert: CertificateRequired",
        ));
        assert!(!is_auth_failure(&e));
        assert!(matches!(
            connect_failure(e, None, true, "x:1"),
            RedisError::Tls { .. }
        ));
        let refused =
            ::redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            connect_failure(refused, None, true, "x:1"),
            RedisError::Connect { .. }
        ));
        let e = RedisError::SentinelAuth { username: None };
        assert_eq!(e.kind(), "auth");
        assert!(e.is_infrastructure() && !e.is_transient());
    }

    #[test]
    fn transient_errors_are_retryable_and_bad_input_is_not() {
        let timeout = RedisError::Timeout {
            operation: "get",
            after: Duration::from_secs(1),
        };
        assert!(timeout.is_retryable() && timeout.is_infrastructure());
        assert_eq!(timeout.kind(), "timeout");
        let open = RedisError::CircuitOpen(CircuitOpenError {
            name: "redis".into(),
            retry_after: Some(Duration::from_secs(3)),
        });
        assert!(open.is_retryable());
        assert_eq!(open.retry_after(), Some(Duration::from_secs(3)));
        assert!(
            !open.is_infrastructure(),
            "a rejection is not a new failure"
        );
        for e in [
            RedisError::Auth { username: None },
            RedisError::LockLost,
            RedisError::InvalidArgument {
                name: "ttl",
                reason: "must be at least 1 ms",
            },
        ] {
            assert!(!e.is_retryable(), "{e:?}");
        }
        let refused = RedisError::Command {
            operation: "get",
            source: ::redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            )),
        };
        assert!(refused.is_retryable() && refused.is_infrastructure());
        assert_eq!(refused.kind(), "connection");
        let wrongtype = RedisError::Command {
            operation: "get",
            source: ::redis::RedisError::from((::redis::ErrorKind::UnexpectedReturnType, "x")),
        };
        assert!(!wrongtype.is_retryable() && !wrongtype.is_infrastructure());
    }

    /// LOADING needs a dataset large enough to take a while to load, so the classification from
    /// the reply's code is checked here (the other replies are produced for real in
    /// tests/redis_recovery.rs).
    #[test]
    fn every_known_server_reply_is_typed_and_classified() {
        let reply = |line: &str| {
            // The parser turns `-CODE detail` into a server error, as on the wire.
            let v = ::redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
            let ::redis::Value::ServerError(se) = v else {
                panic!("not a server error: {v:?}")
            };
            RedisError::from_command("get", se.into(), Some("app"), Duration::from_secs(1))
        };
        for (line, expected, counted) in [
            (
                "WRONGTYPE Operation against a key",
                ServerReply::WrongType,
                false,
            ),
            ("OOM command not allowed", ServerReply::OutOfMemory, true),
            ("READONLY You can't write", ServerReply::ReadOnly, true),
            (
                "BUSY Redis is busy running a script",
                ServerReply::Busy,
                true,
            ),
            (
                "LOADING Redis is loading the dataset in memory",
                ServerReply::Loading,
                true,
            ),
            (
                "MASTERDOWN Link with MASTER is down",
                ServerReply::MasterDown,
                true,
            ),
            (
                "TRYAGAIN Multiple keys request",
                ServerReply::TryAgain,
                true,
            ),
            (
                "CLUSTERDOWN The cluster is down",
                ServerReply::ClusterDown,
                true,
            ),
        ] {
            let e = reply(line);
            let RedisError::Server {
                reply: got,
                detail,
                operation,
            } = &e
            else {
                panic!("{line}: {e:?}")
            };
            assert_eq!(*got, expected, "{line}");
            assert_eq!(*operation, "get");
            assert!(
                line.ends_with(detail.as_str()) && !detail.is_empty(),
                "{detail}"
            );
            assert_eq!(e.is_infrastructure(), counted, "{line}");
            assert_eq!(e.is_transient(), counted, "{line}");
            assert_eq!(e.kind(), "server");
            assert!(e.to_string().contains(expected.code()), "{e}");
        }
        let e = reply("NOPERM User app has no permissions to run the 'get' command");
        assert!(
            matches!(&e, RedisError::PermissionDenied { username: Some(u), detail, .. }
                if u == "app" && detail.contains("'get'")),
            "{e:?}"
        );
        assert!(!e.is_infrastructure() && !e.is_transient());
        assert!(!e.to_string().contains("password"), "{e}");
        // Credentials refused are still Auth.
        assert!(matches!(
            reply("WRONGPASS invalid username-password pair"),
            RedisError::Auth { .. }
        ));
        // Any other reply stays a plain, uncounted command error.
        let e = reply("ERR unknown command");
        assert!(matches!(e, RedisError::Command { .. }) && !e.is_infrastructure());
    }
}
