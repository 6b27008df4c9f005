//! The response headers: `Retry-After` (RFC 9110), the IETF `RateLimit-Policy` / `RateLimit`
//! fields (draft-ietf-httpapi-ratelimit-headers-11, structured-field lists) and, optionally, the
//! de facto `X-RateLimit-Limit` / `-Remaining` / `-Reset`.
//!
//! The values that never change (the policy, the limit) are built once; the per-response ones
//! are written into a stack buffer and copied into one `HeaderValue` each.

use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::ConfigError;
use crate::rate_limit::RateLimitDecision;

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The longest policy name accepted (it is repeated in every response).
pub(crate) const MAX_POLICY_NAME: usize = 64;

/// What a limiter allows, as advertised in `RateLimit-Policy`: `quota` units per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyInfo {
    /// The bucket's capacity (burst): requests an idle client may make at once.
    pub quota: u64,
    /// The time an empty bucket takes to fill up again.
    pub window: Duration,
}

/// Whole seconds, rounded up, saturating.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// The `Retry-After` value of a refusal: whole seconds rounded up (RFC 9110 §10.2.3 allows only
/// integers) and at least 1, since a refused client retrying at once would be refused again.
pub(crate) fn retry_after_secs(d: Duration) -> u64 {
    ceil_secs(d).max(1)
}

/// A `Retry-After` header value of `d` (see [`retry_after_secs`]).
pub(crate) fn retry_after_value(d: Duration) -> HeaderValue {
    HeaderValue::from(retry_after_secs(d))
}

/// Checks a policy name: 1 to 64 printable ASCII characters without `"` or `\` (it is written
/// as a structured-field string, unescaped).
pub(crate) fn check_policy_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_POLICY_NAME
        && name
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "policy_name",
            "must be 1 to 64 printable ASCII characters without '\"' or '\\'",
        ))
    }
}

/// Which headers to write and their constant parts.
#[derive(Debug, Clone)]
pub(crate) struct HeaderPlan {
    name: Box<str>,
    /// `RateLimit-Policy`, when the IETF fields are on.
    policy: Option<HeaderValue>,
    /// `X-RateLimit-Limit`, when the legacy fields are on.
    limit: Option<HeaderValue>,
}

impl HeaderPlan {
    pub(crate) fn new(name: &str, info: PolicyInfo, ietf: bool, legacy: bool) -> Self {
        let policy = ietf
            .then(|| {
                let mut buf = Buf::new();
                buf.quoted(name);
                buf.push(b";q=");
                buf.num(info.quota);
                buf.push(b";w=");
                buf.num(ceil_secs(info.window).max(1));
                buf.value()
            })
            .flatten();
        Self {
            name: name.into(),
            policy,
            limit: legacy.then(|| HeaderValue::from(info.quota)),
        }
    }

    /// Whether any rate-limit header is written.
    pub(crate) fn is_on(&self) -> bool {
        self.policy.is_some() || self.limit.is_some()
    }

    /// Writes the rate-limit headers of `decision` (both on admitted and refused responses).
    pub(crate) fn write(&self, headers: &mut HeaderMap, decision: &RateLimitDecision) {
        let reset = ceil_secs(decision.reset_after);
        if let Some(policy) = &self.policy {
            // Appended, not inserted: the fields are lists, so stacked limiters each add theirs.
            headers.append(RATELIMIT_POLICY, policy.clone());
            let mut buf = Buf::new();
            buf.quoted(&self.name);
            buf.push(b";r=");
            buf.num(decision.remaining);
            buf.push(b";t=");
            buf.num(reset);
            if let Some(v) = buf.value() {
                headers.append(RATELIMIT, v);
            }
        }
        if let Some(limit) = &self.limit {
            headers.insert(X_LIMIT, limit.clone());
            headers.insert(X_REMAINING, HeaderValue::from(decision.remaining));
            headers.insert(X_RESET, HeaderValue::from(reset));
        }
    }
}

/// A small stack buffer for header values (policy names are at most 64 bytes).
struct Buf {
    bytes: [u8; 128],
    len: usize,
}

impl Buf {
    fn new() -> Self {
        Self {
            bytes: [0; 128],
            len: 0,
        }
    }

    fn push(&mut self, s: &[u8]) {
        // Never more than 64 + 2 + 2 × (3 + 20) bytes are written; overflow is dropped, and the
        // value then fails to parse rather than panics.
        let end = (self.len + s.len()).min(self.bytes.len());
        let n = end - self.len;
        self.bytes[self.len..end].copy_from_slice(&s[..n]);
        self.len = end;
    }

    fn quoted(&mut self, s: &str) {
        self.push(b"\"");
        self.push(s.as_bytes());
        self.push(b"\"");
    }

    fn num(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn value(&self) -> Option<HeaderValue> {
        HeaderValue::from_bytes(&self.bytes[..self.len]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(remaining: u64, reset_ms: u64) -> RateLimitDecision {
        RateLimitDecision {
            allowed: true,
            remaining,
            retry_after: Duration::ZERO,
            reset_after: Duration::from_millis(reset_ms),
        }
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1000)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
        assert_eq!(ceil_secs(Duration::MAX), u64::MAX);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
    }

    #[test]
    fn ietf_and_legacy_values() {
        let info = PolicyInfo {
            quota: 20,
            window: Duration::from_millis(2500),
        };
        let plan = HeaderPlan::new("per-ip", info, true, true);
        let mut h = HeaderMap::new();
        plan.write(&mut h, &decision(u64::MAX, 1200));
        assert_eq!(h["ratelimit-policy"], r#""per-ip";q=20;w=3"#);
        assert_eq!(
            h["ratelimit"],
            format!(r#""per-ip";r={};t=2"#, u64::MAX).as_str()
        );
        assert_eq!(h["x-ratelimit-limit"], "20");
        assert_eq!(h["x-ratelimit-remaining"], u64::MAX.to_string().as_str());
        assert_eq!(h["x-ratelimit-reset"], "2");
    }

    #[test]
    fn off_means_no_headers_and_zero_window_is_one_second() {
        let info = PolicyInfo {
            quota: 1,
            window: Duration::from_millis(1),
        };
        let mut h = HeaderMap::new();
        HeaderPlan::new("p", info, false, false).write(&mut h, &decision(0, 0));
        assert!(h.is_empty());
        HeaderPlan::new("p", info, true, false).write(&mut h, &decision(0, 0));
        assert_eq!(h["ratelimit-policy"], r#""p";q=1;w=1"#);
        assert_eq!(h["ratelimit"], r#""p";r=0;t=0"#);
    }

    #[test]
    fn policy_names() {
        assert!(check_policy_name("default").is_ok());
        assert!(check_policy_name(&"a".repeat(64)).is_ok());
        for bad in ["", "a\"b", "a\\b", "é", "a\nb", &"a".repeat(65)] {
            assert!(check_policy_name(bad).is_err(), "{bad:?}");
        }
    }
}
