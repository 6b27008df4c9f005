//! The default transient classifier: I/O kinds, database codes, erased error chains, Redis.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use resilience::RateLimited;
use resilience::retry::Retryable;
use resilience::retry::classify::{
    is_transient_error, is_transient_io_kind, is_transient_mysql_code, is_transient_mysql_name,
    is_transient_sqlite_code, is_transient_sqlite_name, is_transient_sqlstate, retry_after_of,
};
use resilience::timeout::TimeoutError;

#[test]
fn io_kinds() {
    use io::ErrorKind as K;
    for k in [
        K::ConnectionRefused,
        K::ConnectionReset,
        K::ConnectionAborted,
        K::TimedOut,
        K::BrokenPipe,
        K::Interrupted,
        K::WouldBlock,
        K::UnexpectedEof,
        K::NotConnected,
        K::AddrInUse,
        K::AddrNotAvailable,
    ] {
        assert!(is_transient_io_kind(k), "{k:?}");
        assert!(io::Error::from(k).is_retryable(), "{k:?}");
    }
    for k in [
        K::NotFound,
        K::PermissionDenied,
        K::InvalidInput,
        K::InvalidData,
        K::AlreadyExists,
        K::Unsupported,
    ] {
        assert!(!is_transient_io_kind(k), "{k:?}");
        assert!(!io::Error::from(k).is_retryable(), "{k:?}");
    }
}

#[test]
fn sqlstates() {
    for code in [
        "57P03", "08006", "08001", "08003", "08004", "40001", "40P01", "40p01",
    ] {
        assert!(is_transient_sqlstate(code), "{code}");
    }
    for code in ["23505", "42P01", "22012", "", "4000", "400011"] {
        assert!(!is_transient_sqlstate(code), "{code}");
    }
}

#[test]
fn mysql_codes() {
    for code in [1213, 1205, 1040] {
        assert!(is_transient_mysql_code(code), "{code}");
    }
    for code in [1062, 1146, 1045, 0] {
        assert!(!is_transient_mysql_code(code), "{code}");
    }
    assert!(is_transient_mysql_name("ER_LOCK_DEADLOCK"));
    assert!(is_transient_mysql_name("ER_LOCK_WAIT_TIMEOUT"));
    assert!(is_transient_mysql_name("ER_CON_COUNT_ERROR"));
    assert!(!is_transient_mysql_name("ER_DUP_ENTRY"));
}

#[test]
fn sqlite_codes() {
    assert!(is_transient_sqlite_code(5));
    assert!(is_transient_sqlite_code(6));
    assert!(is_transient_sqlite_code(517)); // SQLITE_BUSY_SNAPSHOT
    assert!(is_transient_sqlite_code(262)); // SQLITE_LOCKED_SHAREDCACHE
    for code in [0, 1, 19, 2067] {
        assert!(!is_transient_sqlite_code(code), "{code}");
    }
    assert!(is_transient_sqlite_name("SQLITE_BUSY"));
    assert!(is_transient_sqlite_name("SQLITE_LOCKED"));
    assert!(is_transient_sqlite_name("SQLITE_BUSY_TIMEOUT"));
    assert!(!is_transient_sqlite_name("SQLITE_BUSYNESS"));
    assert!(!is_transient_sqlite_name("SQLITE_CONSTRAINT"));
}

/// A wrapper error with a source, like an application's own error types.
#[derive(Debug)]
struct Wrapped(Box<dyn Error + Send + Sync>);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request failed")
    }
}

impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

#[test]
fn erased_errors_walk_the_source_chain() {
    let deep: Box<dyn Error + Send + Sync> = Box::new(Wrapped(Box::new(io::Error::from(
        io::ErrorKind::ConnectionReset,
    ))));
    assert!(deep.is_retryable());
    let plain: Box<dyn Error + Send + Sync> = "bad request".into();
    assert!(!plain.is_retryable());
    let denied: Box<dyn Error> = Box::new(Wrapped(Box::new(io::Error::from(
        io::ErrorKind::PermissionDenied,
    ))));
    assert!(!denied.is_retryable());

    // An io::Error carrying a custom payload: the payload is inspected too.
    let io_with_payload = io::Error::other(Wrapped(Box::new(TimeoutError {
        after: Duration::from_secs(1),
    })));
    assert!(io_with_payload.is_retryable());

    // A rate limiter's rejection deep in the chain is transient and carries its hint.
    let limited: Box<dyn Error + Send + Sync> = Box::new(Wrapped(Box::new(RateLimited {
        retry_after: Duration::from_millis(1500),
    })));
    assert!(limited.is_retryable());
    assert_eq!(limited.retry_after(), Some(Duration::from_millis(1500)));
    assert_eq!(retry_after_of(&*deep), None);
    assert!(is_transient_error(&TimeoutError {
        after: Duration::ZERO
    }));
}

#[test]
fn anyhow_errors_walk_the_chain() {
    let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("sending");
    assert!(e.is_retryable());
    let e = anyhow::anyhow!("invalid argument");
    assert!(!e.is_retryable());
}

#[test]
fn toolkit_errors() {
    let r = RateLimited {
        retry_after: Duration::from_secs(3),
    };
    assert!(r.is_retryable());
    assert_eq!(r.retry_after(), Some(Duration::from_secs(3)));
    assert!(
        TimeoutError {
            after: Duration::ZERO
        }
        .is_retryable()
    );
}

#[test]
fn io_errors_made_from_rejections_keep_their_meaning() {
    use resilience::BulkheadFull;
    // `#[rate_limit]` on an `io::Result` fn: the rejection travels inside the io::Error, and the
    // classifier still finds it and its wait.
    let limited: std::io::Error = RateLimited {
        retry_after: Duration::from_secs(2),
    }
    .into();
    assert!(limited.is_retryable());
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
    assert!(limited.to_string().contains("rate limited"), "{limited}");

    let full: std::io::Error = BulkheadFull::QueueFull {
        max_concurrent: 2,
        max_queued: 0,
    }
    .into();
    assert_eq!(full.kind(), std::io::ErrorKind::Other);
    assert!(full.get_ref().is_some_and(|e| e.is::<BulkheadFull>()));

    // An open breaker's refusal is not worth an immediate retry (README, stacking order).
    let open: std::io::Error = resilience::CircuitOpenError {
        name: "payments".into(),
        retry_after: Some(Duration::from_secs(30)),
    }
    .into();
    assert!(!open.is_retryable());
}
