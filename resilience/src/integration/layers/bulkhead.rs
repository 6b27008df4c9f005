//! Caps concurrent calls with a [`Bulkhead`]: slots shared by every clone of the service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::bulkhead::{Bulkhead, BulkheadFull, BulkheadPermit};

type AcquireFuture = Pin<Box<dyn Future<Output = Result<BulkheadPermit, BulkheadFull>> + Send>>;

/// Runs a call only while it holds one of the bulkhead's slots. When all are taken the call waits
/// in the bulkhead's queue (if it has one, up to its queue timeout) or is refused at once with
/// [`BulkheadFull`], converted into the service's error type.
///
/// The inner service's `call` is made right away; its future is polled only once a slot is held,
/// and the slot is released when the response future completes or is dropped.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// Caps calls with `bulkhead` (clones share its slots).
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
        }
    }
}

/// The service made by [`BulkheadLayer`].
#[derive(Debug, Clone)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req>,
    S::Error: From<BulkheadFull>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BulkheadFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // `try_take` counts no refusal: with a queue, the wait below decides (and counts).
        let slot = match self.bulkhead.try_take() {
            Some(permit) => Slot::Held { _permit: permit },
            None if self.bulkhead.max_queued() == 0 => Slot::Refused {
                error: Some(self.bulkhead.rejected()),
            },
            None => {
                let bulkhead = self.bulkhead.clone();
                Slot::Waiting {
                    acquire: Box::pin(async move { bulkhead.acquire().await }),
                }
            }
        };
        BulkheadFuture {
            fut: self.inner.call(req),
            slot,
        }
    }
}

enum Slot {
    Held { _permit: BulkheadPermit },
    Waiting { acquire: AcquireFuture },
    Refused { error: Option<BulkheadFull> },
}

pin_project! {
    /// The response future of [`BulkheadService`].
    pub struct BulkheadFuture<F> {
        #[pin]
        fut: F,
        slot: Slot,
    }
}

impl<F, T, E> Future for BulkheadFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: From<BulkheadFull>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        loop {
            match this.slot {
                Slot::Held { .. } => return this.fut.poll(cx),
                Slot::Waiting { acquire } => match ready!(acquire.as_mut().poll(cx)) {
                    Ok(permit) => *this.slot = Slot::Held { _permit: permit },
                    Err(full) => *this.slot = Slot::Refused { error: Some(full) },
                },
                Slot::Refused { error } => {
                    return match error.take() {
                        Some(full) => Poll::Ready(Err(full.into())),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
