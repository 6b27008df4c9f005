//! Database health: one round trip through the measured pool, graded by latency, with the pool's
//! figures; a verbose form; and a [`HealthCheck`] for the registry and monitor.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use sqlx::{AssertSqlSafe, ColumnIndex, Database, Decode, Executor, Row, Type};
use tokio::time::Instant;

use super::executor::CloseUnlessDone;
use super::{MeasuredPool, PoolStats};
use crate::ConfigError;
use crate::health::{CheckOutcome, HealthCheck, HealthStatus, redact_secrets};

/// Thresholds and limits of a database health check. Defaults: the seed's (below 100 ms
/// healthy, 100–500 ms degraded, above 500 ms or an error unhealthy), cut after 2 s, probing
/// with `SELECT 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseHealthConfig {
    /// Latency from which the database counts as degraded.
    pub degraded_after: Duration,
    /// Latency above which the database counts as unhealthy.
    pub unhealthy_after: Duration,
    /// The whole check (acquire included) is cut after this and reported unhealthy.
    pub timeout: Duration,
    /// The probe, sent as a simple (unprepared) statement: one round trip.
    pub query: Cow<'static, str>,
}

impl Default for DatabaseHealthConfig {
    fn default() -> Self {
        Self {
            degraded_after: Duration::from_millis(100),
            unhealthy_after: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            query: Cow::Borrowed("SELECT 1"),
        }
    }
}

impl DatabaseHealthConfig {
    /// The status a successful probe gets for taking `latency`.
    pub fn status_for_latency(&self, latency: Duration) -> HealthStatus {
        crate::health::grade_latency(latency, self.degraded_after, self.unhealthy_after)
    }

    /// Checks the thresholds are in order and the timeout non-zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.unhealthy_after < self.degraded_after {
            return Err(ConfigError::new(
                "unhealthy_after",
                "must not be below degraded_after",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than zero"));
        }
        Ok(())
    }
}

/// One step of a database health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseCheck {
    /// `"acquire"` (a connection from the pool, opened if needed), `"query"` (the probe) or
    /// `"version"` (verbose only).
    pub name: &'static str,
    /// `Healthy` when the step succeeded, `Unhealthy` when it failed or was cut.
    pub status: HealthStatus,
    /// How long the step took.
    pub latency: Duration,
    /// Why it failed (redacted).
    pub message: Option<String>,
}

/// Server and pool settings, from the verbose check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseDetails {
    /// sqlx's name of the database (`"PostgreSQL"`, `"MySQL"`, `"SQLite"`).
    pub database: &'static str,
    /// The server's version string (`SELECT version()`, `SELECT sqlite_version()`), if read.
    pub server_version: Option<String>,
    /// The pool's `max_connections`.
    pub max_connections: u32,
    /// The pool's `min_connections`.
    pub min_connections: u32,
    /// The pool's acquire timeout.
    pub acquire_timeout: Duration,
    /// The pool's idle timeout, if any.
    pub idle_timeout: Option<Duration>,
    /// The pool's maximum connection lifetime, if any.
    pub max_lifetime: Option<Duration>,
}

/// What a database health check found (the seed's `HealthCheckResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseHealthReport {
    /// Unhealthy on any error or timeout, else graded by `latency`.
    pub status: HealthStatus,
    /// Acquire plus probe: what a caller would wait for one query.
    pub latency: Duration,
    /// The steps made, in order.
    pub checks: Vec<DatabaseCheck>,
    /// The first failure, redacted (no credentials or connection strings).
    pub error: Option<String>,
    /// The pool's figures after the check.
    pub pool: PoolStats,
    /// Server and pool settings (verbose checks only).
    pub details: Option<DatabaseDetails>,
    /// When the check ended.
    pub checked_at: SystemTime,
}

/// Checks the database with the default thresholds: acquire a connection, send `SELECT 1`
/// (one round trip), grade by latency. Never waits past the timeout (2 s).
pub async fn check_database_health<DB>(pool: &MeasuredPool<DB>) -> DatabaseHealthReport
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    check_database_health_with(pool, &DatabaseHealthConfig::default()).await
}

/// [`check_database_health`] with these thresholds.
pub async fn check_database_health_with<DB>(
    pool: &MeasuredPool<DB>,
    config: &DatabaseHealthConfig,
) -> DatabaseHealthReport
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut checks = Vec::with_capacity(3);
    let start = Instant::now();
    let mut stats = None;
    let run = async {
        let mut conn = probe(pool, config, &mut checks).await?;
        conn.done();
        stats = Some(released(pool));
        drop(conn);
        Ok::<_, String>(())
    };
    let error = match tokio::time::timeout(config.timeout, run).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => {
            let msg = format!("timed out after {:?}", config.timeout);
            cut_pending(&mut checks, start, &msg);
            Some(msg)
        }
    };
    finish(pool, config, checks, error, start.elapsed(), stats, None)
}

/// [`check_database_health`] with the server's version and the pool's settings in
/// [`DatabaseHealthReport::details`]. The version query is a second round trip, on the same
/// connection and under the same timeout, not counted in `latency`.
pub async fn check_database_health_verbose<DB>(pool: &MeasuredPool<DB>) -> DatabaseHealthReport
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    check_database_health_verbose_with(pool, &DatabaseHealthConfig::default()).await
}

/// [`check_database_health_verbose`] with these thresholds.
pub async fn check_database_health_verbose_with<DB>(
    pool: &MeasuredPool<DB>,
    config: &DatabaseHealthConfig,
) -> DatabaseHealthReport
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut checks = Vec::with_capacity(3);
    let start = Instant::now();
    let mut latency = None;
    let mut version = None;
    let mut stats = None;
    let run = async {
        let mut conn = probe(pool, config, &mut checks).await?;
        latency = Some(start.elapsed());
        let Some(sql) = version_query(DB::NAME) else {
            conn.done();
            stats = Some(released(pool));
            return Ok(());
        };
        let t = Instant::now();
        // Unprepared (a plain `&str`): one round trip, like the probe.
        let row = conn.fetch_one(sql).await;
        conn.done();
        let (status, message) = match row.and_then(|r| r.try_get::<String, _>(0)) {
            Ok(v) => {
                version = Some(v);
                (HealthStatus::Healthy, None)
            }
            // A version the server won't tell is not a health problem: noted, not graded.
            Err(e) => (HealthStatus::Degraded, Some(redact(&e))),
        };
        checks.push(DatabaseCheck {
            name: "version",
            status,
            latency: t.elapsed(),
            message,
        });
        stats = Some(released(pool));
        Ok(())
    };
    let error = match tokio::time::timeout(config.timeout, run).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => {
            let msg = format!("timed out after {:?}", config.timeout);
            cut_pending(&mut checks, start, &msg);
            // A cut version query does not fail a probe that answered.
            if latency.is_some() { None } else { Some(msg) }
        }
    };
    let opts = pool.pool().options();
    let details = DatabaseDetails {
        database: DB::NAME,
        server_version: version,
        max_connections: opts.get_max_connections(),
        min_connections: opts.get_min_connections(),
        acquire_timeout: opts.get_acquire_timeout(),
        idle_timeout: opts.get_idle_timeout(),
        max_lifetime: opts.get_max_lifetime(),
    };
    let latency = latency.unwrap_or_else(|| start.elapsed());
    finish(pool, config, checks, error, latency, stats, Some(details))
}

/// Acquire, then the probe; records both steps. Returns the connection (the verbose check
/// reads the version on it), guarded: if the check is cut before it calls `done`, the
/// connection is closed rather than kept out of the pool until the server answers the cut query.
///
/// One round trip when a connection is idle: it is taken without the ping sqlx's acquire sends
/// (`test_before_acquire`), the probe being the liveness test. If that connection turns out
/// dead (an idle connection from before a server restart), the probe is made once more on a
/// connection from the measured acquire, which replaces dead ones.
async fn probe<DB>(
    pool: &MeasuredPool<DB>,
    config: &DatabaseHealthConfig,
    checks: &mut Vec<DatabaseCheck>,
) -> Result<CloseUnlessDone<DB>, String>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let t = Instant::now();
    if let Some(conn) = pool.pool().try_acquire() {
        let mut conn = CloseUnlessDone::new(conn);
        step(checks, "acquire", t, Ok(()))?;
        let t = Instant::now();
        let ran = conn.execute(AssertSqlSafe(config.query.clone())).await;
        if ran.is_err() {
            // Answered: back to the pool (a dead one fails sqlx's return ping at once).
            conn.done();
        }
        match ran {
            Ok(_) => {
                step(checks, "query", t, Ok(()))?;
                return Ok(conn);
            }
            Err(e) if !is_connection_lost(&e) => {
                step::<()>(checks, "query", t, Err(e))?;
            }
            Err(_) => {
                // A stale connection says nothing about the server: sqlx closes it when it
                // fails its return ping; ask the pool for a live one.
                checks.clear();
            }
        }
    }
    let t = Instant::now();
    let acquired = pool.acquire().await;
    let mut conn = CloseUnlessDone::new(step(checks, "acquire", t, acquired)?);
    let t = Instant::now();
    let ran = conn.execute(AssertSqlSafe(config.query.clone())).await;
    if ran.is_err() {
        conn.done();
    }
    step(checks, "query", t, ran)?;
    Ok(conn)
}

/// Errors that may be the connection's rather than the server's: a lost connection, a protocol
/// error, or a transient one (a backend terminated by a restart reports `57P01`).
fn is_connection_lost(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Protocol(_)) || crate::retry::Retryable::is_retryable(e)
}

fn step<T>(
    checks: &mut Vec<DatabaseCheck>,
    name: &'static str,
    started: Instant,
    result: Result<T, sqlx::Error>,
) -> Result<T, String> {
    let latency = started.elapsed();
    match result {
        Ok(v) => {
            checks.push(DatabaseCheck {
                name,
                status: HealthStatus::Healthy,
                latency,
                message: None,
            });
            Ok(v)
        }
        Err(e) => {
            let msg = redact(&e);
            checks.push(DatabaseCheck {
                name,
                status: HealthStatus::Unhealthy,
                latency,
                message: Some(msg.clone()),
            });
            Err(msg)
        }
    }
}

/// After a timeout: the step that was running is recorded as cut.
fn cut_pending(checks: &mut Vec<DatabaseCheck>, start: Instant, msg: &str) {
    let name = match checks.last().map(|c| c.name) {
        None => "acquire",
        Some("acquire") => "query",
        Some(_) => "version",
    };
    let spent: Duration = checks.iter().map(|c| c.latency).sum();
    checks.push(DatabaseCheck {
        name,
        status: HealthStatus::Unhealthy,
        latency: start.elapsed().saturating_sub(spent),
        message: Some(msg.to_owned()),
    });
}

fn finish<DB: Database>(
    pool: &MeasuredPool<DB>,
    config: &DatabaseHealthConfig,
    checks: Vec<DatabaseCheck>,
    error: Option<String>,
    latency: Duration,
    stats: Option<PoolStats>,
    details: Option<DatabaseDetails>,
) -> DatabaseHealthReport {
    let status = if error.is_some() {
        HealthStatus::Unhealthy
    } else {
        config.status_for_latency(latency)
    };
    DatabaseHealthReport {
        status,
        latency,
        checks,
        error,
        pool: stats.unwrap_or_else(|| pool.stats()),
        details,
        checked_at: SystemTime::now(),
    }
}

/// The pool's figures with the check's own connection counted as returned (it is, right after),
/// and the gauges updated to them.
fn released<DB: Database>(pool: &MeasuredPool<DB>) -> PoolStats {
    let s = pool.inner.stats_releasing(1);
    pool.inner.publish(s);
    s
}

/// The query that reads the server's version, per sqlx driver name.
fn version_query(database: &str) -> Option<&'static str> {
    match database {
        "PostgreSQL" | "MySQL" => Some("SELECT version()"),
        "SQLite" => Some("SELECT sqlite_version()"),
        _ => None,
    }
}

/// An error's text with credentials masked.
pub(crate) fn redact(e: &sqlx::Error) -> String {
    redact_secrets(&e.to_string()).into_owned()
}

/// A [`HealthCheck`] probing a [`MeasuredPool`] with [`check_database_health_with`], so the
/// database shows in a [`HealthRegistry`](crate::health::HealthRegistry), a
/// [`HealthMonitor`](crate::health::HealthMonitor), `/health` and `/readyz`. Named
/// `"database"` unless renamed with [`named`](Self::named).
pub struct DatabaseHealthCheck<DB: Database> {
    name: String,
    pool: MeasuredPool<DB>,
    config: DatabaseHealthConfig,
}

impl<DB: Database> std::fmt::Debug for DatabaseHealthCheck<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseHealthCheck")
            .field("name", &self.name)
            .field("pool", &self.pool.name())
            .field("config", &self.config)
            .finish()
    }
}

impl<DB: Database> Clone for DatabaseHealthCheck<DB> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            pool: self.pool.clone(),
            config: self.config.clone(),
        }
    }
}

impl<DB: Database> DatabaseHealthCheck<DB> {
    /// Checks `pool` (a clone shares it) with the default thresholds.
    pub fn new(pool: MeasuredPool<DB>) -> Self {
        Self {
            name: "database".to_owned(),
            pool,
            config: DatabaseHealthConfig::default(),
        }
    }

    /// The same check under another name (several databases).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The same check with these thresholds.
    pub fn with_config(mut self, config: DatabaseHealthConfig) -> Self {
        self.config = config;
        self
    }
}

impl<DB> HealthCheck for DatabaseHealthCheck<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> CheckOutcome {
        let report = check_database_health_with(&self.pool, &self.config).await;
        let ms = report.latency.as_secs_f64() * 1000.0;
        match (report.status, report.error) {
            (HealthStatus::Healthy, _) => CheckOutcome::healthy(),
            (_, Some(e)) => CheckOutcome::unhealthy(e),
            (HealthStatus::Degraded, None) => CheckOutcome::degraded(format!("slow: {ms:.1} ms")),
            (HealthStatus::Unhealthy, None) => {
                CheckOutcome::unhealthy(format!("too slow: {ms:.1} ms"))
            }
        }
    }
}
