//! The keyed HTTP rate-limit layer: answers refused requests itself (429, 400, 503) and adds
//! the rate-limit headers to admitted responses.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::backend::{Decide, LimitBackend};
use super::headers::{HeaderPlan, check_policy_name, retry_after_value};
use super::key::{KeyExtractor, KeyType, MissingKey};
use crate::ConfigError;
use crate::log_throttle::LogThrottle;
use crate::rate_limit::{RateLimitDecision, RateLimitError};

/// How many tokens a request costs.
pub trait RequestCost<B>: Send + Sync + 'static {
    /// The cost of `req` (0 admits it without taking anything).
    fn cost(&self, req: &Request<B>) -> u32;
}

/// Every request costs one token (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct OneToken;

impl<B> RequestCost<B> for OneToken {
    #[inline]
    fn cost(&self, _: &Request<B>) -> u32 {
        1
    }
}

/// A cost computed by a closure; see [`HttpRateLimitLayerBuilder::cost`].
#[derive(Clone)]
pub struct CostFn<F>(F);

impl<F> fmt::Debug for CostFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CostFn")
    }
}

impl<B, F> RequestCost<B> for CostFn<F>
where
    F: Fn(&Request<B>) -> u32 + Send + Sync + 'static,
{
    #[inline]
    fn cost(&self, req: &Request<B>) -> u32 {
        (self.0)(req)
    }
}

/// What every clone of the layer and its services share.
struct Shared<X: KeyType, L, W> {
    extractor: X,
    backend: L,
    cost: W,
    missing: MissingKey<X::Key>,
    plan: HeaderPlan,
    /// Backend failures and impossible costs, logged at most once per interval.
    warnings: LogThrottle,
}

impl<X: KeyType, L, W> Shared<X, L, W> {
    fn headers_on(&self) -> bool {
        self.plan.is_on()
    }

    #[inline(never)]
    /// The 429 for a refused decision: `Retry-After` (when the request can ever pass) and the
    /// rate-limit headers.
    fn too_many<RB: From<&'static str>>(
        &self,
        decision: &RateLimitDecision,
        retry: bool,
    ) -> Response<RB> {
        let mut res = plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
        if retry {
            res.headers_mut()
                .insert(RETRY_AFTER, retry_after_value(decision.retry_after));
        }
        self.plan.write(res.headers_mut(), decision);
        res
    }
}

/// A short plain-text response.
fn plain<RB: From<&'static str>>(status: StatusCode, body: &'static str) -> Response<RB> {
    let mut res = Response::new(RB::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Rate limits HTTP requests per key (client IP, header, closure) and answers like an HTTP
/// service should: `429 Too Many Requests` with `Retry-After` and the IETF `RateLimit-Policy` /
/// `RateLimit` headers (also on admitted responses; `X-RateLimit-*` optionally), `400` for a
/// request without a key (by default, see [`MissingKey`]), `503` when the backend cannot decide
/// (Redis down with `FailClosed`; the body says nothing more).
///
/// The layer never fails a request with an error, so it fits axum's `Router::layer` (whose
/// services must be infallible). Response bodies need `From<&'static str>` (axum's `Body`,
/// `String`, `Full<Bytes>`).
///
/// With the in-memory [`KeyedRateLimiter`](crate::rate_limit::KeyedRateLimiter) the decision is
/// made synchronously in `call`: no boxing, and no allocation besides the key (none for IP
/// keys) and the per-response header values.
pub struct HttpRateLimitLayer<X: KeyType, L, W = OneToken> {
    shared: Arc<Shared<X, L, W>>,
}

impl<X: KeyType, L, W> Clone for HttpRateLimitLayer<X, L, W> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<X: KeyType, L, W> fmt::Debug for HttpRateLimitLayer<X, L, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRateLimitLayer")
            .field("plan", &self.shared.plan)
            .finish_non_exhaustive()
    }
}

impl<X: KeyType, L: LimitBackend<X::Key>> HttpRateLimitLayer<X, L> {
    /// Limits requests keyed by `extractor` with `backend`, with the default settings.
    pub fn new(extractor: X, backend: L) -> Self {
        // The defaults are valid: the only fallible setting is the policy name.
        let plan = HeaderPlan::new(DEFAULT_POLICY, backend.policy(), true, false);
        Self {
            shared: Arc::new(Shared {
                extractor,
                backend,
                cost: OneToken,
                missing: MissingKey::Reject,
                plan,
                warnings: LogThrottle::default(),
            }),
        }
    }

    /// A builder: policy name, headers, cost, the answer to a keyless request.
    pub fn builder(extractor: X, backend: L) -> HttpRateLimitLayerBuilder<X, L> {
        HttpRateLimitLayerBuilder {
            extractor,
            backend,
            cost: OneToken,
            missing: MissingKey::Reject,
            name: DEFAULT_POLICY.to_owned(),
            ietf: true,
            legacy: false,
        }
    }
}

impl<X: KeyType, L, W> HttpRateLimitLayer<X, L, W> {
    /// The limiter behind the layer.
    pub fn backend(&self) -> &L {
        &self.shared.backend
    }
}

/// The policy name used in `RateLimit-Policy` / `RateLimit` unless set.
const DEFAULT_POLICY: &str = "default";

/// Builder of an [`HttpRateLimitLayer`].
#[must_use]
pub struct HttpRateLimitLayerBuilder<X: KeyType, L, W = OneToken> {
    extractor: X,
    backend: L,
    cost: W,
    missing: MissingKey<X::Key>,
    name: String,
    ietf: bool,
    legacy: bool,
}

impl<X: KeyType, L, W> fmt::Debug for HttpRateLimitLayerBuilder<X, L, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRateLimitLayerBuilder")
            .field("policy_name", &self.name)
            .field("ietf_headers", &self.ietf)
            .field("x_ratelimit_headers", &self.legacy)
            .finish_non_exhaustive()
    }
}

impl<X: KeyType, L: LimitBackend<X::Key>, W> HttpRateLimitLayerBuilder<X, L, W> {
    /// The policy name in the `RateLimit-Policy` / `RateLimit` headers (default `"default"`;
    /// 1 to 64 printable ASCII characters without `"` or `\`).
    pub fn policy_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Writes `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11) on
    /// every limited response (default on).
    pub fn ietf_headers(mut self, on: bool) -> Self {
        self.ietf = on;
        self
    }

    /// Also writes `X-RateLimit-Limit` (the burst), `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset` (seconds until the bucket is full again, not a timestamp). Default
    /// off.
    pub fn x_ratelimit_headers(mut self, on: bool) -> Self {
        self.legacy = on;
        self
    }

    /// How to answer a request without a key (default [`MissingKey::Reject`]: 400).
    pub fn on_missing_key(mut self, missing: MissingKey<X::Key>) -> Self {
        self.missing = missing;
        self
    }

    /// Charges each request `cost(&request)` tokens instead of one. A cost above the burst can
    /// never pass: it is refused with 429 without `Retry-After`.
    pub fn cost<F>(self, cost: F) -> HttpRateLimitLayerBuilder<X, L, CostFn<F>> {
        HttpRateLimitLayerBuilder {
            extractor: self.extractor,
            backend: self.backend,
            cost: CostFn(cost),
            missing: self.missing,
            name: self.name,
            ietf: self.ietf,
            legacy: self.legacy,
        }
    }

    /// The layer, or a [`ConfigError`] for an invalid policy name.
    pub fn build(self) -> Result<HttpRateLimitLayer<X, L, W>, ConfigError> {
        check_policy_name(&self.name)?;
        let plan = HeaderPlan::new(&self.name, self.backend.policy(), self.ietf, self.legacy);
        Ok(HttpRateLimitLayer {
            shared: Arc::new(Shared {
                extractor: self.extractor,
                backend: self.backend,
                cost: self.cost,
                missing: self.missing,
                plan,
                warnings: LogThrottle::default(),
            }),
        })
    }
}

impl<S, X: KeyType, L, W> Layer<S> for HttpRateLimitLayer<X, L, W> {
    type Service = HttpRateLimit<S, X, L, W>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpRateLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service made by [`HttpRateLimitLayer`].
pub struct HttpRateLimit<S, X: KeyType, L, W = OneToken> {
    inner: S,
    shared: Arc<Shared<X, L, W>>,
}

impl<S: Clone, X: KeyType, L, W> Clone for HttpRateLimit<S, X, L, W> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, X: KeyType, L, W> fmt::Debug for HttpRateLimit<S, X, L, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRateLimit")
            .field("plan", &self.shared.plan)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB, X, L, W> Service<Request<B>> for HttpRateLimit<S, X, L, W>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    X: KeyExtractor<B>,
    L: LimitBackend<X::Key>,
    W: RequestCost<B>,
    RB: From<&'static str>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = HttpRateLimitFuture<S, B, X, L, W>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = &self.shared;
        let key = match shared.extractor.extract(&req) {
            Some(key) => key,
            None => match &shared.missing {
                MissingKey::Shared(key) => key.clone(),
                MissingKey::Reject => {
                    let res = plain(StatusCode::BAD_REQUEST, "Bad Request\n");
                    return HttpRateLimitFuture::done(res);
                }
            },
        };
        let cost = shared.cost.cost(&req);
        let decided = if shared.headers_on() {
            shared.backend.decide(&key, cost)
        } else {
            shared.backend.admit(&key, cost)
        };
        let state = match decided {
            Decide::Ready(result) => admit(shared, &mut self.inner, req, result),
            Decide::Pending(decide) => {
                // The ready service goes with the future; this one keeps a fresh clone.
                let clone = self.inner.clone();
                let svc = std::mem::replace(&mut self.inner, clone);
                State::Deciding {
                    decide,
                    // Boxed so the in-memory path's future stays small (this one already
                    // allocates for its backend's future).
                    pending: Some(Box::new((req, svc, shared.clone()))),
                }
            }
        };
        HttpRateLimitFuture { state }
    }
}

/// Calls the inner service for an admitted request; answers the others.
#[inline]
fn admit<S, B, RB, X, L, W>(
    shared: &Arc<Shared<X, L, W>>,
    svc: &mut S,
    req: Request<B>,
    result: Result<RateLimitDecision, RateLimitError>,
) -> State<S, B, X, L, W>
where
    S: Service<Request<B>, Response = Response<RB>>,
    X: KeyType,
    L: LimitBackend<X::Key>,
    RB: From<&'static str>,
{
    let res = match result {
        Ok(decision) if decision.allowed => {
            return State::Inner {
                fut: svc.call(req),
                stamp: shared.headers_on().then(|| (shared.clone(), decision)),
            };
        }
        Ok(decision) => shared.too_many(&decision, true),
        Err(RateLimitError::CostExceedsCapacity { cost, capacity }) => {
            if let Some(suppressed) = shared.warnings.allow() {
                tracing::warn!(
                    cost,
                    capacity,
                    suppressed,
                    "HTTP rate limit: a request costs more than the burst and can never pass"
                );
            }
            let decision = RateLimitDecision {
                allowed: false,
                remaining: 0,
                retry_after: std::time::Duration::ZERO,
                reset_after: std::time::Duration::ZERO,
            };
            shared.too_many(&decision, false)
        }
        Err(e) => {
            if let Some(suppressed) = shared.warnings.allow() {
                tracing::warn!(error = %e, suppressed, "HTTP rate limit could not decide; answering 503");
            }
            plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n")
        }
    };
    State::Done { res: Some(res) }
}

/// What an asynchronous decision holds on to: the request, a ready service, the settings.
type Pending<S, B, X, L, W> = (Request<B>, S, Arc<Shared<X, L, W>>);

pin_project! {
    /// The response future of [`HttpRateLimit`].
    pub struct HttpRateLimitFuture<S, B, X, L, W>
    where
        S: Service<Request<B>>,
        X: KeyType,
        L: LimitBackend<X::Key>,
    {
        #[pin]
        state: State<S, B, X, L, W>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, X, L, W>
    where
        S: Service<Request<B>>,
        X: KeyType,
        L: LimitBackend<X::Key>,
    {
        // Admitted: the inner call, then the headers of its decision.
        Inner {
            #[pin]
            fut: S::Future,
            stamp: Option<(Arc<Shared<X, L, W>>, RateLimitDecision)>,
        },
        // Waiting for an asynchronous backend (Redis), holding the request and a ready service.
        Deciding {
            #[pin]
            decide: L::Future,
            pending: Option<Box<Pending<S, B, X, L, W>>>,
        },
        // Answered by the layer (taken once).
        Done { res: Option<S::Response> },
    }
}

impl<S, B, X, L, W> HttpRateLimitFuture<S, B, X, L, W>
where
    S: Service<Request<B>>,
    X: KeyType,
    L: LimitBackend<X::Key>,
{
    fn done(res: S::Response) -> Self {
        Self {
            state: State::Done { res: Some(res) },
        }
    }
}

impl<S, B, RB, X, L, W> Future for HttpRateLimitFuture<S, B, X, L, W>
where
    S: Service<Request<B>, Response = Response<RB>>,
    X: KeyType,
    L: LimitBackend<X::Key>,
    RB: From<&'static str>,
{
    type Output = Result<Response<RB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Inner { fut, stamp } => {
                    let mut res = ready!(fut.poll(cx))?;
                    if let Some((shared, decision)) = stamp.take() {
                        shared.plan.write(res.headers_mut(), &decision);
                    }
                    return Poll::Ready(Ok(res));
                }
                StateProj::Deciding { decide, pending } => {
                    let result = ready!(decide.poll(cx));
                    let Some(pending) = pending.take() else {
                        // Polled again after a panic in a previous poll: nothing left to do.
                        return Poll::Pending;
                    };
                    let (req, mut svc, shared) = *pending;
                    let next = admit(&shared, &mut svc, req, result);
                    state.set(next);
                }
                StateProj::Done { res } => {
                    return match res.take() {
                        Some(res) => Poll::Ready(Ok(res)),
                        // Polled after completion (a caller's contract violation).
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
