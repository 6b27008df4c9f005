//! Runs calls through a [`CircuitBreaker`]; an open breaker refuses them at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::RejectOr;
use crate::circuit_breaker::{CircuitBreaker, CircuitOpenError, OwnedPermit};

/// Decides whether a call's result counts as a failure for the breaker.
///
/// Implemented by [`ConfiguredFailures`] (the default) and by any
/// `Fn(&Result<T, E>) -> bool + Clone`, e.g. to count HTTP 5xx responses:
/// `|r: &Result<Response, E>| r.as_ref().map_or(true, |res| res.status().is_server_error())`.
pub trait ClassifyResult<T, E> {
    /// `true` when `result` is a failure.
    fn is_failure(&self, breaker: &CircuitBreaker, result: &Result<T, E>) -> bool;
}

/// The default classifier: `Ok` is a success; an `Err` is a failure unless the breaker's
/// configured failure predicate says otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfiguredFailures;

impl<T, E: 'static> ClassifyResult<T, E> for ConfiguredFailures {
    #[inline]
    fn is_failure(&self, breaker: &CircuitBreaker, result: &Result<T, E>) -> bool {
        match result {
            Ok(_) => false,
            Err(e) => breaker.config().is_failure(e),
        }
    }
}

impl<T, E, F> ClassifyResult<T, E> for F
where
    F: Fn(&Result<T, E>) -> bool,
{
    #[inline]
    fn is_failure(&self, _: &CircuitBreaker, result: &Result<T, E>) -> bool {
        self(result)
    }
}

/// Runs every call through a breaker: refused at once with [`CircuitOpenError`] (converted into
/// the service's error type) while the breaker is open, its outcome recorded otherwise. A
/// response future dropped before completion records nothing (and frees its half-open slot).
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = ConfiguredFailures> {
    breaker: Arc<CircuitBreaker>,
    classify: C,
}

impl CircuitBreakerLayer {
    /// Protects services with `breaker`.
    pub fn new(breaker: Arc<CircuitBreaker>) -> Self {
        Self {
            breaker,
            classify: ConfiguredFailures,
        }
    }

    /// Protects services with the global registry's breaker named `name`.
    pub fn named(name: &str) -> Self {
        Self::new(crate::circuit_breaker::get_circuit_breaker(name))
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Uses `classify` to decide which results are failures.
    pub fn classify<C2>(self, classify: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// The service made by [`CircuitBreakerLayer`].
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S, C = ConfiguredFailures> {
    inner: S,
    breaker: Arc<CircuitBreaker>,
    classify: C,
}

impl<S, C, Req> Service<Req> for CircuitBreakerService<S, C>
where
    S: Service<Req>,
    S::Error: From<CircuitOpenError>,
    C: ClassifyResult<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CircuitBreakerFuture<S::Future, S::Error, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => CircuitBreakerFuture {
                inner: RejectOr::admitted(self.inner.call(req)),
                permit: Some(permit),
                classify: self.classify.clone(),
            },
            Err(open) => CircuitBreakerFuture {
                inner: RejectOr::rejected(open.into()),
                permit: None,
                classify: self.classify.clone(),
            },
        }
    }
}

pin_project! {
    /// The response future of [`CircuitBreakerService`].
    pub struct CircuitBreakerFuture<F, E, C> {
        #[pin]
        inner: RejectOr<F, E>,
        permit: Option<OwnedPermit>,
        classify: C,
    }
}

impl<F, T, E, C> Future for CircuitBreakerFuture<F, E, C>
where
    F: Future<Output = Result<T, E>>,
    C: ClassifyResult<T, E>,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        if let Some(permit) = this.permit.take() {
            let failed = this.classify.is_failure(permit.breaker(), &out);
            permit.record(failed);
        }
        Poll::Ready(out)
    }
}
