//! `&MeasuredPool` as an `sqlx::Executor`: the same queries as on `&Pool`, acquired through the
//! measured acquire (waiters counted) and timed.

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::{Database, Describe, Either, Execute, Executor, SqlStr};
use sqlx_core::ext::async_stream::TryAsyncStream;

use super::MeasuredPool;

// Mirrors sqlx's own `impl Executor for &Pool` (sqlx-core `pool/executor.rs`): acquire, run on
// the connection, release on drop. The stream is built with the same helper sqlx uses, because
// the connection must live inside the stream that borrows it.
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
            let mut conn = pool.acquire().await?;
            _timer = pool.query_timer();
            let mut rows = conn.fetch_many(query);
            while let Some(v) = rows.try_next().await? {
                yielder.r#yield(v).await;
            }
            Ok(())
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
            let mut conn = pool.acquire().await?;
            let timer = pool.query_timer();
            let row = conn.fetch_optional(query).await;
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
        Box::pin(async move { pool.acquire().await?.prepare_with(sql, parameters).await })
    }

    #[doc(hidden)]
    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<Describe<Self::Database>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move { pool.acquire().await?.describe(sql).await })
    }
}
