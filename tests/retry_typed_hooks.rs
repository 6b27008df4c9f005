//! The typed-hook pitfall of a type-erased retry policy: `retry_if` / `on_retry` typed for one
//! error type do not apply to an operation failing with another — and say so, once, in the log.
//! (`#[retry(retry_if = ..)]` makes the same mistake a compile error: see the UI fail cases
//! `retry_retry_if_other_error_type` and `retry_on_retry_other_error_type`.)

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilience::retry::{RetryError, RetryEvent, RetryPolicy, Retryable, retry};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[derive(Debug)]
struct FetchError;

impl Retryable for FetchError {
    fn is_retryable(&self) -> bool {
        true
    }
}

#[tokio::test(start_paused = true)]
async fn hooks_typed_for_another_error_do_not_apply_and_warn_once() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let observed = Arc::new(AtomicU32::new(0));
    let seen = observed.clone();
    let policy = RetryPolicy::builder()
        .max_attempts(4)
        .initial_delay(Duration::from_millis(10))
        // Meant to stop every retry, but typed for io::Error.
        .retry_if(|_: &std::io::Error| false)
        .on_retry(move |_: &RetryEvent<'_, std::io::Error>| {
            seen.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let r: Result<(), RetryError<FetchError>> = retry(
        || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(FetchError)
        },
        policy.clone(),
    )
    .await;
    assert!(r.is_err());
    // `Retryable` decided (retry), not the predicate (stop); the observer never ran.
    assert_eq!(calls.load(Ordering::Relaxed), 4);
    assert_eq!(observed.load(Ordering::Relaxed), 0);
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for hook in ["`retry_if`", "`on_retry`"] {
        assert_eq!(
            log.matches(&format!("{hook} hook is typed for `std::io::error::Error`"))
                .count(),
            1,
            "{log}"
        );
    }

    // Typed for the operation's error, both apply (and nothing more is logged).
    let before = capture.0.lock().unwrap().len();
    let stopped = AtomicU32::new(0);
    let policy = RetryPolicy::builder()
        .max_attempts(4)
        .initial_delay(Duration::from_millis(10))
        .retry_if(|_: &FetchError| false)
        .build()
        .unwrap();
    let r: Result<(), RetryError<FetchError>> = retry(
        || async {
            stopped.fetch_add(1, Ordering::Relaxed);
            Err(FetchError)
        },
        policy,
    )
    .await;
    assert!(r.is_err());
    assert_eq!(
        stopped.load(Ordering::Relaxed),
        1,
        "the predicate said stop"
    );
    assert_eq!(capture.0.lock().unwrap().len(), before);
}
