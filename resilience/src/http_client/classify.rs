//! Which responses and reqwest errors are worth another attempt.

use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};

use super::retry_after::retry_after;
use crate::circuit_breaker::CircuitOpenError;
use crate::rate_limit::RateLimitError;
use crate::retry::Retryable;
use crate::retry::classify::{is_transient_error, retry_after_of};
use crate::timeout::TimeoutError;

/// The set of HTTP statuses worth retrying. [`RetryableStatuses::DEFAULT`]: 408 Request
/// Timeout, 429 Too Many Requests, 500 Internal Server Error, 502 Bad Gateway, 503 Service
/// Unavailable, 504 Gateway Timeout. `Copy`, and a lookup is a bit test.
///
/// ```
/// use reqwest::StatusCode;
/// use resilience::http_client::RetryableStatuses;
///
/// let statuses = RetryableStatuses::DEFAULT
///     .with(StatusCode::CONFLICT)             // this API answers 409 while a replica catches up
///     .without(StatusCode::INTERNAL_SERVER_ERROR); // and 500 for bugs that stay
/// assert!(statuses.contains(StatusCode::CONFLICT));
/// assert!(!statuses.contains(StatusCode::INTERNAL_SERVER_ERROR));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryableStatuses {
    /// One bit per code 0..1024 (a `StatusCode` is always 100..=999).
    bits: [u64; 16],
}

impl RetryableStatuses {
    /// 408, 429, 500, 502, 503, 504.
    pub const DEFAULT: Self = Self::NONE
        .with(StatusCode::REQUEST_TIMEOUT)
        .with(StatusCode::TOO_MANY_REQUESTS)
        .with(StatusCode::INTERNAL_SERVER_ERROR)
        .with(StatusCode::BAD_GATEWAY)
        .with(StatusCode::SERVICE_UNAVAILABLE)
        .with(StatusCode::GATEWAY_TIMEOUT);

    /// No status is retried (transport errors still are).
    pub const NONE: Self = Self { bits: [0; 16] };

    /// This set plus `status`.
    pub const fn with(mut self, status: StatusCode) -> Self {
        let code = status.as_u16() as usize;
        self.bits[code / 64] |= 1 << (code % 64);
        self
    }

    /// This set without `status`.
    pub const fn without(mut self, status: StatusCode) -> Self {
        let code = status.as_u16() as usize;
        self.bits[code / 64] &= !(1 << (code % 64));
        self
    }

    /// Whether `status` is in the set.
    #[inline]
    pub const fn contains(&self, status: StatusCode) -> bool {
        let code = status.as_u16() as usize;
        self.bits[code / 64] & (1 << (code % 64)) != 0
    }

    /// The statuses in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = StatusCode> + '_ {
        (100..1000u16)
            .filter_map(|code| StatusCode::from_u16(code).ok())
            .filter(|s| self.contains(*s))
    }

    /// Classifies a status and its headers: in the set → [`ResponseClass::Retryable`] with the
    /// `Retry-After` hint (read only then; `now` is the wall-clock time an HTTP-date is measured
    /// from); another 4xx or 5xx → [`ResponseClass::Permanent`]; else
    /// [`ResponseClass::Success`].
    pub fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> ResponseClass {
        if self.contains(status) {
            ResponseClass::Retryable {
                retry_after: retry_after(headers, now),
            }
        } else if status.is_client_error() || status.is_server_error() {
            ResponseClass::Permanent
        } else {
            ResponseClass::Success
        }
    }

    /// [`classify`](Self::classify) for a response, at the current time.
    pub fn classify_response(&self, response: &Response) -> ResponseClass {
        self.classify(response.status(), response.headers(), SystemTime::now())
    }
}

impl Default for RetryableStatuses {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl FromIterator<StatusCode> for RetryableStatuses {
    fn from_iter<I: IntoIterator<Item = StatusCode>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Debug for RetryableStatuses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|s| s.as_u16()))
            .finish()
    }
}

/// What a response means for a retry policy (see [`RetryableStatuses::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseClass {
    /// Not an error status (1xx, 2xx, 3xx outside the retryable set).
    Success,
    /// A retryable status; wait `retry_after` (the response's `Retry-After`) before the next
    /// attempt if it is `Some`, else the policy's backoff.
    Retryable {
        /// The parsed, clamped `Retry-After` hint.
        retry_after: Option<Duration>,
    },
    /// An error status another attempt would not change (most 4xx, 501, ...).
    Permanent,
}

impl ResponseClass {
    /// Whether the response is worth another attempt.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}

/// Classifies a response with [`RetryableStatuses::DEFAULT`] at the current time.
///
/// ```no_run
/// use resilience::http_client::{classify_response, ResponseClass};
///
/// # async fn run() -> Result<(), reqwest::Error> {
/// let response = reqwest::get("http://127.0.0.1:8080/quote").await?;
/// if let ResponseClass::Retryable { retry_after } = classify_response(&response) {
///     println!("try again after {retry_after:?}");
/// }
/// # Ok(())
/// # }
/// ```
pub fn classify_response(response: &Response) -> ResponseClass {
    RetryableStatuses::DEFAULT.classify_response(response)
}

/// A response whose status is retryable, as an error: what a retry policy's `retry_if`
/// predicate and `on_retry` observers see inside
/// `reqwest_middleware::Error::Middleware` when [`ResilienceMiddleware`](super::ResilienceMiddleware)
/// retries a status. The middleware turns it back into the response when it gives up, so callers
/// never receive it. Debug and Display show the status and hint only (no URL, no headers).
///
/// ```
/// # fn check(err: &reqwest_middleware::Error) -> bool {
/// use resilience::http_client::status_of;
/// // In a policy's predicate: do not retry 429s, retry everything else the classifier would.
/// let is_429 = status_of(err) == Some(reqwest::StatusCode::TOO_MANY_REQUESTS);
/// # is_429 }
/// ```
pub struct RetryableStatus {
    status: StatusCode,
    retry_after: Option<Duration>,
    response: Response,
}

impl RetryableStatus {
    pub(crate) fn new(response: Response, retry_after: Option<Duration>) -> Self {
        Self {
            status: response.status(),
            retry_after,
            response,
        }
    }

    /// The response's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response's `Retry-After` hint, parsed and clamped.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The response.
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// Consumes the error, returning the response.
    pub fn into_response(self) -> Response {
        self.response
    }
}

impl fmt::Debug for RetryableStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryableStatus")
            .field("status", &self.status.as_u16())
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for RetryableStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "retryable HTTP status {}", self.status)?;
        if let Some(wait) = self.retry_after {
            write!(f, "; retry after {} ms", wait.as_millis())?;
        }
        Ok(())
    }
}

impl std::error::Error for RetryableStatus {}

/// The HTTP status an error carries: a reqwest status error's (`error_for_status`), or a
/// [`RetryableStatus`]'s inside the `Middleware` variant.
pub fn status_of(err: &reqwest_middleware::Error) -> Option<StatusCode> {
    match err {
        reqwest_middleware::Error::Reqwest(e) => e.status(),
        reqwest_middleware::Error::Middleware(e) => {
            e.downcast_ref::<RetryableStatus>().map(|s| s.status)
        }
    }
}

/// Transport failures are transient: connect, timeout, sending the request, a body error; an
/// error from `error_for_status` follows [`RetryableStatuses::DEFAULT`]; builder, redirect,
/// decode and upgrade errors are not (another attempt would fail the same way).
impl Retryable for reqwest::Error {
    fn is_retryable(&self) -> bool {
        is_transient_reqwest(self)
    }
}

/// The `Reqwest` variant as `reqwest::Error`; the `Middleware` variant: a [`RetryableStatus`]
/// is retryable with its hint, a `reqwest::Error` in its chain decides as above, a
/// [`CircuitOpenError`] is not retryable, a [`RateLimitError`] is as transient as its backend's
/// error (`Backend`: a Redis timeout or lost connection yes, an ACL refusal no;
/// `CostExceedsCapacity` never), and anything else goes to the chain classifier
/// ([`is_transient_error`]: I/O errors, timeouts, rate limits with their `retry_after`).
impl Retryable for reqwest_middleware::Error {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Reqwest(e) => is_transient_reqwest(e),
            Self::Middleware(e) => e
                .chain()
                .find_map(known_verdict)
                .unwrap_or_else(|| is_transient_error(e.as_ref())),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Reqwest(_) => None,
            Self::Middleware(e) => match e.downcast_ref::<RetryableStatus>() {
                Some(status) => status.retry_after,
                None => retry_after_of(e.as_ref()),
            },
        }
    }
}

/// A cut attempt, as the middleware's retry engine reports it (`Error::Middleware` carrying the
/// [`TimeoutError`], which callers can downcast).
impl From<TimeoutError> for reqwest_middleware::Error {
    fn from(err: TimeoutError) -> Self {
        Self::Middleware(err.into())
    }
}

fn known_verdict(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    if e.is::<RetryableStatus>() {
        Some(true)
    } else if let Some(r) = e.downcast_ref::<reqwest::Error>() {
        Some(is_transient_reqwest(r))
    } else if e.is::<CircuitOpenError>() {
        Some(false)
    } else {
        e.downcast_ref::<RateLimitError>().map(|limit| match limit {
            // Never admissible: another try is refused the same way.
            RateLimitError::CostExceedsCapacity { .. } => false,
            // The limiter's backend could not decide: as transient as its own error (a Redis
            // timeout or lost connection yes, a refused ACL no). Retrying asks the limiter
            // again, so it never gets around the limit.
            RateLimitError::Backend(backend) => is_transient_backend(backend.as_ref()),
        })
    }
}

fn is_transient_backend(e: &(dyn std::error::Error + 'static)) -> bool {
    #[cfg(feature = "redis")]
    if let Some(redis) = e.downcast_ref::<crate::redis::RedisError>() {
        return redis.is_transient();
    }
    is_transient_error(e)
}

pub(crate) fn is_transient_reqwest(e: &reqwest::Error) -> bool {
    if let Some(status) = e.status() {
        return RetryableStatuses::DEFAULT.contains(status);
    }
    if e.is_builder() || e.is_redirect() || e.is_decode() || e.is_upgrade() {
        return false;
    }
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::RETRY_AFTER;

    #[test]
    fn default_set() {
        let set = RetryableStatuses::DEFAULT;
        let codes: Vec<u16> = set.iter().map(|s| s.as_u16()).collect();
        assert_eq!(codes, [408, 429, 500, 502, 503, 504]);
        assert_eq!(format!("{set:?}"), "{408, 429, 500, 502, 503, 504}");
        assert_eq!(RetryableStatuses::default(), set);
        for code in [200, 201, 301, 400, 401, 404, 409, 422, 501, 505, 599] {
            let status = StatusCode::from_u16(code).expect("status");
            assert!(!set.contains(status), "{code}");
        }
    }

    #[test]
    fn edges_of_the_bit_set() {
        let ends =
            [100u16, 127, 128, 191, 192, 999].map(|c| StatusCode::from_u16(c).expect("status"));
        let set: RetryableStatuses = ends.into_iter().collect();
        assert_eq!(set.iter().collect::<Vec<_>>(), ends);
        let set = ends.iter().fold(set, |s, c| s.without(*c));
        assert_eq!(set, RetryableStatuses::NONE);
    }

    #[test]
    fn classify_statuses() {
        let now = SystemTime::now();
        let mut headers = HeaderMap::new();
        let set = RetryableStatuses::DEFAULT;
        assert_eq!(
            set.classify(StatusCode::OK, &headers, now),
            ResponseClass::Success
        );
        assert_eq!(
            set.classify(StatusCode::NOT_MODIFIED, &headers, now),
            ResponseClass::Success
        );
        assert_eq!(
            set.classify(StatusCode::NOT_FOUND, &headers, now),
            ResponseClass::Permanent
        );
        assert_eq!(
            set.classify(StatusCode::NOT_IMPLEMENTED, &headers, now),
            ResponseClass::Permanent
        );
        assert_eq!(
            set.classify(StatusCode::SERVICE_UNAVAILABLE, &headers, now),
            ResponseClass::Retryable { retry_after: None }
        );
        headers.insert(RETRY_AFTER, "2".parse().expect("value"));
        assert_eq!(
            set.classify(StatusCode::TOO_MANY_REQUESTS, &headers, now),
            ResponseClass::Retryable {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        // A hint on a permanent status is not a reason to retry.
        assert_eq!(
            set.classify(StatusCode::BAD_REQUEST, &headers, now),
            ResponseClass::Permanent
        );
        // A custom set can make a success retryable (a 202 "still working" API, say).
        let custom = RetryableStatuses::NONE.with(StatusCode::ACCEPTED);
        assert!(
            custom
                .classify(StatusCode::ACCEPTED, &headers, now)
                .is_retryable()
        );
        assert_eq!(
            custom.classify(StatusCode::SERVICE_UNAVAILABLE, &headers, now),
            ResponseClass::Permanent
        );
    }

    #[test]
    fn middleware_errors() {
        use crate::rate_limit::RateLimited;
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let err = reqwest_middleware::Error::middleware(io);
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), None);

        let limited = RateLimited {
            retry_after: Duration::from_millis(300),
        };
        let err = reqwest_middleware::Error::middleware(limited);
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_millis(300)));

        let open = CircuitOpenError {
            name: "x".into(),
            retry_after: Some(Duration::from_secs(1)),
        };
        let err = reqwest_middleware::Error::middleware(open);
        assert!(!err.is_retryable());

        let err = reqwest_middleware::Error::from(TimeoutError {
            after: Duration::from_secs(1),
        });
        assert!(err.is_retryable());

        let err = reqwest_middleware::Error::Middleware(anyhow::anyhow!("no idea"));
        assert!(!err.is_retryable());
        assert_eq!(status_of(&err), None);
    }

    #[test]
    fn a_limiter_that_cannot_decide_is_as_transient_as_its_backend() {
        let middleware = |e: RateLimitError| reqwest_middleware::Error::middleware(e);
        let io = |kind| RateLimitError::Backend(Box::new(std::io::Error::from(kind)));
        assert!(middleware(io(std::io::ErrorKind::ConnectionRefused)).is_retryable());
        assert!(!middleware(io(std::io::ErrorKind::PermissionDenied)).is_retryable());
        let never = RateLimitError::CostExceedsCapacity {
            cost: 2,
            capacity: 1,
        };
        assert!(!middleware(never).is_retryable());
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_redis_backend_error_decides_by_its_own_verdict() {
        use crate::redis::RedisError;
        let backend = |e: RedisError| {
            reqwest_middleware::Error::middleware(RateLimitError::Backend(Box::new(e)))
        };
        let timeout = RedisError::Timeout {
            operation: "rate_limit",
            after: Duration::from_millis(500),
        };
        assert!(backend(timeout).is_retryable());
        let acl = RedisError::PermissionDenied {
            operation: "rate_limit",
            username: None,
            detail: "no permissions to run the 'evalsha' command".to_owned(),
        };
        assert!(!backend(acl).is_retryable());
    }
}
