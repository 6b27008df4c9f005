//! In-memory job queue throughput through the full facade (`Queue`, `Worker`, no-op handlers):
//! jobs processed per second and jobs added per second, plus the CPU an idle worker burns.
//!
//! `cargo bench --bench jobs_memory` (optionally `-- <filter>`: `processed`, `added`,
//! `pipeline`, `idle`).
//! A plain timing harness: each line is the median of `RUNS` runs, with the spread. No metrics
//! recorder and no tracing subscriber are installed (the facade's metrics and spans are no-ops).

use std::io;
use std::time::{Duration, Instant};

use resilience::jobs::{JobOptions, MemoryBroker, Queue, Retention, Worker};
use resilience::shutdown::ShutdownCoordinator;

const RUNS: usize = 5;

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("runtime")
    }
}

/// Median, min and max of `RUNS` rates (per second).
fn report(label: &str, mut rates: Vec<f64>) {
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "{label:<58} {:>12.0} /s   (min {:.0}, max {:.0})",
        median,
        rates[0],
        rates[rates.len() - 1]
    );
}

fn opts(keep: bool) -> JobOptions {
    if keep {
        JobOptions::new()
    } else {
        JobOptions::new().remove_on_complete(Retention::RemoveAll)
    }
}

/// Fills a queue with `n` jobs, then times one worker of `concurrency` slots draining it.
async fn processed_once(n: u64, concurrency: usize, keep: bool) -> f64 {
    let queue = Queue::in_memory("bench", &MemoryBroker::new()).expect("queue");
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        queue
            .add_bulk(chunk.iter().map(|&i| ("noop", i, opts(keep))))
            .await
            .expect("add");
    }
    let started = Instant::now();
    let worker = Worker::builder(&queue)
        .handle("noop", |_: u64| async { Ok::<_, io::Error>(()) })
        .concurrency(concurrency)
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("worker");
    loop {
        let c = queue.counts().await.expect("counts");
        if c.waiting == 0 && c.active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let elapsed = started.elapsed();
    worker.close(Duration::from_secs(5)).await.expect("close");
    n as f64 / elapsed.as_secs_f64()
}

fn processed(threads: usize, n: u64, concurrency: usize, keep: bool) {
    let rt = runtime(threads);
    let rates = (0..RUNS)
        .map(|_| rt.block_on(processed_once(n, concurrency, keep)))
        .collect();
    let retention = if keep {
        "keep all"
    } else {
        "remove on complete"
    };
    report(
        &format!(
            "processed: {threads} thread(s), concurrency {concurrency}, {retention}, {n} jobs"
        ),
        rates,
    );
}

/// Times `producers` tasks adding `n` jobs in all, one `add` each (or `add_bulk` of `bulk`).
async fn added_once(n: u64, producers: u64, bulk: usize) -> f64 {
    let queue = Queue::in_memory("bench", &MemoryBroker::new()).expect("queue");
    let started = Instant::now();
    let tasks: Vec<_> = (0..producers)
        .map(|p| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mine: Vec<u64> = (0..n / producers).map(|i| p * n + i).collect();
                if bulk <= 1 {
                    for i in mine {
                        queue.add("noop", &i, JobOptions::new()).await.expect("add");
                    }
                } else {
                    for chunk in mine.chunks(bulk) {
                        queue
                            .add_bulk(chunk.iter().map(|&i| ("noop", i, JobOptions::new())))
                            .await
                            .expect("add");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("producer");
    }
    let elapsed = started.elapsed();
    assert_eq!(
        queue.counts().await.expect("counts").waiting,
        n / producers * producers
    );
    n as f64 / elapsed.as_secs_f64()
}

fn added(threads: usize, n: u64, producers: u64, bulk: usize) {
    let rt = runtime(threads);
    let rates = (0..RUNS)
        .map(|_| rt.block_on(added_once(n, producers, bulk)))
        .collect();
    let how = if bulk <= 1 {
        "add".to_owned()
    } else {
        format!("add_bulk of {bulk}")
    };
    report(
        &format!("added: {threads} thread(s), {producers} producer(s), {how}, {n} jobs"),
        rates,
    );
}

/// Times one producer adding `n` jobs one by one while a worker of `concurrency` slots runs
/// them, until the last is processed.
async fn pipeline_once(n: u64, concurrency: usize) -> f64 {
    let queue = Queue::in_memory("bench", &MemoryBroker::new()).expect("queue");
    let worker = Worker::builder(&queue)
        .handle("noop", |_: u64| async { Ok::<_, io::Error>(()) })
        .concurrency(concurrency)
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("worker");
    let started = Instant::now();
    let producer = {
        let queue = queue.clone();
        tokio::spawn(async move {
            for i in 0..n {
                queue.add("noop", &i, opts(false)).await.expect("add");
            }
        })
    };
    producer.await.expect("producer");
    loop {
        let c = queue.counts().await.expect("counts");
        if c.waiting == 0 && c.active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let elapsed = started.elapsed();
    worker.close(Duration::from_secs(5)).await.expect("close");
    n as f64 / elapsed.as_secs_f64()
}

fn pipeline(threads: usize, n: u64, concurrency: usize) {
    let rt = runtime(threads);
    let rates = (0..RUNS)
        .map(|_| rt.block_on(pipeline_once(n, concurrency)))
        .collect();
    report(
        &format!(
            "added and processed at once: {threads} thread(s), concurrency {concurrency}, {n} jobs"
        ),
        rates,
    );
}

/// CPU time (user + system) of this process, from /proc.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

fn idle() {
    let rt = runtime(2);
    rt.block_on(async {
        let queue = Queue::in_memory("idle", &MemoryBroker::new()).expect("queue");
        let worker = Worker::builder(&queue)
            .handle("noop", |_: u64| async { Ok::<_, io::Error>(()) })
            .concurrency(64)
            .shutdown(&ShutdownCoordinator::new())
            .start()
            .await
            .expect("worker");
        // One job delayed past the window keeps the queue's timer armed.
        queue
            .add(
                "noop",
                &0u64,
                JobOptions::new().delay(Duration::from_secs(3600)),
            )
            .await
            .expect("add");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = cpu_time();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = cpu_time();
        worker.close(Duration::from_secs(1)).await.expect("close");
        match (before, after) {
            (Some(b), Some(a)) => println!(
                "idle: one worker of 64 slots, one delayed job, 5 s          CPU {:?}",
                a.saturating_sub(b)
            ),
            _ => println!("idle: /proc/self/stat unreadable, CPU time not measured"),
        }
    });
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if run("processed") {
        processed(2, 1_000_000, 1, false);
        processed(2, 1_000_000, 2, false);
        processed(2, 1_000_000, 16, false);
        processed(2, 1_000_000, 64, false);
        processed(1, 1_000_000, 1, false);
        processed(1, 1_000_000, 16, false);
        processed(2, 1_000_000, 16, true);
    }
    if run("added") {
        added(1, 1_000_000, 1, 1);
        added(2, 1_000_000, 2, 1);
        added(2, 1_000_000, 2, 1000);
    }
    if run("pipeline") {
        pipeline(2, 1_000_000, 1);
        pipeline(2, 1_000_000, 16);
    }
    if run("idle") {
        idle();
    }
}
