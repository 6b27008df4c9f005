//! A protected client: every call through its breaker (outside) and retry policy (inside).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::circuit_breaker::{CallError, CircuitBreaker, CircuitState, Protected};
use crate::retry::{RetryPolicy, Retryable};
use crate::timeout::TimeoutError;

/// A client declared with [`protect`](super::protect): cheap to clone (three `Arc`s and a
/// policy), shared by every task that calls the dependency.
///
/// [`call`](Self::call) runs the operation through the breaker, and the retry policy inside it:
/// a retried sequence counts once in the breaker (so `failure_threshold` counts failed
/// *sequences*), and an open breaker rejects at once without trying the client.
///
/// ```
/// use std::time::Duration;
/// use resilience::retry::RetryPolicy;
/// use resilience::{CallError, CircuitBreakerConfig, CircuitState, protect};
///
/// struct Vault;
/// impl Vault {
///     async fn read(&self, path: &str) -> Result<String, std::io::Error> {
///         Err(std::io::ErrorKind::ConnectionRefused.into())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let vault = protect("vault-docs", Vault)
///     .breaker_config(CircuitBreakerConfig::builder().failure_threshold(2).build()?)
///     .retry(RetryPolicy::builder().max_attempts(3).initial_delay(Duration::from_millis(10)).build()?)
///     .without_health()
///     .build()?;
/// for _ in 0..2 {
///     // Three attempts each, one failure each in the breaker.
///     let failed = vault.call(|v| v.read("secret/db")).await;
///     assert!(matches!(failed, Err(CallError::Inner(_))));
/// }
/// assert_eq!(vault.state(), CircuitState::Open);
/// assert!(vault.call(|v| v.read("secret/db")).await.unwrap_err().is_open());
/// # Ok(()) }
/// ```
pub struct Dependency<T> {
    pub(crate) name: Arc<str>,
    pub(crate) client: Arc<T>,
    pub(crate) breaker: Arc<CircuitBreaker>,
    pub(crate) retry: RetryPolicy,
}

impl<T> Clone for Dependency<T> {
    fn clone(&self) -> Self {
        Self {
            name: Arc::clone(&self.name),
            client: Arc::clone(&self.client),
            breaker: Arc::clone(&self.breaker),
            retry: self.retry.clone(),
        }
    }
}

impl<T> fmt::Debug for Dependency<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client is left out: it may hold credentials.
        f.debug_struct("Dependency")
            .field("name", &self.name)
            .field("breaker", &self.breaker.state())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<T> Dependency<T> {
    /// The dependency's name (its breaker's and its health check's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client itself, bypassing breaker and retry.
    pub fn client(&self) -> &T {
        &self.client
    }

    /// The shared client, e.g. for a background task.
    pub fn client_arc(&self) -> &Arc<T> {
        &self.client
    }

    /// The breaker guarding the client.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// The breaker's state.
    pub fn state(&self) -> CircuitState {
        self.breaker.state()
    }

    /// The retry policy of [`call`](Self::call).
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The breaker-only view ([`Protected`]) of the same client and breaker: for calls that must
    /// not be retried.
    pub fn protected(&self) -> Protected<Arc<T>> {
        Protected::with_breaker(Arc::clone(&self.breaker), Arc::clone(&self.client))
    }

    /// Runs `f` on the client, retried by the policy ([`RetryPolicy::run`]'s rules: attempts are
    /// not cut, the last error is returned), the whole sequence through the breaker. Errors the
    /// policy does not retry ([`Retryable`], or its `retry_if`) end the sequence at once.
    ///
    /// `Err(CallError::Open)` means the breaker rejected the call and `f` never ran.
    pub async fn call<'a, F, Fut, R, E>(&'a self, mut f: F) -> Result<R, CallError<E>>
    where
        F: FnMut(&'a T) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: Retryable + 'static,
    {
        let client: &'a T = &self.client;
        let retry = &self.retry;
        self.breaker
            .call(move || retry.run(move || f(client)))
            .await
    }

    /// [`call`](Self::call) with the policy's `attempt_timeout` and total deadline cutting
    /// attempts ([`RetryPolicy::run_with_timeouts`]); a cut last attempt is returned as
    /// `E::from(TimeoutError)`.
    pub async fn call_with_timeouts<'a, F, Fut, R, E>(&'a self, mut f: F) -> Result<R, CallError<E>>
    where
        F: FnMut(&'a T) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: Retryable + From<TimeoutError> + 'static,
    {
        let client: &'a T = &self.client;
        let retry = &self.retry;
        self.breaker
            .call(move || retry.run_with_timeouts(move || f(client)))
            .await
    }

    /// Runs `f` once through the breaker, without retrying (non-idempotent operations).
    pub async fn call_once<'a, F, Fut, R, E>(&'a self, f: F) -> Result<R, CallError<E>>
    where
        F: FnOnce(&'a T) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: 'static,
    {
        let client: &'a T = &self.client;
        self.breaker.call(move || f(client)).await
    }

    /// The blocking form of [`call`](Self::call) (waits with `std::thread::sleep`).
    pub fn call_blocking<'a, F, R, E>(&'a self, mut f: F) -> Result<R, CallError<E>>
    where
        F: FnMut(&'a T) -> Result<R, E>,
        E: Retryable + 'static,
    {
        let client: &'a T = &self.client;
        let retry = &self.retry;
        self.breaker
            .call_blocking(move || retry.run_blocking(move || f(client)))
    }
}
