//! What a shutdown did: per-hook results, the outcome and its exit code.

use std::fmt;
use std::time::Duration;

use super::Priority;

/// Exit code of a clean shutdown.
pub const EXIT_SUCCESS: i32 = 0;
/// Exit code when a hook failed or panicked.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code when the total timeout cut the shutdown short (as `timeout(1)` uses).
pub const EXIT_TIMEOUT: i32 = 124;

/// How a shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShutdownOutcome {
    /// Every hook completed (or was cut at its own timeout, unless configured to fail).
    Success,
    /// At least one hook returned an error or panicked.
    Failure,
    /// The total timeout expired before every hook had finished.
    TimedOut,
}

impl ShutdownOutcome {
    /// 0 for success, 1 for failure, 124 for timeout.
    pub const fn exit_code(self) -> i32 {
        match self {
            Self::Success => EXIT_SUCCESS,
            Self::Failure => EXIT_FAILURE,
            Self::TimedOut => EXIT_TIMEOUT,
        }
    }
}

/// How one hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookStatus {
    /// It returned `Ok(())` (or `()`).
    Completed,
    /// It returned an error; the error's message.
    Failed(String),
    /// It panicked; the panic message when it was a string.
    Panicked(String),
    /// It was cut at its own timeout.
    TimedOut(Duration),
    /// It was still running, or had not started, when the total timeout expired.
    Abandoned,
}

impl HookStatus {
    /// Whether the hook completed.
    pub fn is_completed(&self) -> bool {
        matches!(self, Self::Completed)
    }
}

impl fmt::Display for HookStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Completed => f.write_str("completed"),
            Self::Failed(e) => write!(f, "failed: {e}"),
            Self::Panicked(m) => write!(f, "panicked: {m}"),
            Self::TimedOut(d) => write!(f, "timed out after {d:?}"),
            Self::Abandoned => f.write_str("abandoned at the total timeout"),
        }
    }
}

/// One hook's line in a [`ShutdownReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookReport {
    /// The hook's name.
    pub name: String,
    /// Its priority.
    pub priority: Priority,
    /// How it ended.
    pub status: HookStatus,
    /// How long it ran (zero when it never started).
    pub elapsed: Duration,
}

/// The result of a shutdown: the outcome, every hook's result (in the order they were started,
/// highest priority first) and whether in-flight work drained in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// How the shutdown ended.
    pub outcome: ShutdownOutcome,
    /// Per-hook results, highest priority first.
    pub hooks: Vec<HookReport>,
    /// Whether all tracked in-flight work finished before the drain timeout.
    pub drained: bool,
    /// Time from the start of shutdown to the end of the last tier.
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// The process exit code for this outcome: 0, 1 or 124.
    pub fn exit_code(&self) -> i32 {
        self.outcome.exit_code()
    }

    /// The result of the hook named `name`, if it ran.
    pub fn hook(&self, name: &str) -> Option<&HookReport> {
        self.hooks.iter().find(|h| h.name == name)
    }
}
