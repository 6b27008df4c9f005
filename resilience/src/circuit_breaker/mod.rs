//! Circuit breakers: state machine, configuration and presets, the global registry.
//!
//! A breaker sits between a caller and a service. While **Closed** it lets calls through and
//! counts failures; once they reach the trip condition it **Opens** and rejects calls at once
//! with [`CircuitOpenError`] (carrying `retry_after`). After the reset timeout the next call
//! moves it to **HalfOpen**, which lets up to `half_open_max_calls` trial calls run at the same
//! time (the others are rejected); `success_threshold` successful trials close it, one failure
//! re-opens it. [`CircuitBreaker::force_open`] and [`CircuitBreaker::disable`] override it by
//! hand until [`CircuitBreaker::reset`].
//!
//! # Trip conditions
//! - **Consecutive failures** (the default and what the presets set): `failure_threshold` failures
//!   in a row open the breaker; a success resets the count.
//! - **Failure rate** ([`CircuitBreakerConfigBuilder::failure_rate`]): open when at least that
//!   percentage of the calls in a [`SlidingWindow`] (the last `n` calls, or the last duration)
//!   failed, once the window holds `minimum_calls` calls.
//! - **Slow calls** ([`CircuitBreakerConfigBuilder::slow_call_threshold`]): a call that takes at
//!   least the threshold counts as a failure in either mode, even if it returned `Ok`.
//!
//! # Which errors count
//! Every `Err` is a failure by default. A config-level
//! [`failure_predicate`](CircuitBreakerConfigBuilder::failure_predicate) narrows it for one error
//! type (type-erased through `Any`, so `call` needs `E: 'static`); [`CircuitBreaker::call_with`]
//! takes a per-call predicate instead. An error that is not a failure counts as a success: the
//! service answered.
//!
//! # Cost
//! A success in Closed reads the state word and writes no shared memory (consecutive mode, no
//! failures pending), so it scales across threads; the clock is read only on failures, in
//! HalfOpen, in time-window mode and with a slow-call threshold. In count-window mode a success
//! adds one to a per-thread stripe of a counter. Metric handles are resolved when the breaker is
//! created: without a `metrics` recorder installed then, `circuit_breaker_requests_total` costs a
//! branch; with one, every call increments the recorder's counter (its shared write is the price
//! of that metric).
//!
//! # Named breakers
//! [`get_circuit_breaker`] returns the process-wide breaker of a name, created on first use with
//! the name's pre-configured settings ([`SERVICE_NAMES`]) or the default;
//! [`configure_circuit_breaker`] sets a name's configuration before its first use;
//! [`with_circuit_breaker`] and [`Protected`] run calls through a named breaker.

mod breaker;
mod config;
mod error;
mod registry;
mod state;
mod window;

pub use breaker::{CircuitBreaker, OwnedPermit, Permit};
pub use config::{
    CircuitBreakerConfig, CircuitBreakerConfigBuilder, CircuitBreakerPreset, SERVICE_NAMES,
    SlidingWindow, TripPolicy,
};
pub use error::{CallError, CircuitOpenError, RegistryError};
pub use registry::{
    BreakerRegistry, Protected, configure_circuit_breaker, get_circuit_breaker,
    with_circuit_breaker,
};
pub use state::{CircuitSnapshot, CircuitState, StateChange};
