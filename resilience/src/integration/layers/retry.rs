//! Retries failed calls with a [`RetryPolicy`]; requests must be `Clone`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service, ServiceExt};

use crate::retry::{RetryPolicy, Retryable};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Retries calls whose error is retryable (by the policy's `retry_if` or [`Retryable`]) with the
/// policy's backoff, attempts and deadline. The error type is unchanged: the last error is
/// returned on giving up.
///
/// The first attempt runs inline (no allocation, no clock read); only after it fails does the
/// policy's engine take over, so the policy's total deadline counts from the first failure (its
/// default [`DeadlineStart`](crate::retry::DeadlineStart)). To bound each attempt, put a
/// [`TimeoutLayer`](super::TimeoutLayer) inside this layer.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: Arc<RetryPolicy>,
}

impl RetryLayer {
    /// Retries with `policy` (a [`RetryPolicy`] or a [`RetryPreset`](crate::retry::RetryPreset)).
    pub fn new(policy: impl Into<RetryPolicy>) -> Self {
        Self {
            policy: Arc::new(policy.into()),
        }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service made by [`RetryLayer`].
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    policy: Arc<RetryPolicy>,
}

impl<S, Req> Service<Req> for Retry<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: Retryable + Send + Sync + 'static,
    Req: Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RetryFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // Retries need a service of their own: keep a clone, call the one that is ready.
        let spare = self.inner.clone();
        let copy = req.clone();
        RetryFuture {
            state: State::First {
                fut: self.inner.call(req),
                rest: Some(Rest {
                    service: spare,
                    req: copy,
                    policy: self.policy.clone(),
                }),
            },
        }
    }
}

struct Rest<S, Req> {
    service: S,
    req: Req,
    policy: Arc<RetryPolicy>,
}

pin_project! {
    /// The response future of [`Retry`].
    pub struct RetryFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req>
    where
        S: Service<Req>,
    {
        // The first attempt, run inline.
        First {
            #[pin]
            fut: S::Future,
            rest: Option<Rest<S, Req>>,
        },
        // Later attempts, run by the policy's engine.
        Retrying {
            fut: BoxFuture<Result<S::Response, S::Error>>,
        },
    }
}

impl<S, Req> Future for RetryFuture<S, Req>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: Retryable + Send + Sync + 'static,
    Req: Clone + Send + 'static,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::First { fut, rest } => {
                    let error = match fut.poll(cx) {
                        Poll::Ready(Ok(response)) => return Poll::Ready(Ok(response)),
                        Poll::Ready(Err(e)) => e,
                        Poll::Pending => return Poll::Pending,
                    };
                    let Some(rest) = rest.take() else {
                        return Poll::Ready(Err(error));
                    };
                    state.set(State::Retrying {
                        fut: Box::pin(retry_rest(rest, error)),
                    });
                }
                StateProj::Retrying { fut } => return fut.as_mut().poll(cx),
            }
        }
    }
}

/// Hands the failed first attempt to the engine as its attempt 1 (so classification, backoff,
/// `on_retry` and metrics see it), then calls the service again for the next attempts.
async fn retry_rest<S, Req>(rest: Rest<S, Req>, first: S::Error) -> Result<S::Response, S::Error>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Retryable + Send + Sync + 'static,
    Req: Clone + Send + 'static,
{
    let Rest {
        service,
        req,
        policy,
    } = rest;
    let mut first = Some(first);
    policy
        .run(move || {
            let replay = first.take();
            let service = service.clone();
            let req = req.clone();
            async move {
                if let Some(error) = replay {
                    return Err(error);
                }
                service.oneshot(req).await
            }
        })
        .await
}
