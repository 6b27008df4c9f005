//! `&MeasuredPool` as an `sqlx::Executor`: the same queries as on `&Pool`, acquired through the
//! measured acquire (waiters counted) and timed; and [`CloseUnlessDone`], the guard that keeps a
//! cut query from holding its pool slot.

use std::ops::{Deref, DerefMut};

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Describe, Either, Execute, Executor, SqlStr};
use sqlx_core::ext::async_stream::TryAsyncStream;

use super::MeasuredPool;

/// A pool connection that is closed instead of returned to the pool if dropped before
/// [`done`](Self::done): its query was cut (a timeout, a dropped future or stream).
///
/// sqlx pings a returned connection before the pool reuses it, and that ping first waits for
/// the reply to whatever was in flight: a cut query would keep the pool slot until the server
/// finished it (never, if the server hangs). Closed, the slot is free at once and the pool opens
/// a new connection when one is needed.
pub(super) struct CloseUnlessDone<DB: Database> {
    conn: PoolConnection<DB>,
    done: bool,
}

impl<DB: Database> CloseUnlessDone<DB> {
    /// Guards `conn` until [`done`](Self::done).
    pub(super) fn new(conn: PoolConnection<DB>) -> Self {
        Self { conn, done: false }
    }

    /// Nothing is in flight on the connection any more (the work ended, with or without an
    /// error): it goes back to the pool when dropped.
    pub(super) fn done(&mut self) {
        self.done = true;
    }
}

impl<DB: Database> Deref for CloseUnlessDone<DB> {
    type Target = PoolConnection<DB>;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> DerefMut for CloseUnlessDone<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl<DB: Database> Drop for CloseUnlessDone<DB> {
    fn drop(&mut self) {
        if !self.done {
            // sqlx closes it from a spawned task (Terminate, then shutdown: no reply awaited).
            self.conn.close_on_drop();
        }
    }
}

// Mirrors sqlx's own `impl Executor for &Pool` (sqlx-core `pool/executor.rs`): acquire, run on
// the connection, release on drop. The stream is built with the same helper sqlx uses, because
// the connection must live inside the stream that borrows it. Unlike sqlx's, a query dropped
// before it ended (a caller's timeout, a stream not read to its end) closes its connection
// rather than leave it to wait, on its way back to the pool, for the rest of the reply.
impl<'p, DB: Database> Executor<'p> for &'_ MeasuredPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Self::Database>,
    {
        let pool = self.clone();
        Box::pin(TryAsyncStream::new(move |yielder| async move {
            // Declared first, dropped last (after the connection went back to the pool): when
            // the stream ends, fails or is dropped.
            let _timer;
            let mut conn = CloseUnlessDone::new(pool.acquire().await?);
            _timer = pool.query_timer();
            let mut rows = conn.fetch_many(query);
            // An error ends the reply too: the connection is in a known state (or broken, which
            // sqlx's return ping finds at once).
            let ended = loop {
                match rows.try_next().await {
                    Ok(Some(v)) => yielder.r#yield(v).await,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            drop(rows);
            conn.done();
            ended
        }))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Self::Database>,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = CloseUnlessDone::new(pool.acquire().await?);
            let timer = pool.query_timer();
            let row = conn.fetch_optional(query).await;
            conn.done();
            // Back to the pool before the timer publishes the gauges.
            drop(conn);
            drop(timer);
            row
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [<Self::Database as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<<Self::Database as Database>::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = CloseUnlessDone::new(pool.acquire().await?);
            let prepared = conn.prepare_with(sql, parameters).await;
            conn.done();
            prepared
        })
    }

    #[doc(hidden)]
    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<Describe<Self::Database>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = CloseUnlessDone::new(pool.acquire().await?);
            let described = conn.describe(sql).await;
            conn.done();
            described
        })
    }
}
