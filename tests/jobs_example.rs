//! `cargo run --example jobs` as a real child process: in memory (no Redis), it exits 0 and shows
//! the priorities, a retried job, a job failed at once, a delayed job and the shutdown drain.

#[path = "support/example.rs"]
mod example;

use std::process::Command;

#[test]
fn jobs_example_runs_in_memory_and_shows_each_behaviour() {
    let out = Command::new(example::example_binary("jobs"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run the jobs example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let pos = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing from:\n{stdout}"))
    };
    pos("queue `emails` on process memory");
    pos("same id: true");
    // Priorities: critical before high before normal before low.
    assert!(pos("invoice 8: invalid address") < pos("invoice 7: sent"));
    assert!(pos("invoice 7: sent") < pos("welcome 99 attempt 1"));
    assert!(pos("welcome 99 attempt 1") < pos("welcome 2 attempt 1"));
    // A transient failure is retried until it succeeds; a permanent one is not.
    pos("welcome 1 attempt 3: sent");
    pos("failed: invalid address \"nobody\"");
    pos("digest: sent");
    pos("counts: 6 completed, 1 failed");
    pos("shutdown: Success");
}
