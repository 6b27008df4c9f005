//! SIGTERM / SIGINT: the first begins shutdown, a second forces exit.

use std::sync::atomic::Ordering;

use tokio::task::JoinHandle;

use super::{ShutdownCoordinator, ShutdownError, ShutdownReport};

impl ShutdownCoordinator {
    /// On the first SIGTERM or SIGINT (Ctrl-C), runs the shutdown and then exits the process with
    /// the report's exit code (0, 1 or 124). A second signal during shutdown exits at once with
    /// `128 + signal number` (143 for SIGTERM, 130 for SIGINT), as a shell would report it.
    ///
    /// Needs a tokio runtime; installing twice is a no-op.
    pub fn install_signal_handlers(&self) -> Result<(), ShutdownError> {
        self.spawn_signal_task(true).map(|_| ())
    }

    /// Like [`install_signal_handlers`](Self::install_signal_handlers) but does not exit after a
    /// completed shutdown: the returned task yields the report. A second signal still forces exit.
    pub fn watch_signals(&self) -> Result<JoinHandle<ShutdownReport>, ShutdownError> {
        self.spawn_signal_task(false)
    }

    fn spawn_signal_task(
        &self,
        exit_when_done: bool,
    ) -> Result<JoinHandle<ShutdownReport>, ShutdownError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ShutdownError::NoRuntime)?;
        let mut signals = {
            let _enter = handle.enter();
            Signals::new().map_err(ShutdownError::Signal)?
        };
        if self.signals_installed().swap(true, Ordering::AcqRel) {
            let this = self.clone();
            return Ok(handle.spawn(async move { this.wait().await }));
        }
        let this = self.clone();
        Ok(handle.spawn(async move {
            let first = signals.recv().await;
            tracing::info!(signal = first, "signal received, shutting down");
            let coordinator = this.clone();
            let mut run = tokio::spawn(async move { coordinator.shutdown().await });
            let report = tokio::select! {
                report = &mut run => match report {
                    Ok(report) => report,
                    // Hooks run in their own tasks, so this needs a runtime shutting down under us.
                    Err(_) => std::process::exit(super::EXIT_FAILURE),
                },
                second = signals.recv() => {
                    tracing::warn!(signal = second, "second signal, forcing exit");
                    std::process::exit(128 + second)
                }
            };
            if exit_when_done {
                std::process::exit(report.exit_code());
            }
            report
        }))
    }
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The number of the next signal received.
    async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.term.recv() => 15,
            _ = self.int.recv() => 2,
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn recv(&mut self) -> i32 {
        match tokio::signal::ctrl_c().await {
            Ok(()) => 2,
            Err(_) => std::future::pending().await,
        }
    }
}
