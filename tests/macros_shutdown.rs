//! `#[shutdown_hook]`: statically registered hooks run when the global coordinator shuts down,
//! highest priority first, under their given names. (Own test binary: it shuts the process's
//! global coordinator down.)

use std::sync::Mutex;

use resilience::shutdown::HookStatus;
use resilience::{Priority, shutdown_hook};

static ORDER: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn ran(name: &'static str) {
    ORDER.lock().unwrap().push(name);
}

#[shutdown_hook(priority = "low")]
async fn close_files() {
    ran("close_files");
}

#[shutdown_hook(priority = "critical")]
async fn stop_accepting() {
    ran("stop_accepting");
}

#[shutdown_hook(name = "flush-metrics", priority = 60)]
async fn flush() -> Result<(), std::io::Error> {
    ran("flush-metrics");
    Ok(())
}

#[shutdown_hook(priority = "high")]
async fn close_redis() -> Result<(), String> {
    ran("close_redis");
    Err("redis was already gone".to_string())
}

#[tokio::test(start_paused = true)]
async fn static_hooks_run_at_shutdown_in_priority_order() {
    let report = resilience::shutdown::shutdown().await;
    let order = ORDER.lock().unwrap().clone();
    assert_eq!(
        order,
        [
            "stop_accepting",
            "close_redis",
            "flush-metrics",
            "close_files"
        ]
    );

    // Names and priorities come from the attributes.
    let flush = report
        .hook("flush-metrics")
        .expect("hook named by `name = ...`");
    assert_eq!(flush.priority, Priority(60));
    assert_eq!(flush.status, HookStatus::Completed);
    let redis = report.hook("close_redis").expect("hook named after the fn");
    assert_eq!(redis.priority, Priority::HIGH);
    assert!(
        matches!(redis.status, HookStatus::Failed(_)),
        "{:?}",
        redis.status
    );
    assert_eq!(report.hook("close_files").unwrap().priority, Priority::LOW);
    // A failed hook fails the shutdown (exit code 1).
    assert_eq!(report.exit_code(), 1);
}
