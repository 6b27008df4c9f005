//! The global shutdown's "shutdown started" log line counts every hook it will run, the
//! `#[shutdown_hook]` functions included. Its own binary: it shuts the global coordinator down
//! and installs a global log subscriber.

use std::io;
use std::sync::{Arc, Mutex};

use resilience::shutdown::{self, HookFuture, Priority, ShutdownOutcome, StaticShutdownHook};

fn static_hook() -> HookFuture {
    Box::pin(async { Ok(()) })
}

// What `#[shutdown_hook]` expands to: two hooks found through `inventory`.
inventory::submit! {
    StaticShutdownHook { name: "static-a", priority: 75, run: static_hook }
}
inventory::submit! {
    StaticShutdownHook { name: "static-b", priority: 0, run: static_hook }
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_started_line_counts_registered_and_static_hooks() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    // Global: the shutdown runs on a spawned task.
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    )
    .unwrap();
    shutdown::register_shutdown_hook("registered", Priority::NORMAL, || async {}).unwrap();

    let report = shutdown::shutdown().await;
    assert_eq!(report.outcome, ShutdownOutcome::Success);
    assert_eq!(report.hooks.len(), 3);

    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let started: Vec<_> = log
        .lines()
        .filter(|l| l.contains("shutdown started"))
        .collect();
    assert_eq!(started.len(), 1, "{log}");
    assert!(started[0].contains("hooks=3"), "{}", started[0]);
}
