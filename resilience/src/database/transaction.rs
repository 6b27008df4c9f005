//! `retry_transaction`: a closure run in a fresh transaction per attempt, committed once, only on
//! success, retried on transient failures by the crate's retry engine.

use std::future::Future;
use std::pin::Pin;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Database, Pool, Transaction};
use tokio::time::Instant;

use super::MeasuredPool;
use super::executor::CloseUnlessDone;
use crate::retry::engine::{Deadline, Failure, Last, Sequence, Stop, Timed, classify};
use crate::retry::{RetryPolicy, Retryable};

/// The future a [`TransactionSource`] returns.
pub type AcquireFuture<'a, DB> =
    Pin<Box<dyn Future<Output = Result<PoolConnection<DB>, sqlx::Error>> + Send + 'a>>;

/// Where [`retry_transaction`] gets each attempt's connection: a [`Pool`] or a
/// [`MeasuredPool`] (whose acquire counts waiters).
pub trait TransactionSource<DB: Database>: Send + Sync {
    /// A connection of the pool, for one attempt's transaction.
    fn acquire_connection(&self) -> AcquireFuture<'_, DB>;
}

impl<DB: Database> TransactionSource<DB> for Pool<DB> {
    fn acquire_connection(&self) -> AcquireFuture<'_, DB> {
        Box::pin(self.acquire())
    }
}

impl<DB: Database> TransactionSource<DB> for MeasuredPool<DB> {
    fn acquire_connection(&self) -> AcquireFuture<'_, DB> {
        Box::pin(self.acquire())
    }
}

/// Runs `f` in a transaction, retried by `policy` while the failure is transient.
///
/// Each attempt begins a fresh transaction, runs `f` on it and commits only if `f` returned
/// `Ok`. On an `Err` from `f` the transaction is rolled back (explicitly, best effort; a lost
/// connection rolls it back on the server anyway, and dropping it rolls it back too). The error
/// — from `f`, `begin` or `commit` — is classified like any other by the retry engine: the
/// policy's `retry_if` for `E`, else [`Retryable`]; for `sqlx::Error` that retries
/// serialization failures (`40001`), deadlocks (`40P01`), lost connections, SQLite `BUSY` and
/// pool timeouts. Backoff, `Retry-After` hints, the total deadline, cancellation, `on_retry`
/// and the `retry_attempts_*` metrics are the engine's. As with
/// [`RetryPolicy::run_with_timeouts`], the per-attempt timeout and the total deadline cut a
/// running attempt; a cut last attempt returns `E::from(sqlx::Error::Io(..))` of kind
/// `TimedOut` holding the [`TimeoutError`](crate::TimeoutError). A cut attempt's connection is
/// closed, not returned to the pool (the server rolls its transaction back): returned, it would
/// hold its pool slot until the server answered the cut query, which a hung server never does.
///
/// **The closure may run several times.** Its effects must stay in the database (inside the
/// transaction): an email sent or a message published from it would be repeated. And a
/// commit that fails because the connection was lost may or may not have been applied by the
/// server; it is retried like any lost connection, so make the transaction idempotent (a unique
/// key, an `ON CONFLICT`, a version check) where a double apply would matter.
///
/// **In a spawned task or an axum handler** (a future that must be `Send`), give an
/// `async move` closure that owns what it captures (`String`s, clones, `Arc`s): rustc (1.95)
/// cannot yet prove the future `Send` when the async closure holds a reference — a borrow of a
/// local, and even a `&'static str` ("implementation of `Send` is not general enough"). Owned
/// values work; so do borrows where `Send` is not needed.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sqlx::Error> {
/// use resilience::database::{retry_transaction, MeasuredPool};
/// use resilience::RetryPreset;
///
/// let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
/// let db = MeasuredPool::new("main", pool);
/// sqlx::query("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)").execute(&db).await?;
/// sqlx::query("INSERT INTO accounts VALUES (1, 100), (2, 0)").execute(&db).await?;
///
/// let moved = retry_transaction(&db, RetryPreset::Quick, async |tx| {
///     sqlx::query("UPDATE accounts SET balance = balance - 30 WHERE id = 1").execute(&mut **tx).await?;
///     sqlx::query("UPDATE accounts SET balance = balance + 30 WHERE id = 2").execute(&mut **tx).await?;
///     Ok::<_, sqlx::Error>(30)
/// })
/// .await?;
/// assert_eq!(moved, 30);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "sqlite"))]
/// # fn main() {}
/// ```
pub async fn retry_transaction<DB, P, F, T, E>(
    pool: &P,
    policy: impl Into<RetryPolicy>,
    mut f: F,
) -> Result<T, E>
where
    DB: Database,
    P: TransactionSource<DB> + ?Sized,
    // Any `'c`, not `'static` (which the transaction is): with `'static` rustc fails to prove
    // the call `Send` in a spawned task ("implementation of `AsyncFnMut` is not general
    // enough"), the closure's signature being inferred over a lifetime it then erases.
    F: for<'c> AsyncFnMut(&mut Transaction<'c, DB>) -> Result<T, E>,
    E: From<sqlx::Error> + Retryable + 'static,
{
    let policy: RetryPolicy = policy.into();
    let mut seq = Sequence::<E, Instant>::new(&policy, Deadline::Unstarted);
    loop {
        let failure = match seq.attempt::<Timed, _>(attempt(pool, &mut f)).await {
            Ok(Ok(v)) => {
                seq.succeeded();
                return Ok(v);
            }
            Ok(Err(e)) => Failure::Error(e),
            Err(cut) => Failure::Cut(cut),
        };
        let (delay, current) = match seq.judge(failure, |e| classify(&policy, e), Instant::now) {
            Ok(next) => next,
            Err(stop) => return Err(last_error(stop)),
        };
        if !seq.wait(delay).await {
            return Err(last_error(seq.cancelled(current)));
        }
        seq.resume(current);
    }
}

/// One attempt on a connection of its own: closed if the attempt is cut (see
/// [`CloseUnlessDone`]), back to the pool once it ended, with or without an error.
async fn attempt<DB, P, F, T, E>(pool: &P, f: &mut F) -> Result<T, E>
where
    DB: Database,
    P: TransactionSource<DB> + ?Sized,
    F: for<'c> AsyncFnMut(&mut Transaction<'c, DB>) -> Result<T, E>,
    E: From<sqlx::Error>,
{
    let mut conn = CloseUnlessDone::new(pool.acquire_connection().await?);
    let ended = in_transaction(&mut conn, f).await;
    conn.done();
    ended
}

/// Begin, run, commit on `Ok`, roll back on `Err`.
async fn in_transaction<DB, F, T, E>(conn: &mut PoolConnection<DB>, f: &mut F) -> Result<T, E>
where
    DB: Database,
    F: for<'c> AsyncFnMut(&mut Transaction<'c, DB>) -> Result<T, E>,
    E: From<sqlx::Error>,
{
    let mut tx = conn.begin().await?;
    match f(&mut tx).await {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            // Best effort: on a lost connection this fails, and the server has rolled back.
            if let Err(rollback) = tx.rollback().await {
                tracing::debug!(error = %super::health::redact(&rollback), "rollback after a failed attempt failed");
            }
            Err(e)
        }
    }
}

/// The error to return once the sequence stops: the last attempt's, or its cut as a timeout.
fn last_error<E: From<sqlx::Error>>(stop: Stop<E, crate::retry::engine::Cut>) -> E {
    match stop {
        Stop::NotRetryable { error, .. } => error,
        Stop::Exhausted { last, .. }
        | Stop::Deadline { last, .. }
        | Stop::Cancelled { last, .. } => match last {
            Last::Error(e) => e,
            Last::Cut(cut, _) => E::from(sqlx::Error::Io(std::io::Error::from(cut.timeout()))),
        },
    }
}
