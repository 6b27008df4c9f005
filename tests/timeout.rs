//! `timeout(duration, f)` under tokio's paused clock.

use std::io;
use std::time::Duration;

use resilience::timeout::{TimeoutError, timeout};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn returns_the_value_when_in_time() {
    let start = Instant::now();
    let out = timeout(Duration::from_secs(2), async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        "done"
    })
    .await;
    assert_eq!(out, Ok("done"));
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn cuts_the_call_at_the_limit() {
    let start = Instant::now();
    let out = timeout(
        Duration::from_secs(2),
        tokio::time::sleep(Duration::from_secs(60)),
    )
    .await;
    assert_eq!(
        out,
        Err(TimeoutError {
            after: Duration::from_secs(2)
        })
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_ready_value_wins_over_a_zero_limit() {
    assert_eq!(timeout(Duration::ZERO, async { 5 }).await, Ok(5));
}

#[test]
fn error_converts_to_io_timed_out() {
    let e = TimeoutError {
        after: Duration::from_millis(250),
    };
    assert_eq!(e.to_string(), "timed out after 250ms");
    let io: io::Error = e.into();
    assert_eq!(io.kind(), io::ErrorKind::TimedOut);
}
