//! Job queues: `cargo run --example jobs` (in memory, no Redis needed), or
//! `cargo run --example jobs -- --redis redis://127.0.0.1:6379` (BullMQ on Redis, shared with
//! Node BullMQ processes using prefix `jobs`).
//!
//! Three kinds of job go through one queue: `welcome` emails (a flaky mail server: the first
//! attempt of some fails with a transient error and is retried after the policy's delay),
//! `invoice` jobs (a malformed one fails at once: retrying cannot fix a bad address), and a
//! `digest` delayed by 300 ms. Priorities decide the order among ready jobs. The worker's close
//! is a shutdown hook: the tour ends by running the shutdown, which drains the worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use resilience::health::HealthRegistry;
use resilience::jobs::{
    BackendKind, Handler, JobContext, JobOptions, JobPriority, JobQueueHealth, Queue, Worker,
};
use resilience::retry::{Backoff, RetryPolicy, Retryable};
use resilience::shutdown::ShutdownCoordinator;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Welcome {
    user: u64,
    email: String,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Invoice {
    order: u64,
    email: String,
}

/// What the fake mail server says.
#[derive(Debug, thiserror::Error)]
enum MailError {
    #[error("mail server busy")]
    Busy,
    #[error("invalid address {0:?}")]
    InvalidAddress(String),
}

impl Retryable for MailError {
    fn is_retryable(&self) -> bool {
        matches!(self, MailError::Busy)
    }
}

fn since(t0: Instant) -> String {
    format!("{:>5} ms", t0.elapsed().as_millis())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let redis_url = args
        .iter()
        .position(|a| a == "--redis")
        .and_then(|i| args.get(i + 1).cloned());

    let queue = match &redis_url {
        Some(url) => {
            let config = resilience::RedisConfig::from_url(url)?.build()?;
            Queue::redis("emails", &config).await?
        }
        None => Queue::memory("emails")?,
    };
    println!(
        "queue `emails` on {}",
        match queue.backend_kind() {
            BackendKind::Redis => "Redis (BullMQ keys, prefix `jobs`)",
            _ => "process memory (lost on exit)",
        }
    );

    let t0 = Instant::now();
    let mail_calls = Arc::new(AtomicU32::new(0));
    let calls = mail_calls.clone();
    // Short delays so the tour is quick; real services use a preset such as "patient".
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Fixed)
        .initial_delay(Duration::from_millis(100))
        .build()?;

    let coordinator = ShutdownCoordinator::new();
    let worker = Worker::builder(&queue)
        .handler(
            Handler::with_context("welcome", move |w: Welcome, ctx: JobContext| {
                let n = calls.fetch_add(1, Ordering::Relaxed);
                async move {
                    // Every third call finds the mail server busy.
                    if n % 3 == 1 {
                        println!(
                            "{} welcome {} attempt {}: mail server busy",
                            since(t0),
                            w.user,
                            ctx.attempt()
                        );
                        return Err(MailError::Busy);
                    }
                    println!(
                        "{} welcome {} attempt {}: sent to {}",
                        since(t0),
                        w.user,
                        ctx.attempt(),
                        w.email
                    );
                    Ok(format!("sent to {}", w.email))
                }
            })
            .retry(policy.clone()),
        )
        .handle("invoice", move |inv: Invoice| async move {
            if !inv.email.contains('@') {
                println!(
                    "{} invoice {}: invalid address, not retried",
                    since(t0),
                    inv.order
                );
                return Err(MailError::InvalidAddress(inv.email));
            }
            println!("{} invoice {}: sent", since(t0), inv.order);
            Ok(inv.order)
        })
        .handle("digest", move |_: serde_json::Value| async move {
            println!("{} digest: sent (it was delayed 300 ms)", since(t0));
            Ok::<_, MailError>(())
        })
        .retry(policy)
        .concurrency(1)
        .shutdown(&coordinator)
        .start()
        .await?;

    // Paused while we fill it, so the priorities decide the order.
    worker.pause();
    let digest = queue
        .add(
            "digest",
            &serde_json::json!({}),
            JobOptions::new().delay(Duration::from_millis(300)),
        )
        .await?;
    let mut ids = Vec::new();
    for user in 1..=3 {
        let welcome = Welcome {
            user,
            email: format!("user{user}@example.com"),
        };
        ids.push(
            queue
                .add(
                    "welcome",
                    &welcome,
                    JobOptions::new().priority(JobPriority::Low),
                )
                .await?,
        );
    }
    let good = Invoice {
        order: 7,
        email: "billing@example.com".into(),
    };
    let bad = Invoice {
        order: 8,
        email: "nobody".into(),
    };
    ids.push(
        queue
            .add(
                "invoice",
                &good,
                JobOptions::new().priority(JobPriority::High),
            )
            .await?,
    );
    ids.push(
        queue
            .add(
                "invoice",
                &bad,
                JobOptions::new().priority(JobPriority::Critical),
            )
            .await?,
    );
    // The same id twice is one job.
    let once = JobOptions::new().job_id("welcome-vip");
    let vip = Welcome {
        user: 99,
        email: "vip@example.com".into(),
    };
    let first = queue.add("welcome", &vip, once.clone()).await?;
    let again = queue.add("welcome", &vip, once).await?;
    println!(
        "added 7 jobs (the vip welcome twice, same id: {})",
        first == again
    );
    ids.push(first);
    ids.push(digest);
    worker.resume();

    // Wait (bounded) until every job has finished.
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        let c = queue.counts().await?;
        if c.waiting + c.active + c.delayed == 0 || Instant::now() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    println!("\n== outcome");
    for id in &ids {
        if let Some(job) = queue.job(id).await? {
            println!(
                "{:<12} {:<8} {:<10} attempts {}  {}",
                job.id,
                job.name,
                job.state.as_str(),
                job.attempts_made,
                job.result
                    .map(|r| format!("result {r}"))
                    .or(job.failed_reason.map(|r| format!("failed: {r}")))
                    .unwrap_or_default()
            );
        }
    }
    let counts = queue.counts().await?;
    println!(
        "counts: {} completed, {} failed",
        counts.completed, counts.failed
    );

    let health = HealthRegistry::new();
    health.add(JobQueueHealth::new(&queue));
    println!("health: {:?}", health.check().await.status);

    let report = coordinator.shutdown().await;
    println!(
        "shutdown: {:?} (worker drained by its hook)",
        report.outcome
    );
    queue.close().await;
    Ok(())
}
