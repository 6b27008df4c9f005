//! The load run: 10 000 jobs over 4 worker processes, each attempt failing or not as a fixed
//! function of (job, attempt) says, and the check that every job ended as its policy says.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use resilience::jobs::{Handler, JobContext, JobCounts, JobOptions, JobState};
use resilience::redis::driver::{AsyncCommands, aio::MultiplexedConnection};
use resilience::retry::{RetryPolicy, Retryable};
use serde_json::json;

use crate::child::{ChildWorker, counters, open_queue, ready};
use crate::support::{self, RedisServer};

/// Jobs in a run.
pub const N: u64 = 10_000;
/// Worker processes, and jobs each runs at once.
const PROCESSES: usize = 4;
pub const CONCURRENCY: u64 = 32;

/// The failure a `load` attempt ends with.
#[derive(Debug)]
pub struct Flaky {
    permanent: bool,
}

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.permanent { "permanent" } else { "flaky" })
    }
}

impl Retryable for Flaky {
    fn is_retryable(&self) -> bool {
        !self.permanent
    }
}

/// A 64-bit mix (splitmix64's finaliser): the same on every run and in every process.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// How attempt `attempt` of job `n` ends: `None` succeeds; one job in 97 fails for good;
/// otherwise one attempt in 5 fails and may be retried.
fn fate(n: u64, attempt: u32) -> Option<Flaky> {
    if n % 97 == 13 {
        return Some(Flaky { permanent: true });
    }
    mix(n << 8 | u64::from(attempt))
        .is_multiple_of(5)
        .then_some(Flaky { permanent: false })
}

/// Attempts job `n` may take: 1, 2 or 3.
fn attempts(n: u64) -> u32 {
    1 + u32::try_from(n % 3).unwrap_or(0)
}

/// What job `n` must end as, after how many runs, and with which reason if it failed.
fn expected(n: u64) -> (JobState, u32, Option<String>) {
    let max = attempts(n);
    for attempt in 1..=max {
        match fate(n, attempt) {
            None => return (JobState::Completed, attempt, None),
            Some(e) if e.permanent || attempt == max => {
                return (JobState::Failed, attempt, Some(e.to_string()));
            }
            Some(_) => {}
        }
    }
    unreachable!("the last attempt returns")
}

/// `load`: logs its run (`<n> <attempt> <pid>` onto list `load:log`), then ends as [`fate`]
/// says.
pub fn handler(conn: MultiplexedConnection) -> Handler {
    Handler::with_context("load", move |n: u64, ctx: JobContext| {
        let mut conn = conn.clone();
        async move {
            let entry = format!("{n} {} {}", ctx.attempt(), std::process::id());
            let _: u64 = conn
                .rpush("load:log", entry)
                .await
                .expect("log the run (Redis stays up in this test)");
            match fate(n, ctx.attempt()) {
                None => Ok(n),
                Some(e) => Err(e),
            }
        }
    })
}

/// A job that ended otherwise than its policy says.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug in the failure message
pub struct Mismatch {
    n: u64,
    state: JobState,
    want: JobState,
    runs: u32,
    attempts_made: u32,
    want_runs: u32,
    reason: Option<String>,
}

/// What a load run found.
#[derive(Debug, Default)]
pub struct Report {
    pub counts: JobCounts,
    pub want_failed: u64,
    /// Jobs that ended otherwise than their policy says.
    pub wrong: Vec<Mismatch>,
    /// Jobs the queue no longer knows.
    pub lost: usize,
    /// Jobs that ran more often than their attempts: (n, runs beyond, pids that ran it).
    pub duplicates: Vec<(u64, u32, Vec<u32>)>,
    /// Runs per worker process.
    pub runs_per_pid: HashMap<u32, u32>,
    /// The process killed mid-run, if one was.
    pub killed: Option<u32>,
}

/// Adds [`N`] jobs, runs them over 4 worker processes (killing one with SIGKILL once a quarter
/// settled, when `kill_one`), waits until all settled and checks each against [`expected`].
pub async fn run(server: &RedisServer, kill_one: bool) -> Report {
    let mut conn = counters(&server.url()).await;
    let queue = open_queue(&server.url(), "load").await;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(N as usize);
    for chunk in (0..N).collect::<Vec<_>>().chunks(1000) {
        let jobs = chunk.iter().map(|&n| {
            let policy = RetryPolicy::builder()
                .max_attempts(attempts(n))
                .build()
                .expect("policy");
            let opts = JobOptions::new().job_id(format!("load-{n}")).retry(policy);
            ("load", n, opts)
        });
        ids.extend(queue.add_bulk(jobs).await.expect("add"));
    }
    let added = started.elapsed();
    // A short lock where a process dies, so its jobs come back within seconds.
    let cfg = if kill_one {
        json!({ "concurrency": CONCURRENCY, "lock_ms": 2000, "stalled_ms": 500 })
    } else {
        json!({ "concurrency": CONCURRENCY })
    };
    let mut children: Vec<ChildWorker> = (0..PROCESSES)
        .map(|_| ChildWorker::spawn(server, "load", "load", cfg.clone()))
        .collect();
    ready(&mut conn, &children).await;
    let mut report = Report::default();
    if kill_one {
        let quarter = support::poll_until(Duration::from_secs(30), async || {
            let c = queue.counts().await.ok()?;
            (c.completed + c.failed >= N / 4).then_some(c)
        })
        .await;
        assert!(
            quarter.is_some(),
            "a quarter never settled: {:?}",
            queue.counts().await
        );
        report.killed = Some(children[0].pid());
        children[0].sigkill();
    }
    let done = support::poll_until(Duration::from_secs(60), async || {
        let c = queue.counts().await.ok()?;
        (c.completed + c.failed == N && c.waiting + c.active + c.delayed == 0).then_some(c)
    })
    .await;
    let settled = started.elapsed();
    let logs: Vec<String> = children.iter().map(ChildWorker::log).collect();
    let Some(counts) = done else {
        panic!(
            "not all settled: {:?}; logs: {logs:#?}",
            queue.counts().await
        );
    };
    drop(children);
    report.counts = counts;

    let log: Vec<String> = conn.lrange("load:log", 0, -1).await.expect("the run log");
    let mut runs: HashMap<u64, Vec<u32>> = HashMap::new();
    for entry in &log {
        let f: Vec<u64> = entry.split(' ').filter_map(|x| x.parse().ok()).collect();
        let pid = u32::try_from(f[2]).expect("pid");
        runs.entry(f[0]).or_default().push(pid);
        *report.runs_per_pid.entry(pid).or_default() += 1;
    }
    let jobs: Vec<_> = futures_util::stream::iter(&ids)
        .map(|id| queue.job(id))
        .buffered(32)
        .collect()
        .await;
    for (n, job) in (0..N).zip(jobs) {
        let (state, want_runs, reason) = expected(n);
        report.want_failed += u64::from(state == JobState::Failed);
        let pids = runs.remove(&n).unwrap_or_default();
        let ran = u32::try_from(pids.len()).unwrap_or(u32::MAX);
        if ran > want_runs {
            report.duplicates.push((n, ran - want_runs, pids));
        }
        let Some(job) = job.expect("read a job") else {
            report.lost += 1;
            continue;
        };
        if job.state != state
            || ran < want_runs
            || job.attempts_made != want_runs
            || (reason.is_some() && job.failed_reason != reason)
        {
            report.wrong.push(Mismatch {
                n,
                state: job.state,
                want: state,
                runs: ran,
                attempts_made: job.attempts_made,
                want_runs,
                reason: job.failed_reason,
            });
        }
    }
    eprintln!(
        "load (kill one: {kill_one}): {N} jobs added in {added:?}, all settled after \
         {settled:?} ({counts:?}); expected failed {}; {} duplicated job(s); runs per process \
         {:?}",
        report.want_failed,
        report.duplicates.len(),
        report.runs_per_pid
    );
    report
}
