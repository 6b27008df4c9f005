//! Shared by the Redis tests of `jobs`: a client config for a private server, a queue on it, a
//! worker builder with its own shutdown coordinator, a poll for a job's state, a handler error
//! with a chosen classification, and a fixed-delay policy.

use std::fmt;
use std::time::Duration;

use resilience::Retryable;
use resilience::jobs::{JobInfo, JobState, Queue, Worker, WorkerBuilder};
use resilience::redis::RedisConfig;
use resilience::retry::{Backoff, RetryPolicy};
use resilience::shutdown::ShutdownCoordinator;

use super::{RedisServer, poll_until};

pub const WAIT: Duration = Duration::from_secs(15);

pub fn config(port: u16) -> RedisConfig {
    RedisConfig::builder()
        .port(port)
        .key_prefix("t")
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

pub async fn queue(server: &RedisServer, name: &str) -> Queue {
    Queue::redis(name, &config(server.port()))
        .await
        .expect("queue on redis")
}

/// A worker builder on `queue` with a shutdown coordinator of its own.
pub fn builder(queue: &Queue) -> WorkerBuilder {
    Worker::builder(queue).shutdown(&ShutdownCoordinator::new())
}

/// Polls until job `id` is in `state`; its info then.
pub async fn until_state(queue: &Queue, id: &str, state: JobState) -> JobInfo {
    poll_until(WAIT, async || {
        queue.job(id).await.unwrap().filter(|j| j.state == state)
    })
    .await
    .unwrap_or_else(|| panic!("job {id} never reached {state:?}"))
}

/// A handler error with a chosen classification and `Retry-After` hint.
#[derive(Debug, Clone)]
pub struct TestError {
    pub msg: String,
    pub retryable: bool,
    pub after: Option<Duration>,
}

impl TestError {
    pub fn transient(msg: impl Into<String>) -> Self {
        Self {
            msg: msg.into(),
            retryable: true,
            after: None,
        }
    }
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl Retryable for TestError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
    fn retry_after(&self) -> Option<Duration> {
        self.after
    }
}

pub fn fixed(attempts: u32, delay: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(attempts)
        .backoff(Backoff::Fixed)
        .initial_delay(delay)
        .jitter(0.0)
        .total_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}
