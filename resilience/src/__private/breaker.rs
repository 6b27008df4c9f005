//! `#[circuit_breaker]`: the breaker cell and the call wrappers.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use super::Outcome;
use crate::circuit_breaker::{
    CallError, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerPreset, CircuitOpenError,
    configure_circuit_breaker, get_circuit_breaker,
};

/// Turns a breaker rejection into the wrapped function's error type.
#[diagnostic::on_unimplemented(
    message = "`#[circuit_breaker]` needs the function's error type `{Self}` to implement `From<CircuitOpenError>`",
    label = "`{Self}` cannot hold the breaker's rejection",
    note = "add `impl From<resilience::CircuitOpenError> for {Self}` (or a `#[from]` variant), or return `anyhow::Error` / `Box<dyn Error + Send + Sync>`"
)]
pub trait FromCircuitOpen {
    fn from_circuit_open(error: CircuitOpenError) -> Self;
}

#[diagnostic::do_not_recommend]
impl<E: From<CircuitOpenError>> FromCircuitOpen for E {
    #[inline]
    fn from_circuit_open(error: CircuitOpenError) -> Self {
        E::from(error)
    }
}

/// The breaker of one `#[circuit_breaker]` function, resolved from the registry on first use and
/// then read with one atomic load (a `static` in the generated body).
pub struct BreakerCell {
    name: &'static str,
    preset: Option<CircuitBreakerPreset>,
    breaker: OnceLock<Arc<CircuitBreaker>>,
}

impl BreakerCell {
    pub const fn new(name: &'static str, preset: Option<CircuitBreakerPreset>) -> Self {
        Self {
            name,
            preset,
            breaker: OnceLock::new(),
        }
    }

    #[inline]
    pub fn get(&self) -> &CircuitBreaker {
        self.breaker
            .get_or_init(|| resolve_breaker(self.name, self.preset))
    }
}

#[cold]
fn resolve_breaker(name: &str, preset: Option<CircuitBreakerPreset>) -> Arc<CircuitBreaker> {
    let Some(preset) = preset else {
        return get_circuit_breaker(name);
    };
    match configure_circuit_breaker(name, CircuitBreakerConfig::from_preset(preset)) {
        Ok(breaker) => breaker,
        // Configured by hand before first use: that configuration wins, as documented.
        Err(error) => {
            tracing::debug!(breaker = name, %error, "preset of #[circuit_breaker] not applied");
            get_circuit_breaker(name)
        }
    }
}

/// The body of an async `#[circuit_breaker]` function. It takes the body as a future, not a
/// closure: an async block does nothing until polled, and unlike a `move` closure it can borrow
/// `self` for one call and leave it for the next (`#[retry]` above).
#[inline]
pub async fn breaker_call<Fut, R>(breaker: &CircuitBreaker, body: Fut) -> R
where
    Fut: Future<Output = R>,
    R: Outcome,
    R::Err: FromCircuitOpen + 'static,
{
    from_call(
        breaker
            .call(move || async move { body.await.into_result() })
            .await,
    )
}

/// The body of a sync `#[circuit_breaker]` function.
#[inline]
pub fn breaker_call_blocking<F, R>(breaker: &CircuitBreaker, f: F) -> R
where
    F: FnOnce() -> R,
    R: Outcome,
    R::Err: FromCircuitOpen + 'static,
{
    from_call(breaker.call_blocking(move || f().into_result()))
}

/// A breaker call's result as the wrapped function's: the body's error as it is, a rejection
/// converted.
#[inline]
pub(super) fn from_call<R>(result: Result<R::Ok, CallError<R::Err>>) -> R
where
    R: Outcome,
    R::Err: FromCircuitOpen,
{
    match result {
        Ok(value) => R::from_result(Ok(value)),
        Err(CallError::Inner(error)) => R::from_result(Err(error)),
        Err(CallError::Open(open)) => R::from_result(Err(R::Err::from_circuit_open(open))),
    }
}
