//! The global coordinator: `#[shutdown_hook]`-style static hooks, free functions, and a real
//! SIGTERM delivered to this test process. One test, since it shuts the global coordinator down.

use std::sync::Mutex;
use std::time::Duration;

use resilience::shutdown::{
    self, HookFuture, HookStatus, Priority, ShutdownConfig, ShutdownError, ShutdownOutcome,
    StaticShutdownHook,
};

static LOG: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn static_hook() -> HookFuture {
    Box::pin(async {
        LOG.lock().unwrap().push("static-high");
        Ok(())
    })
}

// What `#[shutdown_hook(priority = "high")]` expands to.
inventory::submit! {
    StaticShutdownHook { name: "static-high", priority: 75, run: static_hook }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_runs_registered_and_static_hooks_in_priority_order() {
    shutdown::configure_shutdown(
        ShutdownConfig::builder()
            .total_timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
    )
    .unwrap();
    shutdown::register_shutdown_hook("critical", Priority::CRITICAL, || async {
        LOG.lock().unwrap().push("critical");
    })
    .unwrap();
    shutdown::register_shutdown_hook("low", "low".parse::<Priority>().unwrap(), || async {
        LOG.lock().unwrap().push("low");
        Ok::<_, std::io::Error>(())
    })
    .unwrap();
    let global = shutdown::ShutdownCoordinator::global();
    let signals = global.watch_signals().unwrap();
    assert!(shutdown::should_accept_requests());
    let token = shutdown::cancellation_token();
    let guard = shutdown::in_flight();

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // The in-flight guard holds the hooks back until it drops; readiness is already off.
    tokio::time::timeout(Duration::from_secs(10), token.cancelled())
        .await
        .expect("token cancelled after SIGTERM");
    assert!(!shutdown::should_accept_requests());
    assert!(shutdown::is_shutting_down());
    assert!(
        LOG.lock().unwrap().is_empty(),
        "hooks wait for in-flight work"
    );
    drop(guard);

    let report = tokio::time::timeout(Duration::from_secs(10), signals)
        .await
        .expect("shutdown finished")
        .unwrap();
    assert_eq!(report.outcome, ShutdownOutcome::Success);
    assert_eq!(*LOG.lock().unwrap(), ["critical", "static-high", "low"]);
    assert_eq!(
        report.hook("static-high").unwrap().status,
        HookStatus::Completed
    );
    assert_eq!(shutdown::shutdown().await, report);
    assert!(matches!(
        shutdown::register_shutdown_hook("late", 0, || async {}),
        Err(ShutdownError::AlreadyStarted)
    ));
}
