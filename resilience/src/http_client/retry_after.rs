//! `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date, turned into a wait.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The longest wait a `Retry-After` hint can ask for: one day. Longer values (and dates further
/// ahead) are clamped to it. No rate-limit window a client would wait out is longer, and the
/// clamp keeps a hostile or broken value (`99999999999999999999`, the year 9999) from turning
/// into a wait no deadline arithmetic should meet. A retry policy's `total_timeout` still
/// decides whether a wait this long is started at all.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The wait a `Retry-After` value asks for, `now` being the current wall-clock time (an
/// HTTP-date is an absolute time).
///
/// - delta-seconds (`120`): that many seconds, clamped to [`MAX_RETRY_AFTER`] (however many
///   digits);
/// - an HTTP-date in any of the three forms RFC 9110 requires recipients to accept
///   (IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete RFC 850
///   `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994`): the time from
///   `now` to it, zero if it has passed, clamped to [`MAX_RETRY_AFTER`];
/// - anything else — empty, negative (`-5`), signed (`+5`), fractional (`1.5`), a malformed
///   date, bytes that are not text — is ignored: `None`, and the policy's backoff applies.
///
/// Surrounding whitespace is allowed.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use resilience::http_client::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30); // 30 s before the date below
/// assert_eq!(parse_retry_after(b"120", now), Some(Duration::from_secs(120)));
/// assert_eq!(parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(30)));
/// assert_eq!(parse_retry_after(b"soon", now), None);
/// ```
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: the parse can fail only by overflowing, which the clamp covers.
        let secs = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// The wait the first `Retry-After` header of `headers` asks for (see [`parse_retry_after`]),
/// `now` being the current wall-clock time.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.as_bytes(), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example date).
    const EXAMPLE: u64 = 784_111_777;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn parse(value: &str, now: SystemTime) -> Option<Duration> {
        parse_retry_after(value.as_bytes(), now)
    }

    #[test]
    fn delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse("0", now), Some(Duration::ZERO));
        assert_eq!(parse("1", now), Some(Duration::from_secs(1)));
        assert_eq!(parse("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse("  7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse("007", now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn huge_values_are_clamped() {
        let now = SystemTime::now();
        assert_eq!(parse("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("86401", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse(&u64::MAX.to_string(), now), Some(MAX_RETRY_AFTER));
        // More digits than a u64 holds: still a number, still clamped.
        assert_eq!(
            parse("99999999999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        // A date far ahead.
        assert_eq!(
            parse("Fri, 31 Dec 9999 23:59:59 GMT", at(EXAMPLE)),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn imf_fixdate() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(parse(date, at(EXAMPLE - 90)), Some(Duration::from_secs(90)));
        assert_eq!(parse(date, at(EXAMPLE)), Some(Duration::ZERO));
        // A date in the past means "now".
        assert_eq!(parse(date, at(EXAMPLE + 3600)), Some(Duration::ZERO));
        // Sub-second `now`: the wait is exact, not rounded.
        let now = at(EXAMPLE - 2) + Duration::from_millis(250);
        assert_eq!(parse(date, now), Some(Duration::from_millis(1750)));
    }

    #[test]
    fn obsolete_date_formats() {
        let now = at(EXAMPLE - 60);
        let rfc850 = "Sunday, 06-Nov-94 08:49:37 GMT";
        let asctime = "Sun Nov  6 08:49:37 1994";
        assert_eq!(parse(rfc850, now), Some(Duration::from_secs(60)));
        assert_eq!(parse(asctime, now), Some(Duration::from_secs(60)));
        assert_eq!(parse(rfc850, at(EXAMPLE + 1)), Some(Duration::ZERO));
        assert_eq!(parse(asctime, at(EXAMPLE + 1)), Some(Duration::ZERO));
    }

    #[test]
    fn date_round_trips_through_the_formatter() {
        let now = SystemTime::now();
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        let wait = parse(&later, now).expect("a valid date");
        // The formatted date drops the sub-second part.
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
    }

    #[test]
    fn garbage_is_ignored() {
        let now = at(EXAMPLE);
        for value in [
            "",
            "   ",
            "-1",
            "-120",
            "+5",
            "1.5",
            "1e3",
            "10s",
            "soon",
            "0x10",
            "Sun, 06 Nov 1994 08:49:37",     // no zone
            "Mon, 06 Nov 1994 08:49:37 GMT", // wrong weekday
            "Sun, 32 Nov 1994 08:49:37 GMT", // no such day
            "Sunday, 06-Nov-94 08:49:37",
            "Thu, 01 Jan 1960 00:00:00 GMT", // before 1970: not representable
        ] {
            assert_eq!(parse(value, now), None, "{value:?}");
        }
        assert_eq!(parse_retry_after(&[0xff, b'1'], now), None);
    }

    #[test]
    fn from_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, SystemTime::now()), None);
        headers.insert(RETRY_AFTER, "3".parse().expect("header value"));
        headers.append(RETRY_AFTER, "9".parse().expect("header value"));
        assert_eq!(
            retry_after(&headers, SystemTime::now()),
            Some(Duration::from_secs(3))
        );
    }
}
