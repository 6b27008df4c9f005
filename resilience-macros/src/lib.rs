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
/// ```text
/// #[circuit_breaker("openai")]                                // preset from the service name
/// async fn complete(prompt: &str) -> Result<String, ApiError> { ... }
///
/// #[circuit_breaker(name = "payments", preset = "critical")]  // aggressive | moderate | tolerant | critical
/// fn charge(&self, cents: u64) -> Result<Receipt, PayError> { ... }   // sync fns work too
/// ```
///
/// - The name defaults to the function's name. The breaker is resolved once per function (a
///   `static`), not looked up by name on every call.
/// - With `preset`, the breaker is registered with that preset on first use, unless a
///   configuration for the name was registered before (`configure_circuit_breaker`), which wins.
/// - The function must return `Result<T, E>` with `E: From<CircuitOpenError>` (`anyhow::Error`
///   and `Box<dyn Error + Send + Sync>` qualify); a rejected call returns `Err(E::from(open))`
///   without running the body.
/// - Stacking: attributes apply outermost first, as written. Put `#[circuit_breaker]` above
///   `#[retry]` so the breaker sees one call per retried sequence.
/// - `crate = "path"` points the generated code at a renamed `resilience` dependency.
#[proc_macro_attribute]
pub fn circuit_breaker(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Layer::CircuitBreaker, args.into(), item.into()).into()
}

/// Runs the function body again on failure, with backoff.
///
/// ```text
/// #[retry]                                       // the default policy (standard numbers)
/// #[retry(preset = "patient")]                   // quick | standard | patient | aggressive
/// #[retry(max_attempts = 5, initial_delay_ms = 500, max_delay_ms = 10_000,
///         backoff = "linear", total_timeout_ms = 30_000, retry_if = is_transient)]
/// ```
///
/// - Options: `preset`, or the numbers `max_attempts`, `initial_delay_ms`, `max_delay_ms`,
///   `backoff` (`fixed` | `linear` | `exponential` | `exponential_jitter`),
///   `total_timeout_ms` — not both (a preset fixes the numbers; giving both is an error). Also
///   `retry_if = path_or_closure` (`Fn(&E) -> bool`; default: every `Err` is retried),
///   `attempt_timeout_ms` (needs `E: From<TimeoutError>`) and `crate = "path"`.
/// - The total timeout bounds the sequence: no attempt starts and no wait runs past it.
/// - The body runs once per attempt, so each argument is cloned per attempt (a non-`Clone`
///   argument is a compile error at its type; `&mut T` arguments are re-borrowed) and `&self` /
///   `&mut self` are re-borrowed; by-value `self` and destructuring patterns are rejected.
/// - On exhaustion the function returns the last error, unchanged. Works on sync fns too
///   (waits with `std::thread::sleep`).
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Layer::Retry, args.into(), item.into()).into()
}

/// Admits calls at a rate (GCRA); a rejected call returns `Err(E::from(RateLimited))` at once,
/// without running the body.
///
/// ```text
/// #[rate_limit(per_second = 10, burst = 20)]
/// #[rate_limit(per_minute = 60, key = user_id)]   // one bucket per key (any `Display` expression)
/// ```
///
/// `burst` defaults to the rate. The limiter lives in a `static` per function.
#[proc_macro_attribute]
pub fn rate_limit(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Layer::RateLimit, args.into(), item.into()).into()
}

/// Caps concurrent calls of an `async fn`; a call that finds the bulkhead (and its queue) full
/// returns `Err(E::from(BulkheadFull))` without running the body.
///
/// ```text
/// #[bulkhead(max_concurrent = 10, max_queued = 100, queue_timeout_ms = 1000)]
/// ```
#[proc_macro_attribute]
pub fn bulkhead(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Layer::Bulkhead, args.into(), item.into()).into()
}

/// Bounds an `async fn` in time; when the deadline passes, the body's future is dropped and the
/// call returns `Err(E::from(TimeoutError))`.
///
/// ```text
/// #[timeout(ms = 5000)]
/// ```
#[proc_macro_attribute]
pub fn timeout(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::attribute(Layer::Timeout, args.into(), item.into()).into()
}

/// Registers a free `async fn` without arguments as a shutdown hook of the global coordinator,
/// at start-up (static registration), to run when shutdown begins (SIGTERM/SIGINT or a manual
/// trigger).
///
/// ```text
/// #[shutdown_hook(priority = "high")]              // critical | high | normal | low | background, or an i32
/// async fn close_redis() { ... }
///
/// #[shutdown_hook(name = "flush-metrics", priority = 10)]
/// async fn flush() -> Result<(), std::io::Error> { ... }
/// ```
///
/// Named after the function unless `name = "..."` is given; priority defaults to `normal`.
/// Higher priorities run first; equal priorities run concurrently. The function may return `()`
/// or `Result<(), E>` with `E: Into<Box<dyn Error + Send + Sync>>`.
#[proc_macro_attribute]
pub fn shutdown_hook(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::shutdown_hook(args.into(), item.into()).into()
}

/// Derives `resilience::redis::RedisKey` for a struct, from a template.
///
/// ```text
/// #[derive(RedisKey)]
/// #[redis_key(namespace = "sword", template = "goal:{goal_id}")]
/// struct GoalKey { goal_id: GoalId }              // -> "<prefix>:sword:goal:<encoded goal_id>"
///
/// #[derive(RedisKey)]
/// #[redis_key(namespace = "limits", template = "user:{user}:window:{window}", hash_tag = "user")]
/// struct WindowKey { user: String, window: u64 }  // -> "<prefix>:limits:user:{<user>}:window:<window>"
/// ```
///
/// - Placeholders `{field}` (or `{0}` in tuple structs) must match the fields one to one:
///   unknown and unused fields are compile errors, as are an empty template, placeholders not
///   separated by literal text, and literal text outside `[A-Za-z0-9_.:-]`.
/// - Without `template`, the fields in order, separated by `:`.
/// - Each field's type implements `KeySegment`; its encoding is injective and cannot inject a
///   separator, a hash tag or a glob character. `hash_tag = "field"` wraps that field in `{...}`
///   so related keys land on one Redis Cluster slot.
#[proc_macro_derive(RedisKey, attributes(redis_key))]
pub fn derive_redis_key(input: TokenStream) -> TokenStream {
    redis_key::derive(input.into()).into()
}
