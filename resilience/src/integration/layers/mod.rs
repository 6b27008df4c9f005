//! `tower::Layer`s over the toolkit's runtime types.
//!
//! The layers keep the inner service's error type: a rejection is converted into it with `From`
//! (`S::Error: From<CircuitOpenError>`, `From<TimeoutError>`, ...), as with the attributes, so
//! layers stack without nesting error types and `tower::BoxError` works as it is.

mod bulkhead;
mod circuit_breaker;
mod in_flight;
mod rate_limit;
mod reject;
mod retry;
mod timeout;

pub use bulkhead::{BulkheadFuture, BulkheadLayer, BulkheadService};
pub use circuit_breaker::{
    CircuitBreakerFuture, CircuitBreakerLayer, CircuitBreakerService, ClassifyResult,
    ConfiguredFailures,
};
pub use in_flight::{InFlight, InFlightLayer};
pub use rate_limit::{RateLimit, RateLimitLayer};
pub use reject::RejectOr;
pub use retry::{Retry, RetryFuture, RetryLayer};
pub use timeout::{Timeout, TimeoutFuture, TimeoutLayer};
