//! Worker processes for the process tests, and what they share with the test process.
//!
//! A worker process is this same test binary, re-executed (`std::env::current_exe()`) to run
//! the ignored test `child_worker` with its settings as JSON in `RESILIENCE_JOBS_CHILD`. That
//! works the same under `cargo test` and `cargo nextest`, which both build and know this binary;
//! an example binary would not be built by `cargo nextest run --test jobs_process`. A child
//! exits by itself when the test process that started it goes away, and [`ChildWorker`] kills
//! and reaps it on drop.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use resilience::jobs::{Handler, JobContext, Queue, Worker, WorkerBuilder};
use resilience::redis::RedisConfig;
use resilience::redis::driver::{self, AsyncCommands, aio::MultiplexedConnection};
use resilience::retry::{Backoff, RetryPolicy};
use resilience::shutdown::ShutdownCoordinator;
use serde_json::{Value, json};

use crate::load;
use crate::support::{self, RedisServer};

const CHILD_ENV: &str = "RESILIENCE_JOBS_CHILD";
/// Our key prefix in these tests (BullMQ prefix `proc/jobs`).
const PREFIX: &str = "proc";

/// The queue `name` on the server at `url`.
pub async fn open_queue(url: &str, name: &str) -> Queue {
    let config = RedisConfig::from_url(url)
        .expect("url")
        .key_prefix(PREFIX)
        .build()
        .expect("redis config");
    Queue::redis(name, &config)
        .await
        .expect("connect the queue")
}

/// A plain connection for the handlers' counters and the tests' reads of them.
pub async fn counters(url: &str) -> MultiplexedConnection {
    driver::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect for the counters")
}

/// `hold`: counts its run (`runs:<id>`), notes its start (list `started`), then on its first
/// run only holds for the payload's `hold_ms`. Returns the run number and its process id.
pub fn hold_handler(conn: MultiplexedConnection) -> Handler {
    Handler::with_context("hold", move |data: Value, ctx: JobContext| {
        let mut conn = conn.clone();
        async move {
            let run: u64 = conn.incr(format!("runs:{}", ctx.id()), 1).await?;
            let _: u64 = conn.rpush("started", ctx.id()).await?;
            if run == 1 {
                let hold = data["hold_ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(hold)).await;
            }
            Ok::<_, driver::RedisError>(json!({ "run": run, "pid": std::process::id() }))
        }
    })
}

/// The payload of a `hold` job.
pub fn hold_job(hold_ms: u64) -> Value {
    json!({ "hold_ms": hold_ms })
}

/// Retries after 2 ms, no jitter: the load tests must not wait on backoff.
pub fn tiny_delays() -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Fixed)
        .initial_delay(Duration::from_millis(2))
        .jitter(0.0)
        .build()
        .expect("retry policy")
}

/// Applies a child's settings (`concurrency`, `lock_ms`, `stalled_ms`, `shutdown_ms`) to a
/// worker builder.
pub fn settings(builder: WorkerBuilder, cfg: &Value) -> WorkerBuilder {
    let ms = |key: &str, default: u64| Duration::from_millis(cfg[key].as_u64().unwrap_or(default));
    let builder = match cfg["shutdown_ms"].as_u64() {
        Some(t) => builder.shutdown_timeout(Duration::from_millis(t)),
        None => builder,
    };
    builder
        .concurrency(usize::try_from(cfg["concurrency"].as_u64().unwrap_or(1)).unwrap_or(1))
        .lock_duration(ms("lock_ms", 30_000))
        .stalled_interval(ms("stalled_ms", 30_000))
        .retry(tiny_delays())
}

/// The body of the `child_worker` entry: nothing unless started as a worker process.
pub async fn child_main() {
    let Ok(cfg) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cfg: Value = serde_json::from_str(&cfg).expect("child settings are JSON");
    let url = cfg["url"].as_str().expect("url");
    let queue = open_queue(url, cfg["queue"].as_str().expect("queue")).await;
    let conn = counters(url).await;
    let coordinator = ShutdownCoordinator::new();
    let handler = match cfg["mode"].as_str() {
        Some("hold") => hold_handler(conn.clone()),
        Some("load") => load::handler(conn.clone()),
        other => panic!("unknown child mode {other:?}"),
    };
    if cfg["signals"].as_bool() == Some(true) {
        // SIGTERM runs the shutdown (the worker's hook drains it), then exits with its code.
        // Installed before the worker starts: a SIGTERM sent once a job runs must find them.
        coordinator
            .install_signal_handlers()
            .expect("install signal handlers");
    }
    let _worker = settings(Worker::builder(&queue), &cfg)
        .handler(handler)
        .shutdown(&coordinator)
        .start()
        .await
        .expect("start the worker");
    let _: u64 = conn
        .clone()
        .incr("workers:ready", 1)
        .await
        .expect("say ready");
    eprintln!("child {} ready", std::process::id());
    // Outlive nothing: stop when the test process that started us is gone.
    let parent = std::os::unix::process::parent_id();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if std::os::unix::process::parent_id() != parent {
            eprintln!("child {}: parent gone, exiting", std::process::id());
            std::process::exit(3);
        }
    }
}

/// A worker process; killed and reaped on drop.
pub struct ChildWorker {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChildWorker {
    /// Starts a worker process on `queue` running `mode` (`hold` or `load`), with `extra`
    /// settings (`concurrency`, `lock_ms`, `stalled_ms`, `shutdown_ms`, `signals`).
    pub fn spawn(server: &RedisServer, queue: &str, mode: &str, extra: Value) -> Self {
        let mut cfg = json!({ "url": server.url(), "queue": queue, "mode": mode });
        if let (Some(cfg), Value::Object(extra)) = (cfg.as_object_mut(), extra) {
            cfg.extend(extra);
        }
        let dir = tempfile::tempdir().expect("temp dir for the child's log");
        let log = dir.path().join("child.log");
        let out = File::create(&log).expect("child log");
        let err = out.try_clone().expect("child log");
        let exe = std::env::current_exe().expect("this test binary");
        let child = Command::new(exe)
            .args(["child_worker", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, cfg.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the worker process");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, then reap.
    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL the worker");
        self.child.wait().expect("reap the worker");
    }

    /// SIGTERM (through `kill`: no `unsafe` here).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits (at most `limit`) for the process to exit.
    pub async fn exited(&mut self, limit: Duration) -> Option<ExitStatus> {
        support::poll_until(limit, async || self.child.try_wait().ok().flatten()).await
    }
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A counter's value (0 when unset).
pub async fn get_u64(conn: &mut MultiplexedConnection, key: &str) -> u64 {
    let v: Option<u64> = conn.get(key).await.expect("GET");
    v.unwrap_or(0)
}

/// Waits until `children` all said they are ready.
pub async fn ready(conn: &mut MultiplexedConnection, children: &[ChildWorker]) {
    let n = children.len() as u64;
    let ok = support::poll_until(Duration::from_secs(30), async || {
        (get_u64(conn, "workers:ready").await >= n).then_some(())
    })
    .await;
    let logs: Vec<String> = children.iter().map(ChildWorker::log).collect();
    assert!(ok.is_some(), "worker processes not ready; logs: {logs:#?}");
}
