//! The README's first command, `cargo run --example quickstart`, as a real child process: it
//! needs no Redis, exits 0, and shows each layer doing its job.

#[path = "support/example.rs"]
mod example;

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn quickstart_runs_without_redis_and_shows_every_layer() {
    let exe = example::example_binary("quickstart");
    let started = Instant::now();
    let out = Command::new(exe)
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG")
        .output()
        .expect("run the quickstart");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    for expected in [
        "rate limited, retry after",    // the limiter refuses part of the burst
        "[retry]   attempt 1/3 failed", // a hiccup is retried
        "weather: closed -> open",      // the breaker opens when the upstream is down
        "rejected fast: breaker open",  // ... and then fails fast
        "weather: half_open -> closed", // ... and closes after recovery
        "== the same stack, declared with attributes",
        "declared breaker is open",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}
