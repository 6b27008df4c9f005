//! Refuses calls over a rate; the limiter is shared by every clone of the service.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::RejectOr;
use crate::rate_limit::{Clock, QuantaClock, RateLimited, RateLimiter};

/// Admits calls while the [`RateLimiter`] has tokens and refuses the rest at once with
/// [`RateLimited`] (converted into the service's error type; it carries `retry_after`). Unlike
/// `tower::limit::RateLimit`, it does not wait, and its state is shared across clones of the
/// service (and with any other holder of the same `Arc<RateLimiter>`).
#[derive(Debug)]
pub struct RateLimitLayer<C: Clock = QuantaClock> {
    limiter: Arc<RateLimiter<C>>,
}

impl<C: Clock> Clone for RateLimitLayer<C> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
        }
    }
}

impl<C: Clock> RateLimitLayer<C> {
    /// Limits with `limiter`.
    pub fn new(limiter: RateLimiter<C>) -> Self {
        Self::shared(Arc::new(limiter))
    }

    /// Limits with a limiter shared with other code.
    pub fn shared(limiter: Arc<RateLimiter<C>>) -> Self {
        Self { limiter }
    }

    /// The limiter.
    pub fn limiter(&self) -> &Arc<RateLimiter<C>> {
        &self.limiter
    }
}

impl<S, C: Clock> Layer<S> for RateLimitLayer<C> {
    type Service = RateLimit<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// The service made by [`RateLimitLayer`].
#[derive(Debug)]
pub struct RateLimit<S, C: Clock = QuantaClock> {
    inner: S,
    limiter: Arc<RateLimiter<C>>,
}

impl<S: Clone, C: Clock> Clone for RateLimit<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

impl<S, C, Req> Service<Req> for RateLimit<S, C>
where
    S: Service<Req>,
    S::Error: From<RateLimited>,
    C: Clock,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RejectOr<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.limiter.check() {
            Ok(()) => RejectOr::admitted(self.inner.call(req)),
            Err(limited) => RejectOr::rejected(limited.into()),
        }
    }
}
