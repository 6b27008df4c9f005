//! The errors a queue, a worker and a job can end with.

use std::time::Duration;

use crate::ConfigError;

/// Why a queue or worker operation failed. Never contains a password or a payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// An option was rejected before anything was sent.
    #[error("invalid job queue configuration: {0}")]
    Config(#[from] ConfigError),
    /// The payload could not be serialised to JSON.
    #[error("job payload could not be serialised: {0}")]
    Serialize(String),
    /// Redis could not be reached or answered with an error (the message is the driver's, with
    /// any credentials removed).
    #[error("job queue backend unavailable: {0}")]
    Unavailable(String),
    /// Redis answered but refused the connection's configuration: wrong credentials
    /// ([`RedisError::Auth`](crate::redis::RedisError::Auth)), an untrusted certificate, a bad
    /// TLS file, an ACL that forbids the commands. Never covered by the memory fallback.
    #[error("job queue cannot use Redis: {0}")]
    Redis(#[source] crate::redis::RedisError),
    /// The backend refused the operation (a BullMQ script error, a closed queue).
    #[error("job queue backend refused the operation: {0}")]
    Backend(String),
    /// The worker or queue was already closed.
    #[error("the job queue was closed")]
    Closed,
    /// A `#[job]` helper was given a queue other than the one its attribute names.
    #[error("job declared for queue `{expected}` was enqueued on queue `{actual}`")]
    WrongQueue {
        /// The queue the `#[job]` attribute names.
        expected: String,
        /// The queue it was given.
        actual: String,
    },
    /// A worker needs at least one handler.
    #[error("the worker for queue `{queue}` has no handler")]
    NoHandler {
        /// The queue.
        queue: String,
    },
    /// Closing the worker did not finish in flight jobs within the timeout; they stay active
    /// until their lock expires and another worker takes them over.
    #[error("{in_flight} job(s) still running when the close timeout ({timeout:?}) ran out")]
    CloseTimeout {
        /// Jobs still running.
        in_flight: usize,
        /// The timeout that ran out.
        timeout: Duration,
    },
}

/// Why one attempt of a job failed, as recorded in the job's failure reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The payload did not deserialise into the handler's type: the job fails at once
    /// (retrying cannot fix it) and the worker goes on.
    #[error("job payload does not match the handler's type: {0}")]
    Payload(String),
    /// No handler is registered for the job's name on this worker.
    #[error("no handler for job name `{0}`")]
    NoHandler(String),
    /// The attempt ran past its timeout and was cut.
    #[error("job attempt timed out after {0:?}")]
    Timeout(Duration),
    /// The handler panicked; the worker caught it and goes on.
    #[error("job handler panicked: {0}")]
    Panicked(String),
    /// The handler returned an error (its `Display`).
    #[error("{0}")]
    Handler(String),
}
