//! Job queue throughput against one private redis-server, side by side in one run:
//! bullmq-official used directly ("bare"), our `jobs` facade over it, and Node BullMQ 5 (when
//! `node` is present; the package is installed into `target/node-bullmq/`), plus the CPU an idle
//! facade worker burns over 10 s.
//!
//! Each side adds N jobs with 50 concurrent producers (added/s), then one worker with
//! concurrency 50 and a no-op handler processes them (processed/s). Jobs carry the same options
//! on every side: priority 3 (our `normal` default) and 3 attempts; the bare crate also runs
//! once with BullMQ's defaults (no priority) for reference.
//!
//! Run: `cargo bench --bench jobs_redis`. `JOBS_BENCH_N` overrides N (default 20000);
//! `JOBS_BENCH_ROUNDS` the rounds (default 2).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bullmq::{Job, QueueOptions, WorkerOptions};
use resilience::jobs::{JobOptions, Queue as JobQueue, Worker as JobWorker};
use resilience::redis::RedisConfig;
use resilience::shutdown::ShutdownCoordinator;
use tokio::sync::Notify;

const PRODUCERS: usize = 50;
const CONCURRENCY: usize = 50;

struct Figures {
    added_per_s: f64,
    processed_per_s: f64,
}

fn connection(port: u16) -> bullmq::options::RedisConnectionOptions {
    bullmq::options::RedisConnectionOptions::new()
        .host("127.0.0.1")
        .port(port)
}

async fn bare(port: u16, n: usize, queue_name: &str, prioritized: bool) -> Figures {
    let opts = QueueOptions::new()
        .connection(connection(port))
        .prefix("bare");
    let queue = Arc::new(
        bullmq::Queue::with_options(queue_name, opts)
            .await
            .expect("queue"),
    );
    let per = n.div_ceil(PRODUCERS);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            for i in (p * per)..((p + 1) * per).min(n) {
                let mut add = queue.add("noop", serde_json::json!({ "i": i })).attempts(3);
                if prioritized {
                    add = add.priority(3);
                }
                add.await.expect("add");
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    let added = t0.elapsed();

    let done = Arc::new(AtomicUsize::new(0));
    let all = Arc::new(Notify::new());
    let (d, a) = (done.clone(), all.clone());
    let t0 = Instant::now();
    let worker = bullmq::Worker::with_options(
        queue_name,
        move |_job: Job, _token| {
            let (d, a) = (d.clone(), a.clone());
            async move {
                if d.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    a.notify_one();
                }
                Ok(serde_json::Value::Null)
            }
        },
        WorkerOptions::new()
            .connection(connection(port))
            .prefix("bare")
            .concurrency(CONCURRENCY),
    )
    .await
    .expect("worker");
    all.notified().await;
    let processed = t0.elapsed();
    worker.close(5_000).await.expect("close");
    queue.obliterate(true, 100_000).await.ok();
    Figures {
        added_per_s: n as f64 / added.as_secs_f64(),
        processed_per_s: n as f64 / processed.as_secs_f64(),
    }
}

async fn facade(port: u16, n: usize, queue_name: &str) -> Figures {
    let config = RedisConfig::builder().port(port).build().expect("config");
    let queue = JobQueue::redis(queue_name, &config).await.expect("queue");
    let per = n.div_ceil(PRODUCERS);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            for i in (p * per)..((p + 1) * per).min(n) {
                let payload = serde_json::json!({ "i": i });
                queue
                    .add("noop", &payload, JobOptions::new())
                    .await
                    .expect("add");
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    let added = t0.elapsed();

    let done = Arc::new(AtomicUsize::new(0));
    let all = Arc::new(Notify::new());
    let (d, a) = (done.clone(), all.clone());
    let t0 = Instant::now();
    let worker = JobWorker::builder(&queue)
        .handle("noop", move |_: serde_json::Value| {
            let (d, a) = (d.clone(), a.clone());
            async move {
                if d.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    a.notify_one();
                }
                Ok::<_, std::io::Error>(())
            }
        })
        .concurrency(CONCURRENCY)
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("worker");
    all.notified().await;
    let processed = t0.elapsed();
    worker.close(Duration::from_secs(5)).await.expect("close");
    queue.close().await;
    Figures {
        added_per_s: n as f64 / added.as_secs_f64(),
        processed_per_s: n as f64 / processed.as_secs_f64(),
    }
}

/// Installs `bullmq@5` into `target/node-bullmq/` once; `None` (with the reason) when node or
/// npm is missing or the install fails.
fn node_bullmq_dir() -> Result<PathBuf, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/node-bullmq");
    if dir.join("node_modules/bullmq/package.json").exists() {
        return Ok(dir);
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node not found (apt-get install nodejs npm)".into());
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let status = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "bullmq@5"])
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("npm not runnable: {e}"))?;
    if !status.success() {
        return Err(format!("npm install bullmq@5 failed: {status}"));
    }
    Ok(dir)
}

fn node(port: u16, n: usize) -> Result<Figures, String> {
    let dir = node_bullmq_dir()?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/node/bullmq_bench.mjs");
    // ESM resolves packages from the script's folder upwards: run a copy inside `dir`.
    let copy = dir.join("bullmq_bench.mjs");
    std::fs::copy(&script, &copy).map_err(|e| e.to_string())?;
    let out = Command::new("node")
        .arg(&copy)
        .args([port.to_string(), n.to_string(), "3".into()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("node output: {e}"))?;
    Ok(Figures {
        added_per_s: v["added_per_s"].as_f64().unwrap_or(f64::NAN),
        processed_per_s: v["processed_per_s"].as_f64().unwrap_or(f64::NAN),
    })
}

/// This process's user + system CPU time.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `)` that ends the command name: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    let ticks = f.iter().sum::<u64>();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

async fn idle_cpu(port: u16, secs: u64) -> Duration {
    let config = RedisConfig::builder().port(port).build().expect("config");
    let queue = JobQueue::redis("idle", &config).await.expect("queue");
    let worker = JobWorker::builder(&queue)
        .handle("noop", |_: serde_json::Value| async {
            Ok::<_, std::io::Error>(())
        })
        .concurrency(CONCURRENCY)
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("worker");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_time();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let used = cpu_time().saturating_sub(before);
    worker.close(Duration::from_secs(5)).await.expect("close");
    used
}

fn line(label: &str, f: &Figures, base: &Figures) {
    println!(
        "{label:<34} added {:>9.0}/s ({:>4.2}x bare)   processed {:>9.0}/s ({:>4.2}x bare)",
        f.added_per_s,
        f.added_per_s / base.added_per_s,
        f.processed_per_s,
        f.processed_per_s / base.processed_per_s
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us without it: stay quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("JOBS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 500 } else { 20_000 });
    let rounds: usize = std::env::var("JOBS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let server = support::RedisServer::start();
    let port = server.port();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "jobs on one redis-server, N = {n}, {PRODUCERS} producers, worker concurrency {CONCURRENCY}; \
         every side starts on an empty server (FLUSHALL), the order alternates per round"
    );
    let (mut bare_f, mut ours_f, mut node_f) = (Vec::new(), Vec::new(), Vec::new());
    let mut node_note = None;
    for round in 1..=rounds {
        println!("-- round {round}");
        let run_bare = |tag: &str| {
            server.cli(&["FLUSHALL"]);
            rt.block_on(bare(port, n, &format!("bare{tag}"), true))
        };
        let run_ours = |tag: &str| {
            server.cli(&["FLUSHALL"]);
            rt.block_on(facade(port, n, &format!("ours{tag}")))
        };
        let (base, ours) = if round % 2 == 1 {
            let b = run_bare("a");
            (b, run_ours("a"))
        } else {
            let o = run_ours("b");
            (run_bare("b"), o)
        };
        line("bullmq-official (priority 3)", &base, &base);
        line("resilience::jobs facade", &ours, &base);
        if round == 1 {
            server.cli(&["FLUSHALL"]);
            let plain = rt.block_on(bare(port, n, "plain", false));
            line("bullmq-official (no priority)", &plain, &base);
        }
        server.cli(&["FLUSHALL"]);
        match node(port, n) {
            Ok(f) => {
                line("Node BullMQ 5 (priority 3)", &f, &base);
                node_f.push(f);
            }
            Err(why) => node_note = Some(why),
        }
        bare_f.push(base);
        ours_f.push(ours);
    }
    let med = |v: &[Figures], f: fn(&Figures) -> f64| median(v.iter().map(f).collect());
    let (ba, bp) = (
        med(&bare_f, |f| f.added_per_s),
        med(&bare_f, |f| f.processed_per_s),
    );
    let (oa, op) = (
        med(&ours_f, |f| f.added_per_s),
        med(&ours_f, |f| f.processed_per_s),
    );
    println!("== medians of {rounds} rounds");
    println!("bullmq-official   added {ba:>9.0}/s   processed {bp:>9.0}/s");
    println!(
        "facade            added {oa:>9.0}/s ({:.2}x)   processed {op:>9.0}/s ({:.2}x)",
        oa / ba,
        op / bp
    );
    if node_f.is_empty() {
        println!("Node BullMQ: not run ({})", node_note.unwrap_or_default());
    } else {
        let (na, np) = (
            med(&node_f, |f| f.added_per_s),
            med(&node_f, |f| f.processed_per_s),
        );
        println!(
            "Node BullMQ 5     added {na:>9.0}/s   processed {np:>9.0}/s   (facade processed = {:.2}x Node)",
            op / np
        );
    }
    server.cli(&["FLUSHALL"]);
    let secs = if quick { 1 } else { 10 };
    let used = rt.block_on(idle_cpu(port, secs));
    println!(
        "idle facade worker (concurrency {CONCURRENCY}): {} ms CPU over {secs} s (10 ms resolution)",
        used.as_millis()
    );
}
