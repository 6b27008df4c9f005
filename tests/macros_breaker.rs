//! `#[circuit_breaker]` and `#[derive(RedisKey)]` behave like the hand-written calls.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use resilience::{
    CircuitBreakerConfig, CircuitOpenError, CircuitState, circuit_breaker,
    configure_circuit_breaker, get_circuit_breaker, retry,
};

#[derive(Debug, PartialEq)]
enum Error {
    Open,
    Down(u32),
}

impl resilience::retry::Retryable for Error {
    /// A refusal of an open breaker is not worth an immediate retry; a failed call is.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Down(_))
    }
}

impl From<CircuitOpenError> for Error {
    fn from(_: CircuitOpenError) -> Self {
        Self::Open
    }
}

static AGGRESSIVE_RUNS: AtomicU32 = AtomicU32::new(0);

#[circuit_breaker(name = "macro-aggressive", preset = "aggressive")]
async fn flaky() -> Result<(), Error> {
    let n = AGGRESSIVE_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    Err(Error::Down(n))
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_after_the_presets_threshold() {
    // aggressive: 3 consecutive failures open it.
    for n in 1..=3 {
        assert_eq!(flaky().await, Err(Error::Down(n)));
    }
    let breaker = get_circuit_breaker("macro-aggressive");
    assert_eq!(breaker.state(), CircuitState::Open);
    // Open: rejected with the function's own error type, without running the body.
    assert_eq!(flaky().await, Err(Error::Open));
    assert_eq!(AGGRESSIVE_RUNS.load(Ordering::SeqCst), 3);
    // After the preset's 10 s reset timeout a trial call runs again.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(flaky().await, Err(Error::Down(4)));
    assert_eq!(breaker.state(), CircuitState::Open);
}

static SYNC_RUNS: AtomicU32 = AtomicU32::new(0);

#[circuit_breaker(name = "macro-critical-sync", preset = "critical")]
fn flaky_blocking(fail: bool) -> Result<u32, Error> {
    let n = SYNC_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if fail { Err(Error::Down(n)) } else { Ok(n) }
}

#[test]
fn sync_breaker_opens_after_the_critical_threshold() {
    assert_eq!(flaky_blocking(false), Ok(1));
    assert_eq!(flaky_blocking(true), Err(Error::Down(2)));
    assert_eq!(flaky_blocking(true), Err(Error::Down(3)));
    // critical: 2 failures.
    assert_eq!(flaky_blocking(false), Err(Error::Open));
    assert_eq!(SYNC_RUNS.load(Ordering::SeqCst), 3);
}

static STACK_RUNS: AtomicU32 = AtomicU32::new(0);

/// The documented default: the breaker outside the retry.
#[circuit_breaker(name = "macro-stacked", preset = "aggressive")]
#[retry(
    max_attempts = 3,
    initial_delay_ms = 10,
    max_delay_ms = 10,
    backoff = "fixed"
)]
async fn retried_inside_breaker() -> Result<(), Error> {
    let n = STACK_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    Err(Error::Down(n))
}

#[tokio::test(start_paused = true)]
async fn a_retried_sequence_counts_once_in_an_outer_breaker() {
    // Two sequences of three attempts each: six failed attempts, two breaker failures.
    assert_eq!(retried_inside_breaker().await, Err(Error::Down(3)));
    // (Looked up after the first call: the attribute registers the preset on first use.)
    let breaker = get_circuit_breaker("macro-stacked");
    assert_eq!(retried_inside_breaker().await, Err(Error::Down(6)));
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.snapshot().failure_count, 2);
    // The third sequence's failure is the third breaker failure: open.
    assert_eq!(retried_inside_breaker().await, Err(Error::Down(9)));
    assert_eq!(breaker.state(), CircuitState::Open);
    assert_eq!(retried_inside_breaker().await, Err(Error::Open));
    assert_eq!(STACK_RUNS.load(Ordering::SeqCst), 9);
}

static OUTER_RUNS: AtomicU32 = AtomicU32::new(0);

/// The other order: every attempt goes through the breaker, and its refusal (not retryable for
/// this error type) ends the sequence at once.
#[retry(
    max_attempts = 5,
    initial_delay_ms = 10,
    max_delay_ms = 10,
    backoff = "fixed"
)]
#[circuit_breaker(name = "macro-retry-outside", preset = "aggressive")]
async fn breaker_inside_retry() -> Result<(), Error> {
    let n = OUTER_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    Err(Error::Down(n))
}

#[tokio::test(start_paused = true)]
async fn a_retry_outside_the_breaker_stops_when_it_opens() {
    // aggressive: three failed attempts open it; the fourth attempt is refused, not retried.
    assert_eq!(breaker_inside_retry().await, Err(Error::Open));
    assert_eq!(OUTER_RUNS.load(Ordering::SeqCst), 3);
    assert_eq!(
        get_circuit_breaker("macro-retry-outside").state(),
        CircuitState::Open
    );
}

#[circuit_breaker("macro-configured")]
async fn configured_by_hand() -> Result<(), Error> {
    Err(Error::Down(0))
}

#[tokio::test]
async fn a_configuration_registered_before_first_use_wins() {
    let config = CircuitBreakerConfig::builder()
        .failure_threshold(1)
        .build()
        .unwrap();
    configure_circuit_breaker("macro-configured", config).unwrap();
    assert_eq!(configured_by_hand().await, Err(Error::Down(0)));
    assert_eq!(configured_by_hand().await, Err(Error::Open));
}

struct Client {
    calls: u32,
}

impl Client {
    #[circuit_breaker(name = "macro-method", preset = "critical")]
    async fn call(&mut self, ok: bool) -> Result<u32, Error> {
        self.calls += 1;
        if ok {
            Ok(self.calls)
        } else {
            Err(Error::Down(self.calls))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn methods_keep_mut_self() {
    let mut client = Client { calls: 0 };
    assert_eq!(client.call(true).await, Ok(1));
    assert_eq!(client.call(false).await, Err(Error::Down(2)));
    assert_eq!(client.call(false).await, Err(Error::Down(3)));
    assert_eq!(client.call(true).await, Err(Error::Open));
    assert_eq!(client.calls, 3);
}

/// `#[retry]` above `#[circuit_breaker]` on `&mut self`, async and sync: each attempt goes
/// through the breaker with the same `self`.
struct Poller {
    polls: u32,
}

impl Poller {
    #[retry(
        max_attempts = 4,
        initial_delay_ms = 1,
        max_delay_ms = 1,
        backoff = "fixed"
    )]
    #[circuit_breaker(name = "macro-retry-mut-self", preset = "tolerant")]
    async fn poll(&mut self, until: u32) -> Result<u32, Error> {
        self.polls += 1;
        if self.polls < until {
            Err(Error::Down(self.polls))
        } else {
            Ok(self.polls)
        }
    }

    #[retry(
        max_attempts = 4,
        initial_delay_ms = 1,
        max_delay_ms = 1,
        backoff = "fixed"
    )]
    #[circuit_breaker(name = "macro-retry-mut-self-sync", preset = "tolerant")]
    fn poll_blocking(&mut self, mut until: u32) -> Result<u32, Error> {
        self.polls += 1;
        until += 1;
        if self.polls < until {
            Err(Error::Down(self.polls))
        } else {
            Ok(self.polls)
        }
    }
}

#[tokio::test(start_paused = true)]
async fn retry_above_a_breaker_reruns_a_mut_self_method() {
    let mut poller = Poller { polls: 0 };
    assert_eq!(poller.poll(3).await, Ok(3));
    assert_eq!(poller.polls, 3);
    // Two failed attempts went through the breaker, and the success reset them.
    assert_eq!(
        get_circuit_breaker("macro-retry-mut-self")
            .snapshot()
            .failure_count,
        0
    );
    let mut poller = Poller { polls: 0 };
    assert_eq!(poller.poll_blocking(2), Ok(3));
}

mod keys {
    use resilience::RedisKey;
    use resilience::redis::render_key;

    #[derive(RedisKey)]
    #[redis_key(namespace = "sword", template = "goal:{goal_id}")]
    struct GoalKey {
        goal_id: String,
    }

    #[derive(RedisKey)]
    #[redis_key(
        namespace = "limits",
        template = "user:{user}:w:{window}",
        hash_tag = "user"
    )]
    struct WindowKey {
        user: String,
        window: u64,
    }

    #[derive(RedisKey)]
    #[redis_key(namespace = "session")]
    struct SessionKey(u64, String);

    #[test]
    fn derived_keys_render_like_the_template() {
        let goal = GoalKey {
            goal_id: "goal_abc123".into(),
        };
        assert_eq!(
            render_key("app", &goal).unwrap(),
            "app:sword:goal:goal_abc123"
        );

        let window = WindowKey {
            user: "ann".into(),
            window: 60,
        };
        assert_eq!(
            render_key("app", &window).unwrap(),
            "app:limits:user:{ann}:w:60"
        );

        let session = SessionKey(7, "web".into());
        assert_eq!(render_key("app", &session).unwrap(), "app:session:7:web");
    }

    #[test]
    fn segments_cannot_inject_separators_or_hash_tags() {
        let a = GoalKey {
            goal_id: "x:y".into(),
        };
        let b = GoalKey {
            goal_id: "x{y}".into(),
        };
        let (a, b) = (
            render_key("app", &a).unwrap(),
            render_key("app", &b).unwrap(),
        );
        assert!(!a["app:sword:goal:".len()..].contains(':'), "{a}");
        assert!(!b.contains('{') && !b.contains('}'), "{b}");
        assert_ne!(a, b);
    }
}
