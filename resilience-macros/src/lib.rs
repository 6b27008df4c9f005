//! Attribute and derive macros for [`resilience`](https://docs.rs/resilience).
//!
//! Use them through the `resilience` crate, which re-exports every macro here; the generated code
//! names the runtime through `::resilience::__private` (or the path given with
//! `crate = "..."`), whose contents are not a public API — the runtime pins this crate's version
//! exactly.
//!
//! Every option is checked at compile time: unknown names get "did you mean …?" and the list of
//! valid names, wrong value types and conflicting options are errors spanned on the offending
//! token, and on any error the function is emitted unchanged next to the error, so one mistake
//! does not cascade.
//!
//! Attributes stack, and apply outermost first, as written: here the breaker sees one call per
//! retried sequence, and the timeout bounds each attempt.
//!
//! ```
//! use std::io;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use resilience::{circuit_breaker, retry, timeout};
//!
//! static ATTEMPTS: AtomicU32 = AtomicU32::new(0);
//!
//! #[circuit_breaker("quotes")]
//! #[retry(max_attempts = 3, initial_delay_ms = 100)]
//! #[timeout(ms = 2_000)]
//! async fn quote(symbol: &str) -> Result<f64, io::Error> {
//!     // Refused twice (a transient `io::Error`, so it is retried), then answered.
//!     if ATTEMPTS.fetch_add(1, Ordering::SeqCst) < 2 {
//!         return Err(io::ErrorKind::ConnectionRefused.into());
//!     }
//!     Ok(if symbol == "BTC" { 97_000.0 } else { 1.0 })
//! }
//!
//! #[tokio::main(flavor = "current_thread", start_paused = true)] // waits take no real time
//! async fn main() {
//!     assert_eq!(quote("BTC").await.unwrap(), 97_000.0);
//!     assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 3);
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod args;
mod expand;
mod presets;
mod redis_key;
mod suggest;

use proc_macro::TokenStream;

use expand::Layer;

/// Runs the function through a named circuit breaker from the global registry.
///
/// ```
/// use std::time::Duration;
/// use resilience::{CircuitOpenError, circuit_breaker};
///
/// #[derive(Debug)]
/// enum PayError { Declined, Unavailable(CircuitOpenError) }
///
/// impl From<CircuitOpenError> for PayError {
///     fn from(open: CircuitOpenError) -> Self { PayError::Unavailable(open) }
/// }
///
/// #[circuit_breaker(name = "payments", preset = "critical")] // opens after 2 failures in a row, for 60 s
/// async fn charge(cents: u64) -> Result<u64, PayError> {
///     if cents == 0 { Err(PayError::Declined) } else { Ok(cents) }
/// }
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     assert!(matches!(charge(0).await, Err(PayError::Declined)));
///     assert!(matches!(charge(0).await, Err(PayError::Declined)));
///     // Open: even a good call is rejected, without running the body.
///     let Err(PayError::Unavailable(open)) = charge(500).await else { panic!("not open") };
///     assert_eq!(open.retry_after, Some(Duration::from_secs(60)));
///     // After the reset timeout, a trial call goes through again.
///     tokio::time::advance(Duration::from_secs(60)).await;
///     assert_eq!(charge(500).await.unwrap(), 500);
/// }
/// ```
///
/// Other forms: `#[circuit_breaker("openai")]` (the name alone; a known service name such as
/// `openai` brings its own configuration), `#[circuit_breaker]` (named after the function).
/// Presets: `aggressive` (3 failures, 10 s), `moderate` (5, 30 s), `tolerant` (10, 60 s),
/// `critical` (2, 60 s).
///
/// - The name defaults to the function's name. Functions naming the same breaker share it. The
///   breaker is resolved once per function (a `static`), not looked up by name on every call.
/// - Without `preset`, the breaker gets the registry's configuration for the name: the service's
///   for a known service name, otherwise the default (moderate).
/// - With `preset`, the breaker is registered with that preset on first use, unless a
///   configuration for the name was registered before (`configure_circuit_breaker`), which wins.
/// - The function must return `Result<T, E>` with `E: From<CircuitOpenError>` (`anyhow::Error`,
///   `std::io::Error` and `Box<dyn Error + Send + Sync>` qualify); a rejected call returns
///   `Err(E::from(open))` without running the body. Every `Err` the body returns counts as a
///   failure.
/// - Works on `async fn`s, sync fns and methods.
/// - Stacking: attributes apply outermost first, as written. Put `#[circuit_breaker]` above
///   `#[retry]` so the breaker sees one call per retried sequence.
/// - `shared = true` (`async fn` only) keeps the state in Redis (`SharedCircuitBreaker`): every
///   process calling through the same name shares it, so failures in one open it for all
///   (`#[circuit_breaker("payments", shared = true, preset = "critical")]`). Numbers from
///   `preset`, else the service's or the default (`configure_circuit_breaker` does not apply;
///   the shared breaker counts consecutive failures). The client is `client = <expr>` (a
///   `RedisClient`, `&RedisClient`, `Arc<RedisClient>`, `&OnceLock<RedisClient>` or an `Option`
///   of those, evaluated on calls until it gives one), else the default installed with
///   `resilience::redis::set_default_client`. Without a client, or when Redis cannot answer,
///   calls go through (warned once per function).
/// - `crate = "path"` points the generated code at a renamed `resilience` dependency.
#[proc_macro_attribute]
pub fn circuit_breaker(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Layer::CircuitBreaker, args.into(), item.into()).into()
}

/// Runs the function body again on failure, with backoff.
///
/// ```
/// use std::io;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use resilience::retry;
///
/// static ATTEMPTS: AtomicU32 = AtomicU32::new(0);
///
/// #[retry(max_attempts = 3, initial_delay_ms = 200, backoff = "exponential")]
/// async fn connect(addr: &str) -> Result<String, io::Error> {
///     let attempt = ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
///     if attempt < 3 {
///         return Err(io::ErrorKind::ConnectionRefused.into()); // transient: retried
///     }
///     Ok(format!("{addr}: connected on attempt {attempt}"))
/// }
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)] // the waits take no real time
/// async fn main() {
///     let start = tokio::time::Instant::now();
///     assert_eq!(connect("db:5432").await.unwrap(), "db:5432: connected on attempt 3");
///     assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 3);
///     assert!(start.elapsed() >= Duration::from_millis(200 + 400));
/// }
/// ```
///
/// The error type's `Retryable` impl decides what is retried, and may ask for its own wait:
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use resilience::{Retryable, retry};
///
/// #[derive(Debug, PartialEq)]
/// enum ApiError { Throttled { wait: Duration }, NotFound }
///
/// impl Retryable for ApiError {
///     fn is_retryable(&self) -> bool { matches!(self, ApiError::Throttled { .. }) }
///     fn retry_after(&self) -> Option<Duration> {
///         match self { ApiError::Throttled { wait } => Some(*wait), ApiError::NotFound => None }
///     }
/// }
///
/// static CALLS: AtomicU32 = AtomicU32::new(0);
///
/// #[retry(preset = "patient")] // 5 attempts, 2 s initial delay
/// async fn item(id: u64) -> Result<String, ApiError> {
///     match CALLS.fetch_add(1, Ordering::SeqCst) {
///         _ if id == 0 => Err(ApiError::NotFound),
///         0 => Err(ApiError::Throttled { wait: Duration::from_secs(5) }),
///         _ => Ok(format!("item {id}")),
///     }
/// }
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     assert_eq!(item(0).await, Err(ApiError::NotFound)); // not retryable: returned at once
///     assert_eq!(CALLS.swap(0, Ordering::SeqCst), 1);
///     let start = tokio::time::Instant::now();
///     assert_eq!(item(7).await.unwrap(), "item 7"); // throttled once, then served
///     assert!(start.elapsed() >= Duration::from_secs(5)); // the wait the error asked for
/// }
/// ```
///
/// `retry_if` replaces the classification (and then the error type need not be `Retryable`):
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use resilience::retry;
///
/// #[derive(Debug, PartialEq)]
/// enum FetchError { Busy, NotFound }
///
/// static CALLS: AtomicU32 = AtomicU32::new(0);
///
/// #[retry(preset = "patient", retry_if = |e| *e == FetchError::Busy)]
/// async fn fetch(id: u64) -> Result<String, FetchError> {
///     CALLS.fetch_add(1, Ordering::SeqCst);
///     if id == 0 { Err(FetchError::NotFound) } else { Err(FetchError::Busy) }
/// }
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     assert_eq!(fetch(0).await, Err(FetchError::NotFound));
///     assert_eq!(CALLS.swap(0, Ordering::SeqCst), 1); // not retried
///     assert_eq!(fetch(7).await, Err(FetchError::Busy));
///     assert_eq!(CALLS.load(Ordering::SeqCst), 5); // the preset's 5 attempts, then the last error
/// }
/// ```
///
/// - Options: `preset` (`quick` | `standard` | `patient` | `aggressive`), or the numbers
///   `max_attempts`, `initial_delay_ms`, `max_delay_ms`, `backoff` (`fixed` | `linear` |
///   `exponential` | `exponential-jitter`), `total_timeout_ms` — not both (a preset fixes the
///   numbers; giving both is an error). Numbers not given keep the default policy's (the
///   `standard` preset: 3 attempts, 1 s initial delay, 10 s max delay, exponential-jitter
///   backoff, 30 s total); plain `#[retry]` is that policy.
/// - Which errors are retried: by default, the error type's `resilience::retry::Retryable`
///   classification (so `E` must implement it; `std::io::Error` does, retrying connection
///   refused / reset, timeouts and the like), and a `Retry-After` hint from
///   `Retryable::retry_after` replaces the backoff delay. `retry_if = path_or_closure`
///   (`Fn(&E) -> bool`) replaces the classification, and then `E` need not implement it.
/// - `total_timeout_ms` bounds the sequence, counted from the first attempt (as
///   `RetryPolicy`'s default `DeadlineStart::FirstAttempt`): a wait that would reach it is not
///   started, and the last error is returned instead. `attempt_timeout_ms`
///   (needs `E: From<TimeoutError>`) bounds each attempt, and with it the total deadline also
///   cuts a running attempt.
/// - The body runs once per attempt, so each argument is cloned per attempt (a non-`Clone`
///   argument is a compile error at its type; `&mut T` arguments are re-borrowed) and `&self` /
///   `&mut self` are re-borrowed; by-value `self` and destructuring patterns are rejected.
/// - `on_retry = path_or_closure` (`Fn(&RetryEvent<'_, E>)`) is called before each wait with
///   the failed attempt's number, the maximum, the wait and the error (or the timeout); a
///   closure may use the function's arguments: `on_retry = |ev| tracing::warn!(attempt =
///   ev.attempt, ?ev.delay, "retrying")`. Metrics and `tracing` events are emitted either way.
/// - On exhaustion the function returns the last error, unchanged. Works on sync fns too
///   (waits with `std::thread::sleep`, which tokio's paused clock does not skip).
/// - `crate = "path"` points the generated code at a renamed `resilience` dependency.
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Layer::Retry, args.into(), item.into()).into()
}

/// Admits calls at a rate (GCRA); a rejected call returns `Err(E::from(RateLimited))` at once,
/// without running the body.
///
/// ```
/// use std::time::Duration;
/// use resilience::{RateLimited, rate_limit};
///
/// #[rate_limit(per_minute = 2, key = user)] // 2 calls a minute, for each user
/// fn export(user: &str) -> Result<String, RateLimited> {
///     Ok(format!("report for {user}"))
/// }
///
/// assert!(export("ann").is_ok());
/// assert!(export("ann").is_ok());
/// let limited = export("ann").unwrap_err(); // ann's bucket is empty...
/// assert!(limited.retry_after > Duration::from_secs(29)); // ...and gains a call every 30 s
/// assert_eq!(export("bob").unwrap(), "report for bob"); // bob has a bucket of his own
/// ```
///
/// - The rate: `per_second = N` or `per_minute = N`. `burst` (the bucket's size, how many calls
///   may come at once) defaults to the rate.
/// - `key = expr` keeps one bucket per key; the key is a string (`&str`, `String`) or an
///   integer, evaluated from the arguments before the body runs.
/// - The function must return `Result<T, E>` with `E: From<RateLimited>`; `RateLimited` says
///   when the call would be admitted (`retry_after`).
/// - The limiter lives in a `static` per function, shared by all its callers. It reads a real
///   clock (not tokio's paused one). Works on `async fn`s, sync fns and methods.
/// - `backend = "redis"` (`async fn` only) keeps the buckets in Redis, one round trip per call,
///   so every process shares them
///   (`#[rate_limit(per_second = 100, key = tenant, backend = "redis")]`):
///   - `name = "..."`: processes using the same name share buckets. Default: the function's
///     path (`module_path!()::fn_name`; name methods of two types in one module yourself).
///     Unkeyed functions spend from one bucket.
///   - `on_redis_error = "local"` (default): decide in memory with the same numbers, per
///     process; `"open"`: admit; `"closed"`: return `Err(E::from(RateLimitError))`, which also
///     needs `E: From<resilience::rate_limit::RateLimitError>`.
///   - `client = <expr>`: as for `#[circuit_breaker(shared = true)]`; without a client the
///     `on_redis_error` policy applies (warned once) until one is installed.
/// - `crate = "path"` points the generated code at a renamed `resilience` dependency.
#[proc_macro_attribute]
pub fn rate_limit(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Layer::RateLimit, args.into(), item.into()).into()
}

/// Caps concurrent calls of an `async fn`; a call that finds the bulkhead (and its queue) full
/// returns `Err(E::from(BulkheadFull))` without running the body.
///
/// ```
/// use std::time::Duration;
/// use resilience::{BulkheadFull, bulkhead};
///
/// #[bulkhead(max_concurrent = 1, max_queued = 1, queue_timeout_ms = 50)]
/// async fn render(ms: u64) -> Result<u64, BulkheadFull> {
///     tokio::time::sleep(Duration::from_millis(ms)).await;
///     Ok(ms)
/// }
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let (running, queued, refused) = tokio::join!(render(100), render(1), render(1));
///     assert_eq!(running, Ok(100));
///     // The queued call gave up after 50 ms; the third found the queue full.
///     assert!(matches!(queued, Err(BulkheadFull::QueueTimeout { .. })));
///     assert!(matches!(refused, Err(BulkheadFull::QueueFull { .. })));
///     assert_eq!(render(1).await, Ok(1)); // the slot is free again
/// }
/// ```
///
/// - `max_concurrent` (required): calls running at once. `max_queued` (default 0): calls that
///   may wait for a slot, in FIFO order; beyond them a call is refused at once.
///   `queue_timeout_ms` (default: wait until a slot frees; needs `max_queued`): how long a
///   queued call waits.
/// - The function must be `async` and return `Result<T, E>` with `E: From<BulkheadFull>`.
/// - The bulkhead lives in a `static` per function, shared by all its callers; the slot is held
///   until the body's future completes or is dropped.
/// - `crate = "path"` points the generated code at a renamed `resilience` dependency.
#[proc_macro_attribute]
pub fn bulkhead(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Layer::Bulkhead, args.into(), item.into()).into()
}

/// Bounds an `async fn` in time; when the deadline passes, the body's future is dropped and the
/// call returns `Err(E::from(TimeoutError))`.
///
/// ```
/// use std::time::Duration;
/// use resilience::{TimeoutError, timeout};
///
/// #[timeout(ms = 100)]
/// async fn lookup(delay_ms: u64) -> Result<&'static str, TimeoutError> {
///     tokio::time::sleep(Duration::from_millis(delay_ms)).await;
///     Ok("found")
/// }
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     assert_eq!(lookup(10).await, Ok("found"));
///     let err = lookup(500).await.unwrap_err();
///     assert_eq!(err.after, Duration::from_millis(100));
/// }
/// ```
///
/// - `#[timeout(ms = 5000)]`, or `#[timeout(5000)]`; at least 1 ms.
/// - The function must be `async` and return `Result<T, E>` with `E: From<TimeoutError>`
///   (`std::io::Error`, with kind `TimedOut`, and `anyhow::Error` qualify).
/// - The timer is tokio's: it needs a runtime with the time driver, and follows the paused clock
///   in tests.
/// - Under `#[retry]` it bounds each attempt; above it, the whole sequence.
/// - `crate = "path"` points the generated code at a renamed `resilience` dependency.
#[proc_macro_attribute]
pub fn timeout(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Layer::Timeout, args.into(), item.into()).into()
}

/// Registers a free `async fn` without arguments as a shutdown hook of the global coordinator,
/// at start-up (static registration), to run when shutdown begins (SIGTERM/SIGINT or a manual
/// trigger).
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use resilience::{shutdown, shutdown_hook};
///
/// static FLUSHED: AtomicBool = AtomicBool::new(false);
///
/// #[shutdown_hook(priority = "high")] // critical | high | normal | low | background, or an i32
/// async fn close_redis() {}
///
/// #[shutdown_hook(name = "flush-metrics", priority = "low")]
/// async fn flush() -> Result<(), std::io::Error> {
///     FLUSHED.store(true, Ordering::SeqCst);
///     Ok(())
/// }
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     // What SIGTERM does once `shutdown::install_signal_handlers()` ran, and exits with the code.
///     let report = shutdown::shutdown().await;
///     assert_eq!(report.exit_code(), 0);
///     let order: Vec<_> = report.hooks.iter().map(|h| h.name.as_str()).collect();
///     assert_eq!(order, ["close_redis", "flush-metrics"]); // higher priority first
///     assert!(FLUSHED.load(Ordering::SeqCst));
/// }
/// ```
///
/// - Named after the function unless `name = "..."` is given; priority defaults to `normal`.
/// - Higher priorities run first; equal priorities run concurrently, each hook under the
///   coordinator's hook timeout.
/// - The function may return `()` or `Result<(), E>` with `E: Into<Box<dyn Error + Send + Sync>>`;
///   an error (or a panic) is reported and fails the shutdown (exit code 1) without stopping the
///   other hooks.
/// - The function stays callable as written.
/// - `crate = "path"` points the generated code at a renamed `resilience` dependency.
#[proc_macro_attribute]
pub fn shutdown_hook(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::shutdown_hook(args.into(), item.into()).into()
}

/// Declares an `async fn` as the handler of a job queue's jobs of one name: registered at
/// start-up (static registration) for `Worker::builder(&queue).registered()`, with typed helpers
/// to enqueue them.
///
/// ```
/// use resilience::job;
/// use resilience::jobs::{JobContext, registered_jobs};
///
/// #[job(queue = "emails", name = "welcome", retry = "patient", priority = "high", timeout_ms = 30_000)]
/// async fn welcome(user: u64) -> Result<String, std::io::Error> {
///     Ok(format!("welcome mail sent to user {user}"))
/// }
///
/// #[job(queue = "emails")] // named after the function; retry "standard", priority normal
/// async fn digest(day: String, ctx: JobContext) -> std::io::Result<()> {
///     println!("digest of {day}, attempt {} of {}", ctx.attempt(), ctx.max_attempts());
///     Ok(())
/// }
///
/// let jobs = registered_jobs();
/// assert!(jobs.contains(&("emails", "welcome")) && jobs.contains(&("emails", "digest")));
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // The function stays callable as written.
/// assert_eq!(welcome(7).await.unwrap(), "welcome mail sent to user 7");
/// # }
/// ```
///
/// Producers enqueue through the generated helpers; workers run every registered job of their
/// queue:
///
/// ```
/// # use resilience::job;
/// use std::time::Duration;
/// use resilience::jobs::{JobOptions, JobPriority, MemoryBroker, Queue, QueueError, Worker};
///
/// #[job(queue = "emails", retry = "patient", priority = "high")]
/// async fn welcome(user: u64) -> Result<String, std::io::Error> {
///     Ok(format!("sent to {user}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), QueueError> {
/// let broker = MemoryBroker::new();
/// let emails = Queue::in_memory("emails", &broker)?;
/// let id = welcome_enqueue(&emails, &7).await?; // priority high, the preset's 5 attempts
/// assert_eq!(emails.job(&id).await?.unwrap().priority, 2);
/// // `_with` takes options; the ones it sets win over the attribute's.
/// welcome_enqueue_with(&emails, &8, JobOptions::new().priority(JobPriority::Low)).await?;
/// // A helper refuses a queue other than its attribute's.
/// let other = Queue::in_memory("reports", &broker)?;
/// assert!(matches!(welcome_enqueue(&other, &9).await, Err(QueueError::WrongQueue { .. })));
///
/// let worker = Worker::builder(&emails).registered().concurrency(10).start().await?;
/// # for _ in 0..1000 { if emails.counts().await?.completed == 2 { break } tokio::time::sleep(Duration::from_millis(1)).await; }
/// worker.close(Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
///
/// - `queue` (required): the queue, checked as the runtime checks queue names (1 to 200 bytes,
///   no `:`, braces, whitespace or control characters).
/// - `name`: the job name, default the function's. `retry`: the retry preset (`quick` |
///   `standard` | `patient` | `aggressive`), default `standard`; it decides the handler's delays
///   and which errors are retried, and the enqueue helpers give jobs its attempt count (a
///   `#[job]` handler keeps its preset: the worker's `retry` does not apply to it).
///   `priority`: `critical` (1) | `high` (2) | `normal` (3) | `low` (4), or BullMQ's number up to
///   2097151; default normal. `timeout_ms`: cuts each attempt (a failed, retryable attempt).
/// - The function: a free `async fn` taking the payload (`T: Serialize + DeserializeOwned`, by
///   value) and optionally a `resilience::jobs::JobContext`, returning `Result<R, E>` (or an
///   alias named `Result`) with `R: Serialize` and `E: Retryable + Display`. It stays callable as
///   written.
/// - Generated beside it, with its visibility: `async fn <fn>_enqueue(queue: &Queue, payload:
///   &T) -> Result<String, QueueError>` (the job's id) and `<fn>_enqueue_with(queue, payload,
///   opts: JobOptions)`, whose `opts` win where they set priority, retry or timeout. Both return
///   `QueueError::WrongQueue` for a queue other than the attribute's.
/// - `crate = "path"` points the generated code at a renamed `resilience` dependency.
#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::job(args.into(), item.into()).into()
}

/// Derives `resilience::redis::RedisKey` for a struct, from a template.
///
/// ```
/// use resilience::RedisKey; // the derive and the trait
/// use resilience::redis::render_key;
///
/// #[derive(RedisKey)]
/// #[redis_key(namespace = "limits", template = "user:{user}:window:{window}", hash_tag = "user")]
/// struct WindowKey { user: String, window: u64 }
///
/// #[derive(RedisKey)]
/// #[redis_key(namespace = "session")] // no template: the fields in order, joined by `:`
/// struct SessionKey(u64, String);
///
/// let key = WindowKey { user: "ann:admin".into(), window: 60 };
/// // The user's `:` is encoded: it cannot forge another key. The hash tag picks the cluster slot.
/// assert_eq!(render_key("app", &key).unwrap(), "app:limits:user:{ann%3Aadmin}:window:60");
/// assert_eq!(render_key("app", &SessionKey(7, "web".into())).unwrap(), "app:session:7:web");
/// ```
///
/// A `RedisClient` renders keys with its configured prefix in every command that takes a key:
///
/// ```no_run
/// use std::time::Duration;
/// use resilience::{RedisClient, RedisConfig, RedisKey};
///
/// #[derive(RedisKey)]
/// #[redis_key(namespace = "sword", template = "goal:{goal_id}")]
/// struct GoalKey { goal_id: String }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379")?.key_prefix("nova").build()?;
/// let redis = RedisClient::connect(config).await?;
/// let key = GoalKey { goal_id: "g-42".into() };
/// redis.set(&key, "done", Some(Duration::from_secs(3600))).await?; // SET nova:sword:goal:g-42
/// let state: Option<String> = redis.get(&key).await?;
/// assert_eq!(state.as_deref(), Some("done"));
/// # Ok(())
/// # }
/// ```
///
/// - Placeholders `{field}` (or `{0}` in tuple structs) must match the fields one to one:
///   unknown and unused fields are compile errors, as are an empty template, placeholders not
///   separated by literal text, and literal text outside `[A-Za-z0-9_.:-]`.
/// - Without `template`, the fields in order, separated by `:`.
/// - Each field's type implements `KeySegment` (strings, byte strings, integers, `bool`,
///   `char`, `IpAddr`; `resilience::key_segment_newtype!` for your id newtypes); its encoding is
///   injective and cannot inject a separator, a hash tag or a glob character.
///   `hash_tag = "field"` wraps that field in `{...}` so related keys land on one Redis Cluster
///   slot.
/// - `namespace` is required: the key's first segment after the prefix.
/// - `crate = "path"` points the generated code at a renamed `resilience` dependency.
#[proc_macro_derive(RedisKey, attributes(redis_key))]
pub fn derive_redis_key(input: TokenStream) -> TokenStream {
    redis_key::derive(input.into()).into()
}
