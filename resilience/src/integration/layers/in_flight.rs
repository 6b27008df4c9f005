//! Counts each request as in-flight work, so shutdown drains it before running hooks.

use std::task::{Context, Poll};

use tokio_util::task::task_tracker::TrackedFuture;
use tower::{Layer, Service};

use crate::shutdown::ShutdownCoordinator;

/// Wraps a service so that every request is in flight, for the coordinator's drain, until its
/// response future completes or is dropped.
#[derive(Debug, Clone)]
pub struct InFlightLayer {
    coordinator: ShutdownCoordinator,
}

impl InFlightLayer {
    /// Tracks requests on `coordinator`.
    pub fn new(coordinator: ShutdownCoordinator) -> Self {
        Self { coordinator }
    }

    /// Tracks requests on the global coordinator.
    pub fn global() -> Self {
        Self::new(ShutdownCoordinator::global().clone())
    }
}

impl<S> Layer<S> for InFlightLayer {
    type Service = InFlight<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlight {
            inner,
            coordinator: self.coordinator.clone(),
        }
    }
}

/// The service made by [`InFlightLayer`].
#[derive(Debug, Clone)]
pub struct InFlight<S> {
    inner: S,
    coordinator: ShutdownCoordinator,
}

impl<S, Req> Service<Req> for InFlight<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.coordinator.track(self.inner.call(req))
    }
}
