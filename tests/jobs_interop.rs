//! Node BullMQ and our jobs share queues (issue 11, deliverable 7): a job added by Node's
//! `Queue.add` runs on our `Worker` and Node reads our return value; a job we add runs on a Node
//! `Worker` and we read its return value; Node's unprioritized jobs go before our prioritized
//! ones; a Node payload of the wrong shape fails that one job with a typed reason.
//!
//! Real parts: a private redis-server per test and the `bullmq@5` npm package, installed once
//! into `target/node-bullmq/` (tests/support/node.rs). Node must use the BullMQ prefix our
//! queue uses: our key prefix with `:` turned into `/`, plus `/jobs` (`jobs` when our prefix is
//! empty) — BullMQ forbids `:` in a prefix.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::jobs::redis::RedisJobsConfig;
use resilience::jobs::{JobInfo, JobOptions, JobPriority, JobState, Queue, Worker};
use resilience::redis::RedisConfig;
use resilience::retry::RetryPreset;
use resilience::shutdown::ShutdownCoordinator;
use serde_json::{Value, json};
use support::RedisServer;
use support::node::bullmq;

/// How long a job may take to reach its final state.
const SETTLE: Duration = Duration::from_secs(20);

/// The BullMQ prefix a Node process must use to share a queue with ours.
fn node_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        "jobs".to_owned()
    } else {
        format!("{}/jobs", prefix.replace(':', "/"))
    }
}

async fn redis_queue(server: &RedisServer, prefix: &str, name: &str) -> Queue {
    let config = RedisConfig::from_url(&server.url())
        .expect("url")
        .key_prefix(prefix)
        .build()
        .expect("redis config");
    // The rule the Node side follows here is the one the backend documents and uses.
    let jobs = RedisJobsConfig::builder(config.clone())
        .build()
        .expect("jobs config");
    assert_eq!(jobs.bullmq_prefix(), node_prefix(prefix));
    assert_eq!(jobs.bullmq_queue_name(name), name);
    Queue::redis(name, &config)
        .await
        .expect("connect the queue")
}

/// The JSON config every node script takes.
fn node_config(server: &RedisServer, prefix: &str, queue: &str, extra: Value) -> Value {
    let mut cfg = json!({ "port": server.port(), "prefix": node_prefix(prefix), "queue": queue });
    if let (Some(cfg), Value::Object(extra)) = (cfg.as_object_mut(), extra) {
        cfg.extend(extra);
    }
    cfg
}

async fn node_add(server: &RedisServer, prefix: &str, queue: &str, jobs: Value) -> Vec<String> {
    let ids = bullmq()
        .run(
            "add.mjs",
            &node_config(server, prefix, queue, json!({ "jobs": jobs })),
        )
        .await;
    serde_json::from_value(ids).expect("node add printed the ids")
}

async fn node_inspect(
    server: &RedisServer,
    prefix: &str,
    queue: &str,
    ids: &[String],
) -> Vec<Value> {
    let jobs = bullmq()
        .run(
            "inspect.mjs",
            &node_config(server, prefix, queue, json!({ "ids": ids })),
        )
        .await;
    serde_json::from_value(jobs).expect("node inspect printed a list")
}

/// Waits until job `id` is completed or failed; returns it.
async fn settled(queue: &Queue, id: &str) -> JobInfo {
    let job = support::poll_until(SETTLE, async || {
        let job = queue.job(id).await.ok().flatten()?;
        matches!(job.state, JobState::Completed | JobState::Failed).then_some(job)
    })
    .await;
    job.unwrap_or_else(|| panic!("job {id} did not finish within {SETTLE:?}"))
}

fn payload() -> Value {
    json!({
        "user": 7,
        "text": "héllo ✓ \"quoted\" \\ back",
        "list": [1, 2.5, -3, true, null],
        "nested": { "empty": {}, "big": 9_007_199_254_740_991u64 },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_job_runs_on_our_worker_and_node_reads_our_result() {
    let server = RedisServer::start();
    let prefix = "interop:a";
    let queue = redis_queue(&server, prefix, "mail").await;
    let ids = node_add(
        &server,
        prefix,
        "mail",
        json!([{ "name": "greet", "data": payload() }]),
    )
    .await;
    // The documented prefix rule: Node's keys are the ones our queue reads.
    assert!(
        !server.cli(&["KEYS", "interop/a/jobs:*"]).is_empty(),
        "Node wrote no key under interop/a/jobs"
    );
    let worker = Worker::builder(&queue)
        .handle("greet", |data: Value| async move {
            Ok::<_, std::io::Error>(json!({ "by": "rust", "echo": data }))
        })
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("start the worker");

    let job = settled(&queue, &ids[0]).await;
    worker.close(Duration::from_secs(5)).await.expect("close");
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.name, "greet");
    assert_eq!(job.data, payload(), "the payload arrived intact");
    let expected = json!({ "by": "rust", "echo": payload() });
    assert_eq!(job.result.as_ref(), Some(&expected));

    let seen = node_inspect(&server, prefix, "mail", &ids).await;
    assert_eq!(seen[0]["state"], "completed", "{seen:?}");
    assert_eq!(
        seen[0]["returnvalue"], expected,
        "Node reads our return value"
    );
    assert_eq!(seen[0]["data"], payload());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_job_runs_on_a_node_worker_and_we_read_its_result() {
    let server = RedisServer::start();
    let prefix = ""; // Node's prefix is then plain `jobs`.
    let queue = redis_queue(&server, prefix, "mail").await;
    let id = queue
        .add(
            "greet",
            &payload(),
            JobOptions::new().priority(JobPriority::High),
        )
        .await
        .expect("add");
    assert!(!server.cli(&["KEYS", "jobs:mail:*"]).is_empty());

    let out = bullmq()
        .run(
            "work.mjs",
            &node_config(&server, prefix, "mail", json!({ "count": 1 })),
        )
        .await;
    assert_eq!(out["completed"], json!([id]), "{out}");

    let job = settled(&queue, &id).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.data, payload(), "Node saw the payload we added");
    assert_eq!(
        job.result,
        Some(json!({ "by": "node", "name": "greet", "data": payload(), "attempt": 1 })),
        "we read Node's return value"
    );
    assert_eq!(job.priority, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_worker_retries_our_jobs_with_a_strategy_for_our_backoff_type() {
    let server = RedisServer::start();
    let prefix = "interop";
    let queue = redis_queue(&server, prefix, "retry").await;
    let plain = queue
        .add(
            "greet",
            &json!(1),
            JobOptions::new().retry(RetryPreset::Standard),
        )
        .await
        .expect("add");
    let timed = JobOptions::new()
        .retry(RetryPreset::Standard)
        .timeout(Duration::from_secs(5));
    let timed = queue.add("greet", &json!(2), timed).await.expect("add");

    let out = bullmq()
        .run(
            "work.mjs",
            &node_config(
                &server,
                prefix,
                "retry",
                json!({ "count": 2, "fail_first": true }),
            ),
        )
        .await;
    assert_eq!(out["failed"].as_array().map(Vec::len), Some(2), "{out}");
    for (id, data) in [(plain, 1), (timed, 2)] {
        let job = settled(&queue, &id).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
        assert_eq!(job.attempts_made, 2, "{job:?}");
        assert_eq!(
            job.result,
            Some(json!({ "by": "node", "name": "greet", "data": data, "attempt": 2 }))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_job_without_priority_runs_before_our_prioritized_jobs() {
    let server = RedisServer::start();
    let prefix = "interop";
    let queue = redis_queue(&server, prefix, "order").await;
    for (tag, priority) in [
        ("low", JobPriority::Low),
        ("normal", JobPriority::Normal),
        ("high", JobPriority::High),
        ("critical", JobPriority::Critical),
    ] {
        queue
            .add(
                "step",
                &json!({ "tag": tag }),
                JobOptions::new().priority(priority),
            )
            .await
            .expect("add");
    }
    node_add(
        &server,
        prefix,
        "order",
        json!([
            { "name": "step", "data": { "tag": "node-1" } },
            { "name": "step", "data": { "tag": "node-2" } },
        ]),
    )
    .await;

    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = order.clone();
    let worker = Worker::builder(&queue)
        .handle("step", move |data: Value| {
            let seen = seen.clone();
            async move {
                let tag = data["tag"].as_str().unwrap_or("?").to_owned();
                seen.lock().expect("order lock").push(tag);
                Ok::<_, std::io::Error>(())
            }
        })
        .concurrency(1)
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("start the worker");
    let all_done = support::poll_until(SETTLE, async || {
        (queue.counts().await.ok()?.completed == 6).then_some(())
    })
    .await;
    worker.close(Duration::from_secs(5)).await.expect("close");
    assert!(
        all_done.is_some(),
        "not all 6 jobs completed: {:?}",
        queue.counts().await
    );
    assert_eq!(
        *order.lock().expect("order lock"),
        ["node-1", "node-2", "critical", "high", "normal", "low"],
        "unprioritized (0) first, in order; then by priority number"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_payload_of_the_wrong_shape_fails_that_job_and_the_worker_goes_on() {
    let server = RedisServer::start();
    let prefix = "interop";
    let queue = redis_queue(&server, prefix, "welcome").await;
    let ids = node_add(
        &server,
        prefix,
        "welcome",
        json!([
            // Three attempts allowed: a payload that cannot decode must not use them.
            { "name": "welcome", "data": { "user": "seven" }, "opts": { "attempts": 3 } },
            { "name": "welcome", "data": { "user": 8 } },
        ]),
    )
    .await;
    let worker = Worker::builder(&queue)
        .handle("welcome", |p: HashMap<String, u64>| async move {
            Ok::<_, std::io::Error>(p.get("user").copied().unwrap_or(0) * 2)
        })
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .expect("start the worker");

    let bad = settled(&queue, &ids[0]).await;
    assert_eq!(bad.state, JobState::Failed, "{bad:?}");
    let reason = bad.failed_reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("job payload does not match the handler's type"),
        "typed reason (JobError::Payload): {reason}"
    );
    assert!(reason.contains("expected u64"), "serde's detail: {reason}");
    assert_eq!(bad.attempts_made, 1, "failed at once, no retry: {bad:?}");

    let good = settled(&queue, &ids[1]).await;
    assert_eq!(good.state, JobState::Completed, "{good:?}");
    assert_eq!(good.result, Some(json!(16)));
    // Still running: a job added after the bad one is processed too.
    let later = queue
        .add("welcome", &json!({ "user": 21 }), JobOptions::new())
        .await
        .expect("add");
    let later = settled(&queue, &later).await;
    assert_eq!(later.result, Some(json!(42)), "{later:?}");
    worker.close(Duration::from_secs(5)).await.expect("close");

    let seen = node_inspect(&server, prefix, "welcome", &ids[..1]).await;
    assert_eq!(seen[0]["state"], "failed", "{seen:?}");
    assert_eq!(
        seen[0]["failedReason"],
        json!(reason),
        "Node reads the same reason"
    );
}

#[test]
fn node_bullmq_is_installed_where_the_harness_says() {
    // The harness fails loudly (naming apt-get) when node or npm is missing; here it must find
    // BullMQ 5 in target/node-bullmq.
    let pkg = bullmq().dir().join("node_modules/bullmq/package.json");
    let text = std::fs::read_to_string(&pkg).expect("bullmq's package.json");
    let pkg: Value = serde_json::from_str(&text).expect("package.json is JSON");
    assert!(
        pkg["version"].as_str().is_some_and(|v| v.starts_with("5.")),
        "{pkg}"
    );
}
