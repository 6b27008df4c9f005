//! The per-host rate limit of [`ResilienceMiddleware`]: any [`KeyedRateLimit`] behind a trait
//! object, and the admission (with its bounded wait).

use std::future::Future;
use std::pin::Pin;

use reqwest::{Request, Response};
use reqwest_middleware::{Error, Next};
use tokio::time::{Duration, Instant};

use super::ResilienceMiddleware;
use crate::rate_limit::{KeyedRateLimit, RateLimited};

/// The future of one request through the middleware.
pub(super) type HandleFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'a>>;

/// A [`KeyedRateLimit`] as a trait object. `check_key` returns `impl Future`, which an object
/// cannot, so the object builds the whole request's future instead: the limiter's decision
/// future lives inside the one box the middleware allocates anyway, whatever the backend.
pub(super) trait HostLimiter: Send + Sync {
    /// Runs `req` through `middleware` with this limiter.
    fn handle<'a>(
        &'a self,
        middleware: &'a ResilienceMiddleware,
        req: Request,
        extensions: &'a mut http::Extensions,
        next: Next<'a>,
    ) -> HandleFuture<'a>;

    /// The limiter's type, for `Debug` (the limiter itself need not be `Debug`).
    fn type_name(&self) -> &'static str;
}

impl<L: KeyedRateLimit + 'static> HostLimiter for L {
    fn handle<'a>(
        &'a self,
        middleware: &'a ResilienceMiddleware,
        req: Request,
        extensions: &'a mut http::Extensions,
        next: Next<'a>,
    ) -> HandleFuture<'a> {
        Box::pin(middleware.run(Some(self), req, extensions, next))
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<L>()
    }
}

/// Admits one request for `origin`: at once, after sleeping through refusals for at most
/// `max_wait` in all, or refused (`RateLimited`). A limiter that cannot decide fails the
/// request with its `RateLimitError`, at once: waiting would only hide the outage.
pub(super) async fn admit<L: KeyedRateLimit>(
    limiter: &L,
    origin: &str,
    max_wait: Duration,
) -> Result<(), Error> {
    // Read the clock only once a request is refused: the admitted path stays a single check.
    let mut first_refusal: Option<Instant> = None;
    loop {
        let decision = match limiter.check_key(origin, 1).await {
            Ok(decision) => decision,
            Err(e) => {
                tracing::debug!(origin, error = %e, "the per-host rate limiter could not decide");
                return Err(Error::middleware(e));
            }
        };
        if decision.allowed {
            return Ok(());
        }
        let retry_after = decision.retry_after;
        let now = Instant::now();
        let waited = now.saturating_duration_since(*first_refusal.get_or_insert(now));
        // A refusal without a time to wait for would spin: refuse it.
        if retry_after.is_zero() || waited.saturating_add(retry_after) > max_wait {
            tracing::debug!(
                origin,
                retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
                "request refused by the per-host rate limiter"
            );
            return Err(Error::middleware(RateLimited { retry_after }));
        }
        tokio::time::sleep(retry_after).await;
    }
}
