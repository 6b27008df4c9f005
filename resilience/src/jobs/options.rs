//! What a producer says about one job: priority, delay, id, retries, timeout, retention.

use std::time::Duration;

use crate::retry::{RetryPolicy, RetryPreset};

/// The longest delay a job may be added with, and the longest a retry waits (a longer retry
/// delay is shortened to it): 10 years. BullMQ orders delayed jobs by `(due ms) × 4096` in a Lua
/// double, exact only up to 2^53 — about the year 2039 — so longer delays would lose their order.
pub const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The highest priority number BullMQ accepts (lower numbers run first; 1 is the highest).
pub const MAX_PRIORITY: u32 = 2_097_151;

/// A job's priority: one of the four names (DESIGN §5: critical 1, high 2, normal 3, low 4) or
/// BullMQ's number, lower first. A job added with no priority at all (number 0, as a Node producer
/// does by default) is served before every prioritized job — BullMQ's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum JobPriority {
    /// 1: ahead of everything prioritized.
    Critical,
    /// 2.
    High,
    /// 3: the default for jobs added through this toolkit.
    #[default]
    Normal,
    /// 4.
    Low,
    /// Any BullMQ number, `0..=MAX_PRIORITY` (0 = not prioritized, served first).
    Level(u32),
}

impl JobPriority {
    /// Every priority name, as [`JobPriority::from_name`] accepts it (and `#[job]` checks it).
    pub const NAMES: &'static [&'static str] = &["critical", "high", "normal", "low"];

    /// The priority called `name` (one of [`JobPriority::NAMES`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "critical" => Some(Self::Critical),
            "high" => Some(Self::High),
            "normal" => Some(Self::Normal),
            "low" => Some(Self::Low),
            _ => None,
        }
    }

    /// BullMQ's number for this priority.
    pub const fn level(self) -> u32 {
        match self {
            Self::Critical => 1,
            Self::High => 2,
            Self::Normal => 3,
            Self::Low => 4,
            Self::Level(n) => n,
        }
    }
}

impl From<u32> for JobPriority {
    fn from(level: u32) -> Self {
        Self::Level(level)
    }
}

/// How many finished jobs a queue keeps (BullMQ's `removeOnComplete` / `removeOnFail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Keep every finished job (BullMQ's default).
    #[default]
    KeepAll,
    /// Remove the job as soon as it finishes.
    RemoveAll,
    /// Keep at most `count` jobs, and none older than `age` (either may be `None`: no bound).
    Keep {
        /// At most this many finished jobs.
        count: Option<usize>,
        /// None older than this (BullMQ rounds to whole seconds).
        age: Option<Duration>,
    },
}

impl Retention {
    /// Keep at most `count` finished jobs.
    pub const fn count(count: usize) -> Self {
        Self::Keep {
            count: Some(count),
            age: None,
        }
    }

    /// Keep finished jobs no older than `age`.
    pub const fn age(age: Duration) -> Self {
        Self::Keep {
            count: None,
            age: Some(age),
        }
    }
}

/// Options for one job; every field is optional. Build with [`JobOptions::new`] and the setters.
///
/// ```
/// use std::time::Duration;
/// use resilience::jobs::{JobOptions, JobPriority, Retention};
/// use resilience::retry::RetryPreset;
///
/// let opts = JobOptions::new()
///     .priority(JobPriority::High)
///     .delay(Duration::from_secs(5))
///     .job_id("welcome-42")
///     .retry(RetryPreset::Patient)
///     .timeout(Duration::from_secs(30))
///     .remove_on_complete(Retention::count(1000));
/// assert_eq!(opts.max_attempts(), 5);
/// ```
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    pub(crate) priority: Option<JobPriority>,
    pub(crate) delay: Option<Duration>,
    pub(crate) job_id: Option<String>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) remove_on_complete: Retention,
    pub(crate) remove_on_fail: Retention,
    pub(crate) lifo: bool,
}

impl JobOptions {
    /// No options: priority normal, no delay, a generated id, the `standard` retry preset's
    /// attempts, no timeout, keep finished jobs.
    pub fn new() -> Self {
        Self::default()
    }

    /// The job's priority (default [`JobPriority::Normal`]).
    pub fn priority(mut self, priority: impl Into<JobPriority>) -> Self {
        self.priority = Some(priority.into());
        self
    }

    /// Run no sooner than `delay` from now (at most [`MAX_DELAY`]).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The job's id: adding a job whose id already exists keeps the one job (idempotent add).
    pub fn job_id(mut self, id: impl Into<String>) -> Self {
        self.job_id = Some(id.into());
        self
    }

    /// The retry policy: its `max_attempts` travels with the job; the worker's handler decides
    /// the delays and which errors are worth another attempt (see the module docs).
    pub fn retry(mut self, policy: impl Into<RetryPolicy>) -> Self {
        self.retry = Some(policy.into());
        self
    }

    /// Cut each attempt after `timeout`; a cut attempt is a failed, retryable attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Which completed jobs to keep.
    pub fn remove_on_complete(mut self, retention: Retention) -> Self {
        self.remove_on_complete = retention;
        self
    }

    /// Which failed jobs to keep.
    pub fn remove_on_fail(mut self, retention: Retention) -> Self {
        self.remove_on_fail = retention;
        self
    }

    /// Serve this job before the others of its priority (last in, first out).
    pub fn lifo(mut self) -> Self {
        self.lifo = true;
        self
    }

    /// Attempts the job gets: its retry policy's, else the `standard` preset's (3).
    pub fn max_attempts(&self) -> u32 {
        self.retry
            .as_ref()
            .map_or(RetryPreset::Standard.policy().max_attempts(), |p| {
                p.max_attempts()
            })
    }

    /// The priority number the job is stored with.
    pub fn priority_level(&self) -> u32 {
        self.priority.unwrap_or_default().level()
    }

    /// The per-attempt timeout: this job's, else its retry policy's `attempt_timeout`.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.timeout
            .or_else(|| self.retry.as_ref().and_then(|p| p.attempt_timeout()))
    }

    /// The delay, if any.
    pub fn delay_value(&self) -> Option<Duration> {
        self.delay
    }

    /// The id, if one was given.
    pub fn id_value(&self) -> Option<&str> {
        self.job_id.as_deref()
    }

    /// Whether the options are ones every backend accepts; the typed error names the field.
    pub(crate) fn validate(&self) -> Result<(), crate::ConfigError> {
        if let Some(JobPriority::Level(n)) = self.priority
            && n > MAX_PRIORITY
        {
            return Err(crate::ConfigError::new(
                "priority",
                "must be at most 2097151 (BullMQ's limit)",
            ));
        }
        if let Some(id) = &self.job_id {
            if id.is_empty() {
                return Err(crate::ConfigError::new("job_id", "must not be empty"));
            }
            // BullMQ reserves integer ids for its own counter and `:` for its key layout.
            if id.parse::<i64>().is_ok_and(|n| n.to_string() == *id) {
                return Err(crate::ConfigError::new(
                    "job_id",
                    "must not be an integer (BullMQ reserves those for generated ids)",
                ));
            }
            if id.contains(':') {
                return Err(crate::ConfigError::new("job_id", "must not contain `:`"));
            }
        }
        if self.delay.is_some_and(|d| d > MAX_DELAY) {
            return Err(crate::ConfigError::new("delay", "must be at most 10 years"));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(crate::ConfigError::new(
                "timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_typed_errors() {
        let field = |o: JobOptions| o.validate().unwrap_err().field;
        assert_eq!(field(JobOptions::new().delay(Duration::MAX)), "delay");
        assert!(JobOptions::new().delay(MAX_DELAY).validate().is_ok());
        assert_eq!(
            field(JobOptions::new().priority(MAX_PRIORITY + 1)),
            "priority"
        );
        assert!(JobOptions::new().priority(MAX_PRIORITY).validate().is_ok());
        assert_eq!(field(JobOptions::new().job_id("")), "job_id");
        assert_eq!(field(JobOptions::new().job_id("42")), "job_id");
        assert_eq!(field(JobOptions::new().job_id("-7")), "job_id");
        assert!(JobOptions::new().job_id("007").validate().is_ok());
        assert_eq!(field(JobOptions::new().job_id("a:b")), "job_id");
        assert_eq!(field(JobOptions::new().timeout(Duration::ZERO)), "timeout");
        assert!(JobOptions::new().timeout(Duration::MAX).validate().is_ok());
    }
}
