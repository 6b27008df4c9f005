//! Which errors are worth retrying: the [`Retryable`] trait and the default transient classifier.
//!
//! The crate depends on no database driver, so database codes are classified by plain helper
//! functions over the codes the drivers expose ([`is_transient_sqlstate`],
//! [`is_transient_mysql_code`], [`is_transient_sqlite_code`]); call them from your own
//! `Retryable` impl. Type-erased errors (`Box<dyn Error>`, `anyhow::Error`) are classified by
//! walking their `source()` chain ([`is_transient_error`]).

use std::error::Error;
use std::io;
use std::time::Duration;

use crate::rate_limit::RateLimited;
use crate::timeout::TimeoutError;

/// Classifies an error for the retry engine: worth another attempt, and after how long.
///
/// Implement it for your own error type; `retry`, [`RetryPolicy::run`](super::RetryPolicy::run)
/// and the `#[retry]` attribute require it. A policy's
/// [`retry_if`](super::RetryPolicyBuilder::retry_if) predicate, when set for the error type,
/// takes precedence over [`Retryable::is_retryable`].
///
/// ```
/// use std::time::Duration;
/// use resilience::retry::{classify, Retryable};
///
/// enum DbError { Sql { sqlstate: String }, Throttled { wait: Duration }, Invalid }
///
/// impl Retryable for DbError {
///     fn is_retryable(&self) -> bool {
///         match self {
///             DbError::Sql { sqlstate } => classify::is_transient_sqlstate(sqlstate),
///             DbError::Throttled { .. } => true,
///             DbError::Invalid => false,
///         }
///     }
///     fn retry_after(&self) -> Option<Duration> {
///         match self {
///             DbError::Throttled { wait } => Some(*wait),
///             _ => None,
///         }
///     }
/// }
/// assert!(DbError::Sql { sqlstate: "40001".into() }.is_retryable());
/// ```
pub trait Retryable {
    /// Whether another attempt may succeed (a transient failure).
    fn is_retryable(&self) -> bool;

    /// A wait the error itself asks for (an HTTP `Retry-After`, a rate limiter's hint). When
    /// `Some`, it replaces the computed backoff delay for the next wait.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Whether an I/O error kind is usually transient: connection refused / reset / aborted / not
/// connected, timed out, broken pipe, interrupted, would block, unexpected EOF, address in use /
/// not available, host or network unreachable or down, resource busy.
pub fn is_transient_io_kind(kind: io::ErrorKind) -> bool {
    use io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::TimedOut
            | K::BrokenPipe
            | K::Interrupted
            | K::WouldBlock
            | K::UnexpectedEof
            | K::AddrInUse
            | K::AddrNotAvailable
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::ResourceBusy
    )
}

/// PostgreSQL SQLSTATE codes treated as transient.
pub const TRANSIENT_SQLSTATES: &[&str] = &[
    "57P03", // cannot_connect_now (server starting up / shutting down)
    "08006", // connection_failure
    "08001", // sqlclient_unable_to_establish_sqlconnection
    "08003", // connection_does_not_exist
    "08004", // sqlserver_rejected_establishment_of_sqlconnection
    "40001", // serialization_failure
    "40P01", // deadlock_detected
];

/// Whether a SQLSTATE (PostgreSQL and the SQL standard) is transient: one of
/// [`TRANSIENT_SQLSTATES`]. Case-insensitive (`40p01` matches).
pub fn is_transient_sqlstate(code: &str) -> bool {
    TRANSIENT_SQLSTATES
        .iter()
        .any(|c| c.eq_ignore_ascii_case(code.trim()))
}

/// MySQL `ER_CON_COUNT_ERROR`: too many connections.
pub const MYSQL_ER_CON_COUNT_ERROR: u16 = 1040;
/// MySQL `ER_LOCK_WAIT_TIMEOUT`: lock wait timeout exceeded.
pub const MYSQL_ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// MySQL `ER_LOCK_DEADLOCK`: deadlock found when trying to get lock.
pub const MYSQL_ER_LOCK_DEADLOCK: u16 = 1213;

/// Whether a MySQL / MariaDB server error number is transient: `ER_LOCK_DEADLOCK` (1213),
/// `ER_LOCK_WAIT_TIMEOUT` (1205), `ER_CON_COUNT_ERROR` (1040).
pub fn is_transient_mysql_code(code: u16) -> bool {
    matches!(
        code,
        MYSQL_ER_LOCK_DEADLOCK | MYSQL_ER_LOCK_WAIT_TIMEOUT | MYSQL_ER_CON_COUNT_ERROR
    )
}

/// Whether a MySQL error symbol (as some drivers report it) is transient: `ER_LOCK_DEADLOCK`,
/// `ER_LOCK_WAIT_TIMEOUT` or `ER_CON_COUNT_ERROR`.
pub fn is_transient_mysql_name(name: &str) -> bool {
    matches!(
        name,
        "ER_LOCK_DEADLOCK" | "ER_LOCK_WAIT_TIMEOUT" | "ER_CON_COUNT_ERROR"
    )
}

/// SQLite `SQLITE_BUSY`.
pub const SQLITE_BUSY: i32 = 5;
/// SQLite `SQLITE_LOCKED`.
pub const SQLITE_LOCKED: i32 = 6;

/// Whether a SQLite result code is transient: `SQLITE_BUSY` (5) or `SQLITE_LOCKED` (6),
/// including their extended codes (`SQLITE_BUSY_SNAPSHOT` = 517, ...: the low byte is the
/// primary code).
pub fn is_transient_sqlite_code(code: i32) -> bool {
    matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)
}

/// Whether a SQLite result-code name is transient: `SQLITE_BUSY`, `SQLITE_LOCKED` or one of their
/// extended forms (`SQLITE_BUSY_TIMEOUT`, `SQLITE_LOCKED_SHAREDCACHE`, ...).
pub fn is_transient_sqlite_name(name: &str) -> bool {
    ["SQLITE_BUSY", "SQLITE_LOCKED"]
        .iter()
        .any(|p| name == *p || name.strip_prefix(p).is_some_and(|r| r.starts_with('_')))
}

/// Whether a Redis error is transient: a dropped or refused connection, an I/O error or timeout,
/// or a server reply the client is told to wait for or re-route (`TRYAGAIN`, `LOADING`,
/// `MASTERDOWN`, `CLUSTERDOWN`, `READONLY` after a failover). Authentication and parse errors
/// are not.
#[cfg(feature = "redis")]
pub fn is_transient_redis(err: &redis::RedisError) -> bool {
    use redis::{ErrorKind, RetryMethod};
    if err.is_connection_dropped() || err.is_connection_refusal() || err.is_timeout() {
        return true;
    }
    match err.kind() {
        ErrorKind::AuthenticationFailed | ErrorKind::Parse => false,
        ErrorKind::Io => !matches!(err.retry_method(), RetryMethod::NoRetry),
        _ => matches!(
            err.retry_method(),
            RetryMethod::WaitAndRetry
                | RetryMethod::RetryImmediately
                | RetryMethod::RefreshSlotsAndRetry
                | RetryMethod::ReconnectFromInitialConnections
        ),
    }
}

/// How deep [`is_transient_error`] follows `source()` chains (a guard against pathological ones).
const MAX_CHAIN: usize = 32;

/// Whether a type-erased error is transient: walks the `source()` chain (and the payload of
/// `io::Error`s) looking for a transient `io::Error`, a [`TimeoutError`], a tokio
/// `Elapsed`, a [`RateLimited`] or (feature `redis`) a transient `redis::RedisError`.
pub fn is_transient_error(err: &(dyn Error + 'static)) -> bool {
    chain(err).any(is_transient_link)
}

/// The first Retry-After hint in a type-erased error's chain (from a [`RateLimited`]).
pub fn retry_after_of(err: &(dyn Error + 'static)) -> Option<Duration> {
    chain(err).find_map(|e| e.downcast_ref::<RateLimited>().map(|r| r.retry_after))
}

fn is_transient_link(e: &(dyn Error + 'static)) -> bool {
    if let Some(io) = e.downcast_ref::<io::Error>() {
        return is_transient_io_kind(io.kind());
    }
    #[cfg(feature = "redis")]
    if let Some(r) = e.downcast_ref::<redis::RedisError>() {
        return is_transient_redis(r);
    }
    e.is::<TimeoutError>() || e.is::<tokio::time::error::Elapsed>() || e.is::<RateLimited>()
}

/// The error, its sources, and the payloads of the `io::Error`s among them (which `source()`
/// skips).
fn chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&e: &&'a (dyn Error + 'static)| {
        e.downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref().map(|inner| inner as &(dyn Error + 'static)))
            .or_else(|| e.source())
    })
    .take(MAX_CHAIN)
}

impl Retryable for io::Error {
    fn is_retryable(&self) -> bool {
        is_transient_error(self)
    }
    fn retry_after(&self) -> Option<Duration> {
        retry_after_of(self)
    }
}

impl Retryable for io::ErrorKind {
    fn is_retryable(&self) -> bool {
        is_transient_io_kind(*self)
    }
}

impl Retryable for TimeoutError {
    fn is_retryable(&self) -> bool {
        true
    }
}

impl Retryable for tokio::time::error::Elapsed {
    fn is_retryable(&self) -> bool {
        true
    }
}

impl Retryable for RateLimited {
    fn is_retryable(&self) -> bool {
        true
    }
    fn retry_after(&self) -> Option<Duration> {
        Some(self.retry_after)
    }
}

#[cfg(feature = "redis")]
impl Retryable for redis::RedisError {
    fn is_retryable(&self) -> bool {
        is_transient_redis(self)
    }
}

macro_rules! erased {
    ($($ty:ty),*) => {$(
        impl Retryable for $ty {
            fn is_retryable(&self) -> bool {
                is_transient_error(&**self)
            }
            fn retry_after(&self) -> Option<Duration> {
                retry_after_of(&**self)
            }
        }
    )*};
}
erased!(
    Box<dyn Error + 'static>,
    Box<dyn Error + Send + 'static>,
    Box<dyn Error + Send + Sync + 'static>
);

#[cfg(feature = "anyhow")]
impl Retryable for anyhow::Error {
    fn is_retryable(&self) -> bool {
        is_transient_error(self.as_ref())
    }
    fn retry_after(&self) -> Option<Duration> {
        retry_after_of(self.as_ref())
    }
}

impl<T: Retryable + ?Sized> Retryable for &T {
    fn is_retryable(&self) -> bool {
        (**self).is_retryable()
    }
    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }
}

impl<T: Retryable + ?Sized> Retryable for std::sync::Arc<T> {
    fn is_retryable(&self) -> bool {
        (**self).is_retryable()
    }
    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }
}

#[cfg(all(test, feature = "redis"))]
mod redis_tests {
    use super::Retryable;

    #[test]
    fn redis_errors() {
        use redis::{ErrorKind, RedisError};
        use std::error::Error;
        use std::io;
        let dropped = RedisError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(dropped.is_retryable());
        let timeout = RedisError::from(io::Error::from(io::ErrorKind::TimedOut));
        assert!(timeout.is_retryable());
        let refused = RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(refused.is_retryable());
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert!(!auth.is_retryable());
        let client = RedisError::from((ErrorKind::Client, "bad argument"));
        assert!(!client.is_retryable());
        let boxed: Box<dyn Error + Send + Sync> = Box::new(dropped);
        assert!(boxed.is_retryable());
    }
}
