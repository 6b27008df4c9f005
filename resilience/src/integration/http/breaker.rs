//! The circuit breaker for HTTP services: an open circuit is answered with `503 Service
//! Unavailable` and `Retry-After`, and 5xx responses count as failures.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::RETRY_AFTER;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::headers::retry_after_value;
use crate::circuit_breaker::{CircuitBreaker, CircuitOpenError, OwnedPermit};
use crate::integration::layers::ClassifyResult;

/// The default classifier of [`HttpCircuitBreakerLayer`]: an error or a 5xx response is a
/// failure; everything else (4xx included: the client's fault, not the service's) a success.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrors;

impl<RB, E> ClassifyResult<Response<RB>, E> for ServerErrors {
    #[inline]
    fn is_failure(&self, _: &CircuitBreaker, result: &Result<Response<RB>, E>) -> bool {
        result
            .as_ref()
            .map_or(true, |res| res.status().is_server_error())
    }
}

/// Runs HTTP requests through a breaker. While it is open, requests are answered at once with
/// `503 Service Unavailable` and `Retry-After` (the breaker's `retry_after`, in whole seconds
/// rounded up; omitted when unknown), never with an error, so the layer fits axum's
/// `Router::layer`. The responses that count as failures are decided by a [`ClassifyResult`]
/// (default [`ServerErrors`]: errors and 5xx).
#[derive(Debug, Clone)]
pub struct HttpCircuitBreakerLayer<C = ServerErrors> {
    breaker: Arc<CircuitBreaker>,
    classify: C,
}

impl HttpCircuitBreakerLayer {
    /// Protects services with `breaker`.
    pub fn new(breaker: Arc<CircuitBreaker>) -> Self {
        Self {
            breaker,
            classify: ServerErrors,
        }
    }

    /// Protects services with the global registry's breaker named `name`.
    pub fn named(name: &str) -> Self {
        Self::new(crate::circuit_breaker::get_circuit_breaker(name))
    }
}

impl<C> HttpCircuitBreakerLayer<C> {
    /// Uses `classify` to decide which results are failures, e.g.
    /// `|r: &Result<Response<Body>, Infallible>| r.as_ref().is_ok_and(|r| r.status() == 502)`.
    pub fn classify<C2>(self, classify: C2) -> HttpCircuitBreakerLayer<C2> {
        HttpCircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

impl<S, C: Clone> Layer<S> for HttpCircuitBreakerLayer<C> {
    type Service = HttpCircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpCircuitBreaker {
            inner,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// The service made by [`HttpCircuitBreakerLayer`].
#[derive(Debug, Clone)]
pub struct HttpCircuitBreaker<S, C = ServerErrors> {
    inner: S,
    breaker: Arc<CircuitBreaker>,
    classify: C,
}

/// The 503 answer of an open circuit.
fn unavailable<RB: From<&'static str>>(open: &CircuitOpenError) -> Response<RB> {
    let mut res = Response::new(RB::from("Service Unavailable\n"));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = res.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(wait) = open.retry_after {
        headers.insert(RETRY_AFTER, retry_after_value(wait));
    }
    res
}

impl<S, B, RB, C> Service<Request<B>> for HttpCircuitBreaker<S, C>
where
    S: Service<Request<B>, Response = Response<RB>>,
    C: ClassifyResult<Response<RB>, S::Error> + Clone,
    RB: From<&'static str>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = HttpCircuitBreakerFuture<S::Future, RB, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let state = match self.breaker.try_acquire_owned() {
            Ok(permit) => State::Called {
                fut: self.inner.call(req),
                permit: Some(permit),
                classify: self.classify.clone(),
            },
            Err(open) => State::Open {
                res: Some(unavailable(&open)),
            },
        };
        HttpCircuitBreakerFuture { state }
    }
}

pin_project! {
    /// The response future of [`HttpCircuitBreaker`].
    pub struct HttpCircuitBreakerFuture<F, RB, C> {
        #[pin]
        state: State<F, RB, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, RB, C> {
        Called { #[pin] fut: F, permit: Option<OwnedPermit>, classify: C },
        Open { res: Option<Response<RB>> },
    }
}

impl<F, RB, E, C> Future for HttpCircuitBreakerFuture<F, RB, C>
where
    F: Future<Output = Result<Response<RB>, E>>,
    C: ClassifyResult<Response<RB>, E>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called {
                fut,
                permit,
                classify,
            } => {
                let out = ready!(fut.poll(cx));
                if let Some(permit) = permit.take() {
                    let failed = classify.is_failure(permit.breaker(), &out);
                    permit.record(failed);
                }
                Poll::Ready(out)
            }
            StateProj::Open { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res)),
                // Polled after completion (a caller's contract violation).
                None => Poll::Pending,
            },
        }
    }
}
