//! `#[job]`: the handler a declaration registers and the typed enqueue helpers it generates.
//!
//! The helper traits exist for their messages: a payload, return value or error type that does
//! not fit gets an error naming the fix, spanned where the macro puts the call (the payload's
//! type, the return type, the context parameter's type).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::retry::{RetryPreset, Retryable};

pub use crate::jobs::{
    Handler, JobContext, JobOptions, JobPriority, JobRegistration, Queue, QueueError,
};

/// Everything a `#[job]` attribute says about its job, as constants.
#[derive(Debug, Clone, Copy)]
pub struct JobSpec {
    /// The queue the job belongs to.
    pub queue: &'static str,
    /// The job name.
    pub name: &'static str,
    /// `priority = ...`, if given.
    pub priority: Option<JobPriority>,
    /// `retry = "..."` (default `standard`).
    pub retry: RetryPreset,
    /// `timeout_ms = ...`, if given.
    pub timeout: Option<Duration>,
}

/// The payload type of a `#[job]` function: read by the worker, written by the enqueue helper.
#[diagnostic::on_unimplemented(
    message = "the payload of a `#[job]` function must be serialisable and deserialisable, and `{Self}` is not",
    label = "`{Self}` must implement `serde::Serialize` and `serde::de::DeserializeOwned`, and be `Send + 'static`",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`"
)]
pub trait JobPayload: Serialize + DeserializeOwned + Send + 'static {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + Send + 'static> JobPayload for T {}

/// The `Ok` type of a `#[job]` function: stored as the job's return value.
#[diagnostic::on_unimplemented(
    message = "the `Ok` value of a `#[job]` function is stored as the job's result, so `{Self}` must implement `serde::Serialize`",
    label = "`{Self}` does not implement `serde::Serialize` (or is not `Send + 'static`)",
    note = "derive `serde::Serialize` for it, or return `()`"
)]
pub trait JobOutput: Serialize + Send + 'static {}

#[diagnostic::do_not_recommend]
impl<R: Serialize + Send + 'static> JobOutput for R {}

/// The error type of a `#[job]` function: classified by [`Retryable`], recorded by `Display`.
#[diagnostic::on_unimplemented(
    message = "a `#[job]` worker needs to know which `{Self}` errors are worth another attempt",
    label = "`{Self}` must implement `resilience::retry::Retryable` and `Display`, and be `Send + 'static`",
    note = "implement `resilience::retry::Retryable` for `{Self}` (`std::io::Error` and `anyhow::Error` do)"
)]
pub trait JobFailure: Retryable + fmt::Display + Send + 'static {}

#[diagnostic::do_not_recommend]
impl<E: Retryable + fmt::Display + Send + 'static> JobFailure for E {}

/// The second parameter of a `#[job]` function.
#[diagnostic::on_unimplemented(
    message = "the second parameter of a `#[job]` function must be `resilience::jobs::JobContext`, not `{Self}`",
    label = "expected `resilience::jobs::JobContext`"
)]
pub trait FromJobContext {
    fn from_job_context(ctx: JobContext) -> Self;
}

impl FromJobContext for JobContext {
    #[inline(always)]
    fn from_job_context(ctx: JobContext) -> Self {
        ctx
    }
}

/// Hands the worker's context to the function's second parameter (whose type
/// [`FromJobContext`] checks).
#[inline(always)]
pub fn context<C: FromJobContext>(ctx: JobContext) -> C {
    C::from_job_context(ctx)
}

/// The handler of a `#[job]` function (`f` takes the payload and the [`JobContext`]), with the
/// attribute's retry preset and timeout. The macro names `T` explicitly, spanned on the payload's
/// type, so a payload that does not fit is reported there.
pub fn handler<T, R, E, F, Fut>(spec: &JobSpec, f: F) -> Handler
where
    T: JobPayload,
    R: JobOutput,
    E: JobFailure,
    F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
{
    let handler = Handler::with_context(spec.name, f).retry(spec.retry);
    match spec.timeout {
        Some(timeout) => handler.timeout(timeout),
        None => handler,
    }
}

/// What `<fn>_enqueue_with` does: checks the queue is the attribute's, then adds the job with
/// [`JobSpec::options`].
pub async fn enqueue<T: JobPayload>(
    spec: &JobSpec,
    queue: &Queue,
    payload: &T,
    opts: JobOptions,
) -> Result<String, QueueError> {
    if queue.name() != spec.queue {
        return Err(QueueError::WrongQueue {
            expected: spec.queue.to_owned(),
            actual: queue.name().to_owned(),
        });
    }
    queue.add(spec.name, payload, spec.options(opts)).await
}

impl JobSpec {
    /// `opts` with the attribute's priority, retry preset and timeout wherever `opts` leaves
    /// them unset.
    pub fn options(&self, mut opts: JobOptions) -> JobOptions {
        if opts.priority.is_none() {
            opts.priority = self.priority;
        }
        if opts.retry.is_none() {
            opts.retry = Some(self.retry.into());
        }
        if opts.timeout.is_none() {
            opts.timeout = self.timeout;
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: JobSpec = JobSpec {
        queue: "emails",
        name: "welcome",
        priority: Some(JobPriority::High),
        retry: RetryPreset::Patient,
        timeout: Some(Duration::from_secs(30)),
    };

    #[test]
    fn options_fill_only_what_the_caller_left_unset() {
        let filled = SPEC.options(JobOptions::new());
        assert_eq!(filled.priority_level(), 2);
        assert_eq!(filled.max_attempts(), 5);
        assert_eq!(filled.attempt_timeout(), Some(Duration::from_secs(30)));

        let own = SPEC.options(
            JobOptions::new()
                .priority(JobPriority::Low)
                .retry(RetryPreset::Quick)
                .timeout(Duration::from_secs(1)),
        );
        assert_eq!(own.priority_level(), 4);
        assert_eq!(own.max_attempts(), 2);
        assert_eq!(own.attempt_timeout(), Some(Duration::from_secs(1)));

        let bare = JobSpec {
            priority: None,
            timeout: None,
            ..SPEC
        }
        .options(JobOptions::new());
        assert_eq!(bare.priority_level(), 3);
        assert_eq!(
            bare.attempt_timeout(),
            SPEC.retry.policy().attempt_timeout()
        );
    }

    #[test]
    fn handler_carries_the_attribute_settings() {
        let h = handler(&SPEC, |n: u64, _ctx: JobContext| async move {
            Ok::<_, std::io::Error>(n)
        });
        assert_eq!(h.name(), "welcome");
        assert_eq!(h.timeout, Some(Duration::from_secs(30)));
        assert_eq!(
            h.retry.as_ref().map(|p| p.max_attempts()),
            Some(RetryPreset::Patient.policy().max_attempts())
        );
    }
}
