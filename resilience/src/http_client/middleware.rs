//! [`ResilienceMiddleware`]: a per-host limiter, breaker and retry policy for `reqwest-middleware`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::{Request, Response, Url};
use reqwest_middleware::{Error, Middleware, Next};

use super::classify::{ResponseClass, RetryableStatus, RetryableStatuses, is_transient_reqwest};
use super::limit::{HostLimiter, admit};
use crate::circuit_breaker::{
    BreakerRegistry, CircuitBreaker, CircuitBreakerConfig, get_circuit_breaker,
};
use crate::rate_limit::{KeyedRateLimit, KeyedRateLimiter};
use crate::retry::RetryPolicy;
use crate::timeout::TimeoutError;

/// Protects the hosts a `reqwest` client calls: per host (scheme, host and port — the URL's
/// origin, never its credentials, path or query), a rate limiter admits the request, a circuit
/// breaker lets it through, and a retry policy retries its transient failures.
///
/// Built with [`ResilienceMiddleware::builder`]; see the [module docs](super) for the order and
/// what counts as a failure. Cheap to clone.
#[derive(Clone)]
pub struct ResilienceMiddleware {
    breaker: BreakerMode,
    retry: Option<RetryPolicy>,
    statuses: RetryableStatuses,
    limiter: Option<Arc<dyn HostLimiter>>,
    limit_wait: Duration,
}

#[derive(Clone)]
enum BreakerMode {
    Off,
    /// A breaker per origin from the global registry, named `prefix + origin`.
    PerHost {
        prefix: Arc<str>,
        config: Option<CircuitBreakerConfig>,
    },
    /// One breaker for every host.
    Fixed(Arc<CircuitBreaker>),
}

impl ResilienceMiddleware {
    /// A builder with the defaults: a breaker per host named after its origin
    /// (`https://api.example.com`, `http://10.0.0.7:8080`), the default retry policy
    /// (`standard`: 3 attempts, 1 s initial delay, 30 s total), statuses
    /// [`RetryableStatuses::DEFAULT`], no rate limit.
    pub fn builder() -> ResilienceMiddlewareBuilder {
        ResilienceMiddlewareBuilder {
            inner: ResilienceMiddleware {
                breaker: BreakerMode::PerHost {
                    prefix: Arc::from(""),
                    config: None,
                },
                retry: Some(RetryPolicy::default()),
                statuses: RetryableStatuses::DEFAULT,
                limiter: None,
                limit_wait: Duration::ZERO,
            },
        }
    }

    /// The breaker that guards requests to `url`, if the middleware uses one (created on first
    /// use for a per-host breaker): for health checks, dashboards and tests.
    pub fn breaker_for(&self, url: &Url) -> Option<Arc<CircuitBreaker>> {
        self.breaker(&origin(url))
    }

    fn breaker(&self, origin: &str) -> Option<Arc<CircuitBreaker>> {
        match &self.breaker {
            BreakerMode::Off => None,
            BreakerMode::Fixed(breaker) => Some(Arc::clone(breaker)),
            BreakerMode::PerHost { prefix, config } => {
                let joined;
                let name = if prefix.is_empty() {
                    origin
                } else {
                    joined = format!("{prefix}{origin}");
                    &joined
                };
                let registry = BreakerRegistry::global();
                if let Some(breaker) = registry.find(name) {
                    return Some(breaker);
                }
                Some(match config {
                    None => registry.get(name),
                    Some(config) => registry
                        .configure(name, config.clone())
                        .unwrap_or_else(|_| {
                            // Someone created it first with other settings: theirs stand.
                            tracing::warn!(
                                breaker = name,
                                "circuit breaker exists with a different configuration; using it"
                            );
                            registry.get(name)
                        }),
                })
            }
        }
    }

    /// Sends `req` under the retry policy: once when there is none, and in one attempt (its
    /// timeouts still applying) when the body cannot be cloned.
    async fn send(
        &self,
        req: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> Result<Response, Error> {
        let Some(policy) = &self.retry else {
            return next.run(req, extensions).await;
        };
        let single;
        // `pending` is the next attempt's request; `template` what later attempts clone.
        let (policy, mut pending, template) = match req.try_clone() {
            Some(first) => (policy, Some(first), Some(req)),
            None => {
                // A streamed body cannot be sent twice.
                let mut once = policy.clone();
                once.max_attempts = 1;
                single = once;
                (&single, Some(req), None)
            }
        };
        // Attempts run one after another; the lock only lets each borrow the extensions.
        let extensions = tokio::sync::Mutex::new(extensions);
        let statuses = self.statuses;
        let outcome = policy
            .run_with_timeouts(|| {
                let attempt = pending
                    .take()
                    .or_else(|| template.as_ref().and_then(Request::try_clone));
                let next = next.clone();
                let extensions = &extensions;
                async move {
                    let Some(attempt) = attempt else {
                        return Err(Error::Middleware(anyhow::anyhow!(
                            "the request body could not be cloned for another attempt"
                        )));
                    };
                    let mut extensions = extensions.lock().await;
                    let response = next.run(attempt, &mut extensions).await?;
                    let now = SystemTime::now();
                    match statuses.classify(response.status(), response.headers(), now) {
                        ResponseClass::Retryable { retry_after } => Err(Error::middleware(
                            RetryableStatus::new(response, retry_after),
                        )),
                        ResponseClass::Success | ResponseClass::Permanent => Ok(response),
                    }
                }
            })
            .await;
        // Out of attempts (or time) on a retryable status: the caller gets that response.
        outcome.or_else(|err| match err {
            Error::Middleware(e) => match e.downcast::<RetryableStatus>() {
                Ok(status) => Ok(status.into_response()),
                Err(e) => Err(Error::Middleware(e)),
            },
            other => Err(other),
        })
    }

    /// The request's whole way through the middleware, with `limiter`'s concrete type (so
    /// its decision future lives inside this one, not in a box of its own).
    pub(super) async fn run<L: KeyedRateLimit>(
        &self,
        limiter: Option<&L>,
        req: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> Result<Response, Error> {
        let per_host = limiter.is_some() || matches!(self.breaker, BreakerMode::PerHost { .. });
        let origin = if per_host {
            origin(req.url())
        } else {
            String::new()
        };
        if let Some(limiter) = limiter {
            admit(limiter, &origin, self.limit_wait).await?;
        }
        let Some(breaker) = self.breaker(&origin) else {
            return self.send(req, extensions, next).await;
        };
        let permit = breaker.try_acquire().map_err(Error::middleware)?;
        let result = self.send(req, extensions, next).await;
        match is_failure(&result) {
            Some(failed) => permit.record(failed),
            // Not the host's answer (a request that could not be built, another layer's
            // refusal): the breaker learns nothing.
            None => drop(permit),
        }
        result
    }
}

// What `#[async_trait]` would generate, written out so the one box it allocates per request
// holds the limiter's future too: `KeyedRateLimit` returns `impl Future`, which a trait object
// cannot, so the limiter object (`HostLimiter`) builds the whole request's future.
impl Middleware for ResilienceMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: Request,
        extensions: &'life1 mut http::Extensions,
        next: Next<'life2>,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        match &self.limiter {
            Some(limiter) => limiter.handle(self, req, extensions, next),
            None => Box::pin(self.run(None::<&KeyedRateLimiter<String>>, req, extensions, next)),
        }
    }
}

/// Whether the outcome counts against the host's breaker: 5xx and transport failures do, 4xx
/// and other answers do not, and errors that never reached the host record nothing (`None`).
fn is_failure(result: &Result<Response, Error>) -> Option<bool> {
    match result {
        Ok(response) => Some(response.status().is_server_error()),
        Err(Error::Reqwest(e)) => reqwest_failure(e),
        Err(Error::Middleware(e)) => e.chain().find_map(|link| {
            if link.is::<TimeoutError>() {
                Some(Some(true))
            } else {
                link.downcast_ref::<reqwest::Error>().map(reqwest_failure)
            }
        })?,
    }
}

fn reqwest_failure(e: &reqwest::Error) -> Option<bool> {
    if e.is_builder() {
        return None;
    }
    Some(match e.status() {
        Some(status) => status.is_server_error(),
        None => is_transient_reqwest(e),
    })
}

/// `scheme://host[:port]`, the port only when it is not the scheme's default (the URL parser
/// drops default ports). No user info, path or query.
fn origin(url: &Url) -> String {
    use std::fmt::Write as _;
    let (scheme, host) = (url.scheme(), url.host_str().unwrap_or_default());
    // Sized up front (`:` and five digits at most for the port): one allocation per request.
    let mut origin = String::with_capacity(scheme.len() + "://".len() + host.len() + 6);
    origin.push_str(scheme);
    origin.push_str("://");
    origin.push_str(host);
    if let Some(port) = url.port() {
        let _ = write!(origin, ":{port}"); // writing to a String cannot fail
    }
    origin
}

impl fmt::Debug for ResilienceMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let breaker = match &self.breaker {
            BreakerMode::Off => "off".to_owned(),
            BreakerMode::PerHost { prefix, .. } => format!("per host ({prefix:?} + origin)"),
            BreakerMode::Fixed(b) => format!("{:?}", b.name()),
        };
        f.debug_struct("ResilienceMiddleware")
            .field("breaker", &breaker)
            .field("retry", &self.retry)
            .field("statuses", &self.statuses)
            .field("limiter", &self.limiter.as_ref().map(|l| l.type_name()))
            .field("limit_wait", &self.limit_wait)
            .finish()
    }
}

/// Builds a [`ResilienceMiddleware`]; every setter is optional.
///
/// ```
/// use std::time::Duration;
/// use resilience::http_client::ResilienceMiddleware;
/// use resilience::rate_limit::KeyedRateLimiter;
/// use resilience::retry::RetryPolicy;
/// use resilience::CircuitBreakerConfig;
///
/// let middleware = ResilienceMiddleware::builder()
///     .breaker_per_host("upstream ", CircuitBreakerConfig::builder().failure_threshold(3).build()?)
///     .retry(RetryPolicy::builder().max_attempts(4).initial_delay(Duration::from_millis(200)).build()?)
///     .rate_limit(KeyedRateLimiter::builder().per_second(20).burst(5).build()?)
///     .rate_limit_wait(Duration::from_millis(500))
///     .build();
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(middleware).build();
/// # let _ = client;
/// # Ok::<(), resilience::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ResilienceMiddlewareBuilder {
    inner: ResilienceMiddleware,
}

impl ResilienceMiddlewareBuilder {
    /// A breaker per host from the global registry, named `prefix` + the origin
    /// (`"payments "` → `payments https://api.example.com`) and created on first use with
    /// `config`. A breaker of that name created earlier (by
    /// [`configure_circuit_breaker`](crate::configure_circuit_breaker), say) keeps its own
    /// configuration.
    pub fn breaker_per_host(mut self, prefix: &str, config: CircuitBreakerConfig) -> Self {
        self.inner.breaker = BreakerMode::PerHost {
            prefix: Arc::from(prefix),
            config: Some(config),
        };
        self
    }

    /// One breaker for every host: the global breaker called `name` (see
    /// [`get_circuit_breaker`]).
    pub fn breaker_name(self, name: &str) -> Self {
        self.breaker(get_circuit_breaker(name))
    }

    /// One breaker for every host: this one.
    pub fn breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.inner.breaker = BreakerMode::Fixed(breaker);
        self
    }

    /// No circuit breaker.
    pub fn no_breaker(mut self) -> Self {
        self.inner.breaker = BreakerMode::Off;
        self
    }

    /// The retry policy (a [`RetryPolicy`] or a [`RetryPreset`](crate::RetryPreset)). Its
    /// `retry_if` predicate and `on_retry` observers, typed for `reqwest_middleware::Error`,
    /// see every failed attempt; a retryable status arrives as `Error::Middleware` carrying a
    /// [`RetryableStatus`] (see [`status_of`](super::status_of)).
    pub fn retry(mut self, policy: impl Into<RetryPolicy>) -> Self {
        self.inner.retry = Some(policy.into());
        self
    }

    /// No retries: every request is sent once.
    pub fn no_retry(mut self) -> Self {
        self.inner.retry = None;
        self
    }

    /// The statuses retried (default [`RetryableStatuses::DEFAULT`]).
    pub fn retryable_statuses(mut self, statuses: RetryableStatuses) -> Self {
        self.inner.statuses = statuses;
        self
    }

    /// A rate limit per host: `limiter` — any [`KeyedRateLimit`]: the in-memory
    /// [`KeyedRateLimiter`] (per process) or, feature `redis`, a
    /// [`RedisRateLimiter`](crate::rate_limit::RedisRateLimiter) (one quota shared by every
    /// replica) — is keyed by origin, and each request (not each attempt) takes a token.
    ///
    /// A request over the limit fails at once with `Error::Middleware` carrying
    /// [`RateLimited`](crate::RateLimited) (its `retry_after` says when a token comes back),
    /// unless [`rate_limit_wait`](Self::rate_limit_wait) allows a wait. A limiter that cannot
    /// decide (Redis down under `FailurePolicy::FailClosed`) fails the request with
    /// `Error::Middleware` carrying the [`RateLimitError`](crate::rate_limit::RateLimitError);
    /// nothing is sent and the breaker records nothing.
    pub fn rate_limit<L: KeyedRateLimit + 'static>(mut self, limiter: impl Into<Arc<L>>) -> Self {
        let limiter: Arc<L> = limiter.into();
        self.inner.limiter = Some(limiter);
        self
    }

    /// Wait up to `max_wait` in total for the limiter's token instead of failing at once
    /// (default zero: fail at once): sleep for the refusal's `retry_after` and ask again. A
    /// request whose wait would end past `max_wait` (time spent asking a remote limiter
    /// included) fails as above.
    pub fn rate_limit_wait(mut self, max_wait: Duration) -> Self {
        self.inner.limit_wait = max_wait;
        self
    }

    /// The middleware.
    pub fn build(self) -> ResilienceMiddleware {
        self.inner
    }
}
