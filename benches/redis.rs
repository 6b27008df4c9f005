//! Redis layer benchmarks against one private redis-server, side by side with `redis-benchmark`
//! on the same server in the same run:
//!
//! 1. rate-limit decisions/s, 50 tasks on one multiplexed connection, vs
//!    `redis-benchmark -c 50 -n 200000 EVALSHA <sha> 1 <key> ...`;
//! 2. p50 of one decision with 1 task vs `redis-benchmark -c 1 ... EVALSHA` p50;
//! 3. lock acquire + release cycles/s (two round trips), 50 tasks.
//!
//! Run: `cargo bench --bench redis` (prints figures; no criterion: the comparison needs one
//! server and one run). `REDIS_BENCH_N` overrides the request count (default 200000).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use resilience::circuit_breaker::get_circuit_breaker;
use resilience::redis::{Keys, RateWindow, RedisClient, RedisConfig, rate_limit_script_sha};

const TASKS: usize = 50;
// Far more tokens than the run can spend: every decision is "allowed", like redis-benchmark's.
const CAPACITY: u64 = 1 << 40;
const REFILL: f64 = 1_000_000.0;

struct BenchFigures {
    rps: f64,
    p50_ms: f64,
}

fn redis_benchmark(port: u16, clients: usize, n: usize, args: &[String]) -> BenchFigures {
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-n", &n.to_string(), "--csv"])
        .args(args);
    let out = cmd
        .output()
        .expect("redis-benchmark (apt-get install redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rfind(|l| !l.starts_with("\"test\""))
        .unwrap_or_else(|| panic!("no redis-benchmark output: {text}"));
    let fields: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|f| f.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    BenchFigures {
        rps: fields[0],
        p50_ms: fields[3],
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us without it: stay quick then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("REDIS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 200_000 });
    let server = support::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("multi-thread runtime (default workers):");
    // Inside a spawned task, as an application's handlers run: `block_on`'s own future runs on
    // the main thread, where every reply would cost a cross-thread wake-up.
    let port = server.port();
    rt.block_on(async move { tokio::spawn(run(port, n)).await.expect("bench task") });
    // The same on a current-thread runtime: the connection's driver task and the callers share
    // one thread, so no cross-thread wake-up sits in each round trip.
    println!();
    println!("current-thread runtime:");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(port, n));
}

async fn run(port: u16, n: usize) {
    let config = RedisConfig::builder()
        .port(port)
        .key_prefix("bench")
        .build()
        .expect("config");
    let redis = RedisClient::connect(config).await.expect("connect");
    let key = Keys::rate_api_key("bench", RateWindow::Second);
    let full_key = redis.key(&key).expect("key");
    let emission = 1_000_000.0 / REFILL;
    let sha = rate_limit_script_sha().to_owned();
    let eval_args: Vec<String> = [
        "EVALSHA",
        &sha,
        "1",
        &full_key,
        &CAPACITY.to_string(),
        &emission.to_string(),
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    println!("redis layer benchmark: redis-server 127.0.0.1:{port}, n = {n}");
    println!(
        "  redis-benchmark command: redis-benchmark -h 127.0.0.1 -p {port} -c <C> -n {n} --csv {}",
        eval_args.join(" ")
    );

    // Warm up both paths (connection, script cache, allocator).
    for _ in 0..2_000.min(n) {
        redis
            .rate_limit(&key, CAPACITY, REFILL, 1)
            .await
            .expect("warm-up");
    }
    let _ = redis_benchmark(port, 50, 2_000.min(n), &eval_args);

    // 1. Throughput, 50 tasks on one multiplexed connection.
    let ours_rps = throughput(&redis, n, |r, i| async move {
        let _ = i;
        let d = r
            .rate_limit(
                &Keys::rate_api_key("bench", RateWindow::Second),
                CAPACITY,
                REFILL,
                1,
            )
            .await
            .expect("decision");
        assert!(d.allowed);
    })
    .await;
    let theirs_50 = redis_benchmark(port, 50, n, &eval_args);

    // 2. Latency, one task.
    let single_n = (n / 10).max(1_000);
    let mut lat = Vec::with_capacity(single_n);
    for _ in 0..single_n {
        let t = Instant::now();
        redis
            .rate_limit(&key, CAPACITY, REFILL, 1)
            .await
            .expect("decision");
        lat.push(t.elapsed());
    }
    lat.sort_unstable();
    let ours_p50 = lat[lat.len() / 2];
    let theirs_1 = redis_benchmark(port, 1, single_n, &eval_args);

    // 3. Lock cycles (acquire + release), 50 tasks, one lock per task (no contention).
    let lock_cps = throughput(&redis, n / 2, |r, task| async move {
        let g = r
            .acquire_lock(
                &Keys::lock(format!("bench-{task}")),
                Duration::from_secs(30),
            )
            .await
            .expect("acquire");
        g.release().await.expect("release");
    })
    .await;

    let theirs_p50 = Duration::from_secs_f64(theirs_1.p50_ms / 1000.0);
    println!();
    println!("  rate-limit decisions/s, {TASKS} tasks, 1 connection : {ours_rps:>10.0}");
    println!(
        "  redis-benchmark -c 50 EVALSHA rps             : {:>10.0}   ratio {:.2} (target >= 1.0)",
        theirs_50.rps,
        ours_rps / theirs_50.rps
    );
    println!("  p50 one decision, 1 task                      : {ours_p50:>10.1?}");
    println!(
        "  redis-benchmark -c 1 EVALSHA p50              : {theirs_p50:>10.1?}   ratio {:.2} (target <= 1.3)",
        ours_p50.as_secs_f64() / theirs_p50.as_secs_f64()
    );
    println!(
        "  lock acquire+release cycles/s, {TASKS} tasks        : {lock_cps:>10.0}   ratio {:.2} of decisions/s (target >= 0.45)",
        lock_cps / ours_rps
    );
    // Keep the global breaker referenced so its (lock-free) path is the one measured.
    let _ = get_circuit_breaker("redis");
}

/// Runs `total` operations over `TASKS` tasks sharing `redis`; returns operations per second.
async fn throughput<F, Fut>(redis: &RedisClient, total: usize, op: F) -> f64
where
    F: Fn(RedisClient, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let per_task = total.div_ceil(TASKS);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let r = redis.clone();
        let op = Arc::clone(&op);
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                op(r.clone(), task).await;
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    (per_task * TASKS) as f64 / start.elapsed().as_secs_f64()
}
