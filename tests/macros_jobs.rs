//! `#[job]`: declared handlers are registered for their queue with the attribute's retry preset
//! and timeout, the generated enqueue helpers add jobs with the attribute's name, priority and
//! attempts (options given to `_with` win), refuse another queue, and a worker built with
//! `registered()` runs the jobs. Time runs on tokio's paused clock.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use resilience::job;
use resilience::jobs::{
    Handler, JobContext, JobOptions, JobPriority, JobRegistration, JobState, MemoryBroker, Queue,
    QueueError, Worker, registered_jobs,
};
use resilience::retry::RetryPreset;

/// What the `welcome` handler saw of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    user: u64,
    attempt: u32,
    max_attempts: u32,
    name: String,
    queue: String,
}

static WELCOMED: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

/// The doc comment and other attributes stay on the function.
#[job(
    queue = "emails",
    name = "welcome",
    retry = "patient",
    priority = "high",
    timeout_ms = 30_000
)]
#[must_use = "the greeting"]
async fn send_welcome(user: u64, ctx: JobContext) -> Result<String, io::Error> {
    WELCOMED.lock().unwrap().push(Seen {
        user,
        attempt: ctx.attempt(),
        max_attempts: ctx.max_attempts(),
        name: ctx.name().to_owned(),
        queue: ctx.queue().to_owned(),
    });
    Ok(format!("sent to {user}"))
}

/// Named after the function; retry `standard`, priority normal, no timeout.
#[job(queue = "emails")]
async fn digest(day: String) -> io::Result<usize> {
    Ok(day.len())
}

/// Always fails with a transient error: retried until the `quick` preset's 2 attempts run out.
#[job(queue = "reports", retry = "quick", priority = 7)]
async fn flaky(_n: u64) -> Result<u64, io::Error> {
    Err(io::ErrorKind::ConnectionRefused.into())
}

/// A permanent error (not retryable by `anyhow`'s classification): fails at the first attempt.
#[job(queue = "reports", name = "reject", retry = "aggressive")]
async fn reject(payload: serde_json::Value) -> anyhow::Result<()> {
    anyhow::bail!("invalid report request: {payload}")
}

mod billing {
    use resilience::job;

    /// The helpers get the function's visibility: `pub(crate)` here, callable from the tests.
    #[job(queue = "billing", priority = "critical")]
    pub(crate) async fn invoice(cents: (u64, String)) -> Result<String, std::io::Error> {
        Ok(format!("{} {}", cents.0, cents.1))
    }
}

fn registration(queue: &str, name: &str) -> &'static JobRegistration {
    inventory::iter::<JobRegistration>
        .into_iter()
        .find(|r| r.queue == queue && r.name == name)
        .unwrap_or_else(|| panic!("`{queue}`/`{name}` is not registered"))
}

#[test]
fn declared_jobs_are_registered_for_their_queue() {
    let jobs = registered_jobs();
    for expected in [
        ("emails", "welcome"),
        ("emails", "digest"),
        ("reports", "flaky"),
        ("reports", "reject"),
        ("billing", "invoice"),
    ] {
        assert_eq!(
            jobs.iter().filter(|j| **j == expected).count(),
            1,
            "{expected:?} in {jobs:?}"
        );
    }
    // `name = "welcome"` replaces the function's name.
    assert!(!jobs.iter().any(|(_, name)| *name == "send_welcome"));
}

#[test]
fn registered_handlers_carry_the_attribute_retry_and_timeout() {
    // Same name, retry policy and timeout as the handler built by hand (`Handler`'s Debug shows
    // exactly these).
    let welcome = (registration("emails", "welcome").handler)();
    let by_hand = Handler::with_context("welcome", send_welcome)
        .retry(RetryPreset::Patient)
        .timeout(Duration::from_secs(30));
    assert_eq!(format!("{welcome:?}"), format!("{by_hand:?}"));

    let digest_handler = (registration("emails", "digest").handler)();
    let by_hand = Handler::new("digest", digest).retry(RetryPreset::Standard);
    assert_eq!(format!("{digest_handler:?}"), format!("{by_hand:?}"));

    let flaky_handler = (registration("reports", "flaky").handler)();
    let by_hand = Handler::new("flaky", flaky).retry(RetryPreset::Quick);
    assert_eq!(format!("{flaky_handler:?}"), format!("{by_hand:?}"));
}

#[tokio::test(start_paused = true)]
async fn the_functions_stay_callable_as_written() {
    assert_eq!(digest("monday".into()).await.unwrap(), 6);
    assert!(flaky(1).await.is_err());
    assert_eq!(billing::invoice((5, "EUR".into())).await.unwrap(), "5 EUR");
}

#[tokio::test(start_paused = true)]
async fn enqueue_helpers_apply_the_attribute_unless_options_say_otherwise() {
    let broker = MemoryBroker::new();
    let emails = Queue::in_memory("emails", &broker).unwrap();

    let id = send_welcome_enqueue(&emails, &1).await.unwrap();
    let info = emails.job(&id).await.unwrap().expect("the job was added");
    assert_eq!(info.name, "welcome");
    assert_eq!(info.priority, JobPriority::High.level());
    assert_eq!(info.data, serde_json::json!(1));
    assert_eq!(info.state, JobState::Waiting);

    let id = digest_enqueue(&emails, &"tuesday".to_owned())
        .await
        .unwrap();
    let info = emails.job(&id).await.unwrap().unwrap();
    assert_eq!((info.name.as_str(), info.priority), ("digest", 3));

    let id = send_welcome_enqueue_with(
        &emails,
        &2,
        JobOptions::new()
            .priority(JobPriority::Low)
            .retry(RetryPreset::Quick)
            .job_id("welcome-2"),
    )
    .await
    .unwrap();
    assert_eq!(id, "welcome-2");
    assert_eq!(emails.job(&id).await.unwrap().unwrap().priority, 4);

    let reports = Queue::in_memory("reports", &broker).unwrap();
    let id = flaky_enqueue(&reports, &3).await.unwrap();
    assert_eq!(reports.job(&id).await.unwrap().unwrap().priority, 7);

    let billing = Queue::in_memory("billing", &broker).unwrap();
    let id = billing::invoice_enqueue(&billing, &(5, "EUR".to_owned()))
        .await
        .unwrap();
    assert_eq!(billing.job(&id).await.unwrap().unwrap().priority, 1);

    // The attempts travel with the job: the handler sees the preset's (patient: 5) or the
    // options' (quick: 2).
    let worker = Worker::builder(&emails).registered().start().await.unwrap();
    let done = poll(async || emails.counts().await.unwrap().completed == 3).await;
    worker.close(Duration::from_secs(5)).await.unwrap();
    assert!(done, "{:?}", emails.counts().await.unwrap());
    let mut welcomed: Vec<_> = WELCOMED
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.user == 1 || w.user == 2)
        .cloned()
        .collect();
    welcomed.sort();
    let seen = |user, max_attempts| Seen {
        user,
        attempt: 1,
        max_attempts,
        name: "welcome".to_owned(),
        queue: "emails".to_owned(),
    };
    assert_eq!(welcomed, [seen(1, 5), seen(2, 2)]);
}

#[tokio::test(start_paused = true)]
async fn a_helper_refuses_another_queue() {
    let broker = MemoryBroker::new();
    let reports = Queue::in_memory("reports", &broker).unwrap();
    let err = send_welcome_enqueue(&reports, &3).await.unwrap_err();
    match err {
        QueueError::WrongQueue { expected, actual } => {
            assert_eq!((expected.as_str(), actual.as_str()), ("emails", "reports"));
        }
        other => panic!("expected WrongQueue, got {other:?}"),
    }
    let err = digest_enqueue_with(&reports, &"x".to_owned(), JobOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::WrongQueue { .. }), "{err:?}");
    assert_eq!(reports.counts().await.unwrap().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn a_registered_worker_runs_the_jobs_with_their_policies() {
    let broker = MemoryBroker::new();
    let emails = Queue::in_memory("emails", &broker).unwrap();
    let reports = Queue::in_memory("reports", &broker).unwrap();
    let welcome = send_welcome_enqueue(&emails, &10).await.unwrap();
    let day = digest_enqueue(&emails, &"friday".to_owned()).await.unwrap();
    let flaky_id = flaky_enqueue(&reports, &11).await.unwrap();
    let reject_id = reject_enqueue(&reports, &serde_json::json!({ "month": 13 }))
        .await
        .unwrap();

    let emails_worker = Worker::builder(&emails)
        .registered()
        .concurrency(4)
        .start()
        .await
        .unwrap();
    let reports_worker = Worker::builder(&reports)
        .registered()
        .start()
        .await
        .unwrap();
    let done = poll(async || {
        emails.counts().await.unwrap().completed == 2 && reports.counts().await.unwrap().failed == 2
    })
    .await;
    emails_worker.close(Duration::from_secs(5)).await.unwrap();
    reports_worker.close(Duration::from_secs(5)).await.unwrap();
    assert!(
        done,
        "{:?} {:?}",
        emails.counts().await.unwrap(),
        reports.counts().await.unwrap()
    );

    let info = emails.job(&welcome).await.unwrap().unwrap();
    assert_eq!(info.state, JobState::Completed);
    assert_eq!(info.result, Some(serde_json::json!("sent to 10")));
    let info = emails.job(&day).await.unwrap().unwrap();
    assert_eq!(info.result, Some(serde_json::json!(6)));

    // Transient failures: retried until the quick preset's 2 attempts ran out.
    let info = reports.job(&flaky_id).await.unwrap().unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(info.attempts_made, 2);
    // A permanent error fails at once, whatever the preset's attempts (aggressive: 10).
    let info = reports.job(&reject_id).await.unwrap().unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(info.attempts_made, 1);
    assert!(
        info.failed_reason
            .as_deref()
            .is_some_and(|r| r.contains("invalid report request")),
        "{:?}",
        info.failed_reason
    );
}

/// Polls `done` every 10 ms of (paused) time for at most a minute.
async fn poll(mut done: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..6_000 {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
