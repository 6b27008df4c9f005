//! Database resilience on sqlx pools (feature `database`; drivers behind `postgres`, `mysql`,
//! `sqlite`): pool and query metrics, health checks, transient errors, transaction retry and
//! shutdown. Queries keep their sqlx form.
//!
//! - [`MeasuredPool`] wraps an `sqlx::Pool`: [`stats`](MeasuredPool::stats) (total, idle,
//!   active, waiting — sqlx does not count waiters, the measured acquire does),
//!   [`query_stats`](MeasuredPool::query_stats) (count, avg, min, max, p95, p99, slow count,
//!   recommendations; bounded memory), and `&MeasuredPool` is an [`sqlx::Executor`].
//! - [`check_database_health`]: one round trip graded by latency (the seed's 100 / 500 ms),
//!   redacted errors, pool figures; [`check_database_health_verbose`] adds the server version
//!   and pool settings; [`DatabaseHealthCheck`] puts it in a
//!   [`HealthRegistry`](crate::health::HealthRegistry).
//! - [`Retryable`](crate::Retryable) for `sqlx::Error` (see [`error`]): serialization failures,
//!   deadlocks, lost connections, `BUSY`, pool timeouts are transient.
//! - [`retry_transaction`]: a fresh transaction per attempt, committed once.
//! - [`register_pool_shutdown`]: close the pool in a shutdown hook.
//!
//! # With a circuit breaker
//! The `"database"` service breaker (5 failures / 60 s) guards queries like any call: through
//! [`get_circuit_breaker`](crate::get_circuit_breaker) or the attribute, outside a retry so that
//! one retried sequence counts once.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # mod demo {
//! use resilience::database::MeasuredPool;
//! use resilience::{CircuitOpenError, circuit_breaker, retry};
//!
//! #[derive(Debug, thiserror::Error)]
//! pub enum DbError {
//!     #[error(transparent)]
//!     Sql(#[from] sqlx::Error),
//!     #[error(transparent)]
//!     Open(#[from] CircuitOpenError),
//! }
//!
//! impl resilience::Retryable for DbError {
//!     fn is_retryable(&self) -> bool {
//!         matches!(self, DbError::Sql(e) if e.is_retryable())
//!     }
//! }
//!
//! #[circuit_breaker("database")]
//! #[retry(preset = "quick")]
//! pub async fn count_users(db: MeasuredPool<sqlx::Sqlite>) -> Result<i64, DbError> {
//!     Ok(sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&db).await?)
//! }
//!
//! pub async fn run() -> Result<(), DbError> {
//!     let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
//!     let db = MeasuredPool::new("main", pool);
//!     sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY)").execute(&db).await?;
//!     assert_eq!(count_users(db.clone()).await?, 0);
//!
//!     // The same breaker without the attribute.
//!     let breaker = resilience::get_circuit_breaker("database");
//!     let n: i64 = breaker
//!         .call(|| sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&db))
//!         .await
//!         .map_err(|e| e.map_inner(DbError::Sql).flatten())?;
//!     assert_eq!(n, 0);
//!     Ok(())
//! }
//! # }
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() { demo::run().await.unwrap(); }
//! # #[cfg(not(feature = "sqlite"))]
//! # fn main() {}
//! ```

/// The sqlx this module is built on, so that callers (and tests) use the same version.
#[doc(no_inline)]
pub use sqlx;

pub mod error;
mod executor;
mod health;
mod pool;
mod shutdown;
mod stats;
mod transaction;

pub use health::{
    DatabaseCheck, DatabaseDetails, DatabaseHealthCheck, DatabaseHealthConfig,
    DatabaseHealthReport, check_database_health, check_database_health_verbose,
    check_database_health_verbose_with, check_database_health_with,
};
pub use pool::{DEFAULT_SLOW_QUERY_THRESHOLD, MeasuredPool, MeasuredPoolBuilder, PoolStats};
pub use shutdown::{PoolShutdownOptions, register_pool_shutdown, register_pool_shutdown_with};
pub use stats::QueryStats;
pub use transaction::{AcquireFuture, TransactionSource, retry_transaction};
