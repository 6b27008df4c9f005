//! The job queue's metrics (`job_queue_*`, through a debugging recorder installed before the
//! worker starts: one test, the recorder is process-global), its tracing span per job, and the
//! backlog health check's thresholds.

mod support;

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use resilience::health::{HealthCheck, HealthStatus};
use resilience::jobs::{
    BacklogThresholds, Handler, JobOptions, JobQueueHealth, JobState, MemoryBroker, Queue, Worker,
};
use resilience::metrics::{
    JOB_QUEUE_JOBS, JOB_QUEUE_PROCESSED_TOTAL, JOB_QUEUE_PROCESSING_DURATION_SECONDS,
    JOB_QUEUE_WAIT_DURATION_SECONDS,
};
use resilience::retry::{Backoff, RetryPolicy};
use resilience::shutdown::ShutdownCoordinator;

fn label(key: &metrics::Key, name: &str) -> String {
    key.labels()
        .find(|l| l.key() == name)
        .map(|l| l.value().to_owned())
        .unwrap_or_default()
}

async fn settle(queue: &Queue, ids: &[String]) {
    let done = support::poll_until(Duration::from_secs(10), async || {
        for id in ids {
            let state = queue.job(id).await.ok()??.state;
            if !matches!(state, JobState::Completed | JobState::Failed) {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(done.is_some(), "jobs did not finish");
}

#[tokio::test(start_paused = true)]
async fn metrics_count_outcomes_durations_waits_and_states() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let queue = Queue::in_memory("mailer", &MemoryBroker::new()).unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Backoff::Fixed)
        .initial_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let worker = Worker::builder(&queue)
        .handler(Handler::new("ok", |_: u32| async {
            Ok::<_, io::Error>(())
        }))
        .handler(
            Handler::new("flaky", |_: u32| async {
                Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset))
            })
            .retry(policy.clone()),
        )
        .handler(Handler::new("bad", |_: u32| async {
            Err::<(), _>(io::Error::from(io::ErrorKind::InvalidData))
        }))
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(queue.add("ok", &1u32, JobOptions::new()).await.unwrap());
    }
    // Two attempts: one retried, then failed for good.
    ids.push(
        queue
            .add("flaky", &1u32, JobOptions::new().retry(policy))
            .await
            .unwrap(),
    );
    // Not retryable: failed at once.
    ids.push(queue.add("bad", &1u32, JobOptions::new()).await.unwrap());
    // A payload of the wrong type: failed at once.
    ids.push(queue.add("ok", &"text", JobOptions::new()).await.unwrap());
    settle(&queue, &ids).await;
    worker.close(Duration::from_secs(5)).await.unwrap();
    // One more job left waiting, for the gauge.
    queue.add("ok", &1u32, JobOptions::new()).await.unwrap();
    let counts = queue.record_counts().await.unwrap();
    assert_eq!((counts.waiting, counts.completed, counts.failed), (1, 3, 3));

    let mut processed = BTreeMap::new();
    let mut durations = BTreeMap::new();
    let mut waits = 0;
    let mut gauges = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        match (key.name(), value) {
            (JOB_QUEUE_PROCESSED_TOTAL, DebugValue::Counter(n)) => {
                assert_eq!(label(key, "queue"), "mailer");
                processed.insert(label(key, "outcome"), n);
            }
            (JOB_QUEUE_PROCESSING_DURATION_SECONDS, DebugValue::Histogram(v)) => {
                durations.insert(label(key, "name"), v.len());
            }
            (JOB_QUEUE_WAIT_DURATION_SECONDS, DebugValue::Histogram(v)) => waits += v.len(),
            (JOB_QUEUE_JOBS, DebugValue::Gauge(g)) => {
                gauges.insert(label(key, "state"), g.into_inner());
            }
            _ => {}
        }
    }
    let expected: BTreeMap<String, u64> = [("completed", 3), ("retried", 1), ("failed", 3)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(processed, expected);
    // Attempts that ran a handler (the wrong payload never reached one, but is timed as `ok`).
    assert_eq!(durations.get("ok"), Some(&4));
    assert_eq!(durations.get("flaky"), Some(&2));
    assert_eq!(durations.get("bad"), Some(&1));
    // Queue wait: once per job, on its first attempt.
    assert_eq!(waits, 6);
    assert_eq!(gauges.get("waiting"), Some(&1.0));
    assert_eq!(gauges.get("completed"), Some(&3.0));
    assert_eq!(gauges.get("failed"), Some(&3.0));
    assert_eq!(gauges.get("active"), Some(&0.0));
}

#[tokio::test]
async fn health_follows_backlog_and_the_oldest_waiting_job() {
    let queue = Queue::in_memory("backlog", &MemoryBroker::new()).unwrap();
    let check = JobQueueHealth::new(&queue).thresholds(BacklogThresholds {
        degraded_backlog: 3,
        unhealthy_backlog: 5,
        degraded_age: Duration::from_secs(3600),
        unhealthy_age: Duration::from_secs(7200),
    });
    assert_eq!(check.name(), "jobs:backlog");
    assert_eq!(check.check().await.status, HealthStatus::Healthy);
    for i in 0..3u32 {
        queue.add("n", &i, JobOptions::new()).await.unwrap();
    }
    let degraded = check.check().await;
    assert_eq!(degraded.status, HealthStatus::Degraded);
    assert!(degraded.message.unwrap().starts_with("3 waiting"));
    for i in 0..2u32 {
        queue.add("n", &i, JobOptions::new()).await.unwrap();
    }
    assert_eq!(check.check().await.status, HealthStatus::Unhealthy);

    // Age: the oldest waiting job passes a (tiny) age threshold with a short backlog.
    let aged = Queue::in_memory("aged", &MemoryBroker::new()).unwrap();
    let check = JobQueueHealth::new(&aged).thresholds(BacklogThresholds {
        degraded_backlog: 100,
        unhealthy_backlog: 200,
        degraded_age: Duration::from_millis(20),
        unhealthy_age: Duration::from_secs(3600),
    });
    aged.add("n", &1u32, JobOptions::new()).await.unwrap();
    // The age is wall-clock time since the job was added: wait until it has passed 20 ms.
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(check.check().await.status, HealthStatus::Degraded);
    assert!(aged.oldest_waiting_age().await.unwrap().unwrap() >= Duration::from_millis(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_unhealthy_when_redis_goes_away() {
    let mut server = support::RedisServer::start();
    let config = resilience::RedisConfig::from_url(&server.url())
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let queue = Queue::redis("health", &config).await.unwrap();
    let check = JobQueueHealth::new(&queue);
    assert_eq!(check.check().await.status, HealthStatus::Healthy);
    server.stop();
    let down = check.check().await;
    assert_eq!(down.status, HealthStatus::Unhealthy, "{down:?}");
    server.start_again();
    let back = support::poll_until(Duration::from_secs(15), async || {
        (check.check().await.status == HealthStatus::Healthy).then_some(())
    })
    .await;
    assert!(back.is_some(), "the check never recovered");
}

/// Collects what a `fmt` subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn each_attempt_runs_in_a_job_span_with_queue_name_id_and_attempt() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let queue = Queue::in_memory("traced", &MemoryBroker::new()).unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .backoff(Backoff::Fixed)
        .initial_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let worker = Worker::builder(&queue)
        .handler(
            Handler::with_context(
                "greet",
                |_: u32, ctx: resilience::jobs::JobContext| async move {
                    tracing::info!("inside the handler");
                    if ctx.attempt() == 1 {
                        Err(io::Error::from(io::ErrorKind::ConnectionReset))
                    } else {
                        Ok(())
                    }
                },
            )
            .retry(policy.clone()),
        )
        .shutdown(&ShutdownCoordinator::new())
        .start()
        .await
        .unwrap();
    let id = queue
        .add("greet", &1u32, JobOptions::new().retry(policy))
        .await
        .unwrap();
    settle(&queue, std::slice::from_ref(&id)).await;
    worker.close(Duration::from_secs(5)).await.unwrap();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let span = |attempt: u32| {
        format!("job{{queue=traced name=greet id={id} attempt={attempt} max_attempts=2}}")
    };
    let lines: Vec<&str> = text.lines().collect();
    let has = |span: &str, what: &str| lines.iter().any(|l| l.contains(span) && l.contains(what));
    assert!(has(&span(1), "inside the handler"), "{text}");
    assert!(has(&span(1), "will retry"), "{text}");
    assert!(has(&span(2), "inside the handler"), "{text}");
    assert!(has(&span(2), "job completed"), "{text}");
}
