//! The Redis backend: BullMQ's data model through the official Rust port (`bullmq-official`),
//! so Rust and Node BullMQ producers and workers share queues.
//!
//! Build a queue with [`Queue::redis`](super::Queue::redis) (a [`RedisConfig`](crate::redis::RedisConfig))
//! or [`Queue::connect`](super::Queue::connect) (a [`RedisJobsConfig`]: Cluster, Sentinel,
//! prefix override, memory fallback).
//!
//! ```no_run
//! use resilience::jobs::{JobOptions, Queue};
//! use resilience::jobs::redis::RedisJobsConfig;
//! use resilience::redis::RedisConfig;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisConfig::from_url("redis://127.0.0.1:6379")?.key_prefix("nova").build()?;
//! let queue = Queue::redis("emails", &redis).await?;          // BullMQ prefix `nova/jobs`
//! queue.add("welcome", &serde_json::json!({ "user": 42 }), JobOptions::new()).await?;
//!
//! let cluster = RedisJobsConfig::builder(redis.clone())
//!     .cluster([("10.0.0.1", 7000u16), ("10.0.0.2", 7000)])
//!     .build()?;
//! let on_cluster = Queue::connect("emails", cluster).await?;   // queue name `{emails}`
//! # Ok(()) }
//! ```
//!
//! # Keys, and what a Node process must pass
//! DESIGN §5 puts the jobs under `<prefix>:jobs`, but bullmq-official refuses `:` in a BullMQ
//! prefix. So the BullMQ prefix is our key prefix with every `:` turned into `/`, then `/jobs`
//! (`nova:prod` → `nova/prod/jobs`; `jobs` when the key prefix is empty), or the one set with
//! [`RedisJobsConfigBuilder::bullmq_prefix`]; keys are `<bullmq prefix>:<queue>:...`. On a
//! Cluster the queue name is wrapped as `{<queue>}` so that all of a queue's keys share one
//! hash slot. A Node BullMQ process sharing the queue passes both:
//!
//! ```js
//! const queue = new Queue("{emails}" /* "emails" without Cluster */, {
//!   connection, prefix: "nova/jobs",
//! });
//! ```
//! [`RedisJobsConfig::bullmq_prefix`] and [`RedisJobsConfig::bullmq_queue_name`] give the exact
//! strings.
//!
//! # Retries and timeouts travel with the job
//! Jobs added here carry `attempts` (their retry policy's) and `backoff: {type: "resilience"}`,
//! a custom strategy: our worker's handler decides the delay (policy backoff or the error's
//! `Retry-After`), and bullmq's backoff hook applies it. A per-attempt timeout rides in that
//! type string (`resilience;timeout_ms=5000`), since BullMQ's options have no timeout field.
//! A job added by Node with `backoff: {type: "fixed" | "exponential"}` keeps BullMQ's own
//! delays; one added without `backoff` is retried at once; one added without `attempts` runs
//! once. A Node *worker* taking one of our jobs needs a `backoffStrategy` for the `resilience`
//! type to retry it.
//!
//! # Connecting
//! The queue first checks, within the connect timeout, that Redis answers and accepts the
//! credentials: an unreachable server is [`QueueError::Unavailable`](super::QueueError), never
//! a hang; refused credentials, an untrusted certificate or a bad TLS file are
//! [`QueueError::Redis`](super::QueueError) with the typed [`RedisError`](crate::redis::RedisError)
//! (never the password). TLS reads the PEM files of the config's `ca_file` and client
//! certificate. Each call then has the config's response timeout as its deadline (one per
//! started thousand jobs for a bulk add); bullmq's own connections reconnect by themselves.
//! An idle worker blocks in `BZPOPMIN` and wakes every 10 s (the drain delay).
//!
//! # Limitations
//! - **Sentinel**: the master is resolved through our Sentinel support when the queue is built
//!   and again when each worker starts, then bullmq connects to that address. bullmq-official
//!   cannot follow a later failover by itself: after one, its connections keep reconnecting to
//!   the old address (a demoted master answers writes with `READONLY`). Rebuild the queue and
//!   restart the workers (e.g. restart the process) after a failover.
//! - **Memory fallback** ([`RedisJobsConfigBuilder::fallback_to_memory`], opt-in): jobs added
//!   while on the fallback live in this process only and are **lost when it exits**; the queue
//!   does not move back to Redis by itself.
//! - bullmq-official's connection and response timeouts for its own reconnects are fixed
//!   (10 s); ours bound each call.
//! - `add_bulk` sends the jobs' scripts pipelined on one connection (one round trip's worth of
//!   latency), not as one transaction.

mod backoff;
mod config;
mod connect;
mod queue;
mod worker;

use std::sync::Arc;

pub use config::{RedisJobsConfig, RedisJobsConfigBuilder};

use super::error::QueueError;
use super::queue::{BackendKind, Queue};
use crate::metrics::JOB_QUEUE_FALLBACK_TOTAL;

/// The queue `name` on Redis, or on the memory fallback when Redis is unreachable and the
/// config allows it.
pub(crate) async fn open(name: &str, config: RedisJobsConfig) -> Result<Queue, QueueError> {
    let fallback = config.fallback.clone();
    match queue::RedisQueue::connect(name, config).await {
        Ok(backend) => Ok(Queue {
            name: Arc::from(name),
            backend: Arc::new(backend),
            kind: BackendKind::Redis,
        }),
        Err(QueueError::Unavailable(reason)) => {
            let Some(broker) = fallback else {
                return Err(QueueError::Unavailable(reason));
            };
            tracing::warn!(
                queue = name,
                %reason,
                "Redis is unreachable: this job queue runs in memory; its jobs are lost when \
                 the process exits"
            );
            metrics::counter!(JOB_QUEUE_FALLBACK_TOTAL, "queue" => name.to_owned()).increment(1);
            let mut queue = Queue::in_memory(name, &broker)?;
            queue.kind = BackendKind::MemoryFallback;
            Ok(queue)
        }
        Err(e) => Err(e),
    }
}
