//! Retries failed calls with a [`RetryPolicy`]; requests must be `Clone`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service, ServiceExt};

use crate::retry::engine::{self, Deadline, Failure, Stop, Timer, Untimed};
use crate::retry::{RetryPolicy, Retryable};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Retries calls whose error is retryable (by the policy's `retry_if` or [`Retryable`]) with the
/// policy's backoff, attempts and deadline. The error type is unchanged: the last error is
/// returned on giving up.
///
/// Attempts are never cut, as with [`RetryPolicy::run`]: the total deadline starts with the first
/// attempt (at its first `Pending`, by default — see
/// [`DeadlineStart`](crate::retry::DeadlineStart)) and stops waits that would cross it. To bound
/// each attempt, put a [`TimeoutLayer`](super::TimeoutLayer) inside this layer. The first
/// attempt runs inline (no allocation; a clock read only if it is pending).
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
                deadline: Deadline::Unstarted,
                timer: None,
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
            // Starts at the first `Pending` (see `engine::watch_pending`).
            deadline: Deadline<tokio::time::Instant>,
            timer: Option<Pin<Box<Timer<Infallible>>>>,
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
                StateProj::First {
                    fut,
                    deadline,
                    timer,
                    rest,
                } => {
                    let error = match fut.poll(cx) {
                        Poll::Ready(Ok(response)) => return Poll::Ready(Ok(response)),
                        Poll::Ready(Err(e)) => e,
                        Poll::Pending => {
                            if let Some(rest) = rest.as_ref() {
                                // Untimed: never ready, only starts the deadline.
                                match engine::watch_pending::<Untimed>(
                                    &rest.policy,
                                    deadline,
                                    timer,
                                    cx,
                                ) {
                                    Poll::Pending => {}
                                    Poll::Ready(never) => match never {},
                                }
                            }
                            return Poll::Pending;
                        }
                    };
                    let Some(rest) = rest.take() else {
                        return Poll::Ready(Err(error));
                    };
                    let deadline = *deadline;
                    state.set(State::Retrying {
                        fut: Box::pin(retry_rest(rest, error, deadline)),
                    });
                }
                StateProj::Retrying { fut } => return fut.as_mut().poll(cx),
            }
        }
    }
}

/// Hands the failed first attempt and the deadline it started to the engine's rest of a
/// sequence (so classification, backoff, `on_retry` and metrics see it as attempt 1), which
/// calls the service again for the next attempts.
async fn retry_rest<S, Req>(
    rest: Rest<S, Req>,
    first: S::Error,
    deadline: Deadline<tokio::time::Instant>,
) -> Result<S::Response, S::Error>
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
    let attempt = move || service.clone().oneshot(req.clone());
    engine::rest::<_, Untimed, _, _, _, _>(policy, attempt, Failure::Error(first), deadline)
        .await
        .map_err(Stop::into_last_error)
}
