//! Which `sqlx::Error`s are transient: [`Retryable`] for `sqlx::Error`.

use std::io;

use sqlx::error::DatabaseError;

use crate::retry::Retryable;
use crate::retry::classify::{
    is_transient_mysql_code, is_transient_sqlite_code, is_transient_sqlstate,
};

/// SQLSTATEs transient beyond [`classify::TRANSIENT_SQLSTATES`](crate::retry::classify::TRANSIENT_SQLSTATES):
/// `53300` too_many_connections, `57P01` admin_shutdown (also what a backend killed by
/// `pg_terminate_backend` reports), `57P02` crash_shutdown. The whole `08` class (connection
/// exceptions) is transient too.
pub const EXTRA_TRANSIENT_SQLSTATES: &[&str] = &["53300", "57P01", "57P02"];

/// MySQL / MariaDB server errors transient beyond the crate's classifier: `ER_SERVER_SHUTDOWN`
/// (1053) and MariaDB's `ER_CONNECTION_KILLED` (1927).
pub const EXTRA_TRANSIENT_MYSQL_CODES: &[u16] = &[1053, 1927];

/// Whether a SQLSTATE is transient for a database: the crate's list
/// ([`is_transient_sqlstate`]), [`EXTRA_TRANSIENT_SQLSTATES`], or any `08xxx` connection
/// exception.
pub fn is_transient_db_sqlstate(code: &str) -> bool {
    let code = code.trim();
    is_transient_sqlstate(code)
        || EXTRA_TRANSIENT_SQLSTATES
            .iter()
            .any(|c| c.eq_ignore_ascii_case(code))
        || (code.len() == 5 && code.starts_with("08"))
}

/// Whether a MySQL / MariaDB server error is transient: by number ([`is_transient_mysql_code`]
/// or [`EXTRA_TRANSIENT_MYSQL_CODES`]) or by its SQLSTATE (`40001`, which MySQL gives a deadlock).
pub fn is_transient_mysql_error(number: u16, sqlstate: Option<&str>) -> bool {
    is_transient_mysql_code(number)
        || EXTRA_TRANSIENT_MYSQL_CODES.contains(&number)
        || sqlstate.is_some_and(is_transient_db_sqlstate)
}

/// I/O error kinds that say the request was wrong rather than the connection unlucky.
fn is_permanent_io_kind(kind: io::ErrorKind) -> bool {
    use io::ErrorKind as K;
    matches!(
        kind,
        K::NotFound
            | K::PermissionDenied
            | K::InvalidInput
            | K::InvalidData
            | K::Unsupported
            | K::OutOfMemory
    )
}

/// Whether a database's own error is transient. The driver's error type decides how its code is
/// read: SQLite's is a result code, MySQL's a number with a SQLSTATE, anything else a SQLSTATE.
pub fn is_transient_database_error(err: &dyn DatabaseError) -> bool {
    #[cfg(feature = "sqlite")]
    if err
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
    {
        return err
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(is_transient_sqlite_code);
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = err.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return is_transient_mysql_error(my.number(), my.code());
    }
    let Some(code) = err.code() else {
        return false;
    };
    // A driver unknown here: a SQLSTATE, or a bare SQLite result code.
    match code.parse::<i32>() {
        Ok(n) if code.len() < 5 => is_transient_sqlite_code(n),
        _ => is_transient_db_sqlstate(&code),
    }
}

/// Transient: the transient SQLSTATEs (`57P03`, `08xxx`, `40001`, `40P01`, `53300`, `57P01`,
/// `57P02`), MySQL deadlock / lock wait timeout / too many connections / server shutdown,
/// SQLite `BUSY` / `LOCKED` (and their extended codes); I/O errors (a lost or refused
/// connection: all kinds but not-found, permission-denied, invalid input/data, unsupported,
/// out-of-memory); `PoolTimedOut`; `WorkerCrashed` (SQLite's connection thread died: the pool
/// opens a new one). Everything else — `PoolClosed`, `RowNotFound`, decoding, configuration,
/// TLS, protocol errors, other database errors — is not.
impl Retryable for sqlx::Error {
    fn is_retryable(&self) -> bool {
        use sqlx::Error as E;
        match self {
            E::Database(db) => is_transient_database_error(&**db),
            E::Io(e) => !is_permanent_io_kind(e.kind()),
            E::PoolTimedOut | E::WorkerCrashed => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error as StdError;
    use std::fmt;

    use sqlx::error::ErrorKind;

    use super::*;

    /// A database error with a given code, as a driver unknown to the classifier reports it.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl fmt::Display for Coded {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "code {}", self.0)
        }
    }
    impl StdError for Coded {}
    impl DatabaseError for Coded {
        fn message(&self) -> &str {
            "coded"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn db(code: &'static str) -> sqlx::Error {
        sqlx::Error::from(Coded(code))
    }

    #[test]
    fn sqlstates() {
        for code in [
            "57P03", "08006", "08001", "08003", "08004", "08000", "08P01", "40001", "40P01",
            "53300", "57P01", "57P02", "40p01",
        ] {
            assert!(db(code).is_retryable(), "{code}");
        }
        for code in ["23505", "42P01", "42601", "22012", "57014", "0800", "XX000"] {
            assert!(!db(code).is_retryable(), "{code}");
        }
    }

    #[test]
    fn bare_sqlite_codes() {
        for code in ["5", "6", "517", "261", "262"] {
            assert!(db(code).is_retryable(), "{code}");
        }
        for code in ["1", "19", "2067", "14"] {
            assert!(!db(code).is_retryable(), "{code}");
        }
    }

    #[test]
    fn mysql_numbers() {
        for (n, state) in [
            (1213, Some("40001")),
            (1205, Some("HY000")),
            (1040, Some("08004")),
            (1053, Some("08S01")),
            (1927, Some("70100")),
            (9999, Some("40001")),
        ] {
            assert!(is_transient_mysql_error(n, state), "{n}");
        }
        for (n, state) in [(1062, Some("23000")), (1064, Some("42000")), (1146, None)] {
            assert!(!is_transient_mysql_error(n, state), "{n}");
        }
    }

    #[test]
    fn variants() {
        use sqlx::Error as E;
        assert!(E::PoolTimedOut.is_retryable());
        assert!(E::WorkerCrashed.is_retryable());
        assert!(!E::PoolClosed.is_retryable());
        assert!(!E::RowNotFound.is_retryable());
        assert!(!E::Protocol("garbage".into()).is_retryable());
        assert!(!E::InvalidArgument("x".into()).is_retryable());
        assert!(!E::ColumnNotFound("x".into()).is_retryable());
        assert!(
            !E::TypeNotFound {
                type_name: "x".into()
            }
            .is_retryable()
        );
        assert!(!E::BeginFailed.is_retryable());
        assert!(!E::Configuration("bad url".into()).is_retryable());
        assert!(!E::Decode("bad".into()).is_retryable());
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::TimedOut,
            io::ErrorKind::Other,
        ] {
            assert!(E::Io(io::Error::from(kind)).is_retryable(), "{kind:?}");
        }
        for kind in [io::ErrorKind::NotFound, io::ErrorKind::PermissionDenied] {
            assert!(!E::Io(io::Error::from(kind)).is_retryable(), "{kind:?}");
        }
    }
}
