//! `MeasuredPool`: an `sqlx::Pool` that counts its waiters and measures acquires and queries.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool, Transaction};
use tokio::time::Instant;

use super::stats::{DurationHistogram, QueryStats, recommendations};
use crate::metrics::{
    DB_POOL_ACQUIRE_DURATION_SECONDS, DB_POOL_CONNECTIONS, DB_POOL_WAITING,
    DB_QUERY_DURATION_SECONDS, DB_SLOW_QUERIES_TOTAL,
};

/// Default slow-query threshold: the seed's `slowQueryThreshold` (100 ms).
pub const DEFAULT_SLOW_QUERY_THRESHOLD: Duration = Duration::from_millis(100);

/// Connection figures of a pool at one moment: the seed's `total`, `idle`, `active`, `waiting`,
/// plus the pool's maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PoolStats {
    /// Open connections, idle or in use.
    pub total: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Connections in use: `total − idle`.
    pub active: u32,
    /// Callers inside the measured pool's acquire right now (sqlx does not count them).
    pub waiting: u32,
    /// The pool's `max_connections`.
    pub max: u32,
}

/// An `sqlx::Pool` with pool and query metrics. Cheap to clone (one `Arc`); clones share the
/// pool and the figures.
///
/// Queries keep their sqlx form: `&MeasuredPool` is an [`sqlx::Executor`], so
/// `sqlx::query("…").fetch_one(&measured)` runs on the pool and is timed. A query is timed from
/// the moment its connection is acquired (the wait for it is the acquire's own metric) until
/// its last row is read, or until its stream or future is dropped.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sqlx::Error> {
/// use resilience::database::MeasuredPool;
///
/// let pool = sqlx::sqlite::SqlitePoolOptions::new()
///     .max_connections(1)
///     .connect("sqlite::memory:")
///     .await?;
/// let db = MeasuredPool::new("main", pool);
/// let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&db).await?;
/// assert_eq!(one, 1);
/// assert_eq!(db.query_stats().count, 1);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "sqlite"))]
/// # fn main() {}
/// ```
pub struct MeasuredPool<DB: Database> {
    pub(crate) inner: Arc<Inner<DB>>,
}

pub(crate) struct Inner<DB: Database> {
    name: String,
    pub(crate) pool: Pool<DB>,
    waiting: AtomicUsize,
    queries: Option<DurationHistogram>,
    slow_threshold: Duration,
    m: Handles,
}

/// Metric handles, resolved once when the pool is built.
struct Handles {
    idle: Gauge,
    active: Gauge,
    total: Gauge,
    waiting: Gauge,
    acquire: Histogram,
    query: Histogram,
    slow: Counter,
}

impl Handles {
    fn new(name: &str) -> Self {
        let pool = name.to_owned();
        Self {
            idle: metrics::gauge!(DB_POOL_CONNECTIONS, "pool" => pool.clone(), "state" => "idle"),
            active: metrics::gauge!(DB_POOL_CONNECTIONS, "pool" => pool.clone(), "state" => "active"),
            total: metrics::gauge!(DB_POOL_CONNECTIONS, "pool" => pool.clone(), "state" => "total"),
            waiting: metrics::gauge!(DB_POOL_WAITING, "pool" => pool.clone()),
            acquire: metrics::histogram!(DB_POOL_ACQUIRE_DURATION_SECONDS, "pool" => pool.clone()),
            query: metrics::histogram!(DB_QUERY_DURATION_SECONDS, "pool" => pool.clone()),
            slow: metrics::counter!(DB_SLOW_QUERIES_TOTAL, "pool" => pool),
        }
    }
}

impl<DB: Database> Clone for MeasuredPool<DB> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<DB: Database> fmt::Debug for MeasuredPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No connect options: they may hold a password.
        f.debug_struct("MeasuredPool")
            .field("name", &self.inner.name)
            .field("database", &DB::NAME)
            .field("stats", &self.stats())
            .field("slow_query_threshold", &self.inner.slow_threshold)
            .finish()
    }
}

/// Builds a [`MeasuredPool`]: [`MeasuredPool::builder`].
pub struct MeasuredPoolBuilder<DB: Database> {
    name: String,
    pool: Pool<DB>,
    slow_threshold: Duration,
    query_metrics: bool,
}

impl<DB: Database> fmt::Debug for MeasuredPoolBuilder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeasuredPoolBuilder")
            .field("name", &self.name)
            .field("slow_query_threshold", &self.slow_threshold)
            .field("query_metrics", &self.query_metrics)
            .finish_non_exhaustive()
    }
}

impl<DB: Database> MeasuredPoolBuilder<DB> {
    /// Queries taking at least this long count as slow (default 100 ms, the seed's).
    pub fn slow_query_threshold(mut self, threshold: Duration) -> Self {
        self.slow_threshold = threshold;
        self
    }

    /// Whether queries are timed (default on). Off, [`MeasuredPool::query_stats`] stays empty
    /// and queries cost what the bare pool's do, plus the acquire's counting.
    pub fn query_metrics(mut self, on: bool) -> Self {
        self.query_metrics = on;
        self
    }

    /// The measured pool.
    pub fn build(self) -> MeasuredPool<DB> {
        let m = Handles::new(&self.name);
        MeasuredPool {
            inner: Arc::new(Inner {
                queries: self
                    .query_metrics
                    .then(|| DurationHistogram::new(self.slow_threshold)),
                slow_threshold: self.slow_threshold,
                name: self.name,
                pool: self.pool,
                waiting: AtomicUsize::new(0),
                m,
            }),
        }
    }
}

/// Decrements the waiter count when the acquire ends, however it ends (cancelled included).
struct Waiting<'a>(&'a AtomicUsize, &'a Gauge);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let now = self.0.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        self.1.set(now as f64);
    }
}

/// Times one query; records when dropped (the query finished, failed, or was abandoned).
pub(crate) struct QueryTimer<DB: Database> {
    inner: Arc<Inner<DB>>,
    start: Instant,
}

impl<DB: Database> Drop for QueryTimer<DB> {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let inner = &self.inner;
        if let Some(h) = &inner.queries {
            inner.m.query.record(elapsed.as_secs_f64());
            if h.record(elapsed) {
                inner.m.slow.increment(1);
            }
        }
        // The connection went back to the pool just before: keep the gauges current.
        inner.publish(inner.stats());
    }
}

impl<DB: Database> MeasuredPool<DB> {
    /// Measures `pool` under `name` (the `pool` label of the metrics), with the defaults.
    pub fn new(name: impl Into<String>, pool: Pool<DB>) -> Self {
        Self::builder(name, pool).build()
    }

    /// A builder for a measured `pool` named `name`.
    pub fn builder(name: impl Into<String>, pool: Pool<DB>) -> MeasuredPoolBuilder<DB> {
        MeasuredPoolBuilder {
            name: name.into(),
            pool,
            slow_threshold: DEFAULT_SLOW_QUERY_THRESHOLD,
            query_metrics: true,
        }
    }

    /// The sqlx pool (queries run on it directly are not measured).
    pub fn pool(&self) -> &Pool<DB> {
        &self.inner.pool
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The slow-query threshold.
    pub fn slow_query_threshold(&self) -> Duration {
        self.inner.slow_threshold
    }

    /// A connection from the pool, counted as a waiter while it waits and timed
    /// (`db_pool_acquire_duration_seconds`). Fails like [`Pool::acquire`]: `PoolTimedOut` after
    /// the pool's acquire timeout (retryable), `PoolClosed` once closed.
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        let inner = &*self.inner;
        let start = Instant::now();
        let result = {
            let now = inner.waiting.fetch_add(1, Ordering::Relaxed) + 1;
            inner.m.waiting.set(now as f64);
            let _waiting = Waiting(&inner.waiting, &inner.m.waiting);
            inner.pool.acquire().await
        };
        inner.m.acquire.record(start.elapsed().as_secs_f64());
        inner.publish(inner.stats());
        result
    }

    /// A transaction on a connection acquired through [`acquire`](Self::acquire). Queries run
    /// on it (`&mut *tx`) are not timed: they bypass the pool. The transaction owns its
    /// connection, so a query on it cut by a timeout leaves the connection to wait for the
    /// server's answer (sqlx's behaviour); [`retry_transaction`](super::retry_transaction)
    /// closes a cut attempt's connection instead.
    pub async fn begin(&self) -> Result<Transaction<'static, DB>, sqlx::Error> {
        let conn = self.acquire().await?;
        // `Transaction::begin` is what `Pool::begin` itself calls (hidden in sqlx's docs).
        Transaction::begin(conn, None).await
    }

    /// Closes the pool: waiting and later acquires fail with `PoolClosed`; resolves once every
    /// connection in use has been returned and closed. See [`Pool::close`].
    pub async fn close(&self) {
        self.inner.pool.close().await;
        self.inner.publish(self.inner.stats());
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.inner.pool.is_closed()
    }

    /// Connections now (and the `db_pool_connections` gauges updated to them).
    ///
    /// A SQLite pool of one connection reports that connection as active whenever it is open
    /// (`total 1, idle 0, active 1`), as the seed's single-connection SQLite figures do.
    pub fn stats(&self) -> PoolStats {
        let s = self.inner.stats();
        self.inner.publish(s);
        s
    }

    /// Query figures since the pool was built or [`reset_query_stats`](Self::reset_query_stats),
    /// with recommendations that also look at [`stats`](Self::stats).
    pub fn query_stats(&self) -> QueryStats {
        let inner = &*self.inner;
        let mut q = match &inner.queries {
            Some(h) => h.snapshot(),
            None => QueryStats {
                slow_threshold: inner.slow_threshold,
                ..QueryStats::default()
            },
        };
        let pool = self.stats();
        q.recommendations = recommendations(&q, &pool, inner.is_single_sqlite());
        q
    }

    /// Forgets the query figures (counts, durations), e.g. at the start of a reporting period.
    pub fn reset_query_stats(&self) {
        if let Some(h) = &self.inner.queries {
            h.reset();
        }
    }

    /// Starts timing a query (none when query metrics are off).
    pub(crate) fn query_timer(&self) -> Option<QueryTimer<DB>> {
        self.inner.queries.as_ref().map(|_| QueryTimer {
            inner: Arc::clone(&self.inner),
            start: Instant::now(),
        })
    }

    /// Bytes held by the query histogram (flat over any number of queries).
    #[doc(hidden)]
    pub fn query_metrics_memory_bytes(&self) -> usize {
        self.inner.queries.as_ref().map_or(0, |h| h.memory_bytes())
    }
}

impl<DB: Database> Inner<DB> {
    fn is_single_sqlite(&self) -> bool {
        DB::NAME == "SQLite" && self.pool.options().get_max_connections() == 1
    }

    /// The figures as they will be once `n` connections held by the caller are back in the pool
    /// (sqlx returns a dropped connection from a background task, after a ping: an immediate
    /// read would still count it active).
    pub(crate) fn stats_releasing(&self, n: u32) -> PoolStats {
        let mut s = self.stats();
        if !(self.is_single_sqlite() && s.total == 1) {
            let n = n.min(s.active);
            s.active -= n;
            s.idle += n;
        }
        s
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let total = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle())
            .unwrap_or(u32::MAX)
            .min(total);
        let waiting = u32::try_from(self.waiting.load(Ordering::Relaxed)).unwrap_or(u32::MAX);
        let max = self.pool.options().get_max_connections();
        let idle = if self.is_single_sqlite() && total == 1 {
            0
        } else {
            idle
        };
        PoolStats {
            total,
            idle,
            active: total - idle,
            waiting,
            max,
        }
    }

    pub(crate) fn publish(&self, s: PoolStats) {
        self.m.idle.set(f64::from(s.idle));
        self.m.active.set(f64::from(s.active));
        self.m.total.set(f64::from(s.total));
        self.m.waiting.set(f64::from(s.waiting));
    }
}
