//! Reading the client address that trusted proxies appended to `X-Forwarded-For` or
//! `Forwarded` (RFC 7239).
//!
//! Everything left of what our own proxies wrote is client-controlled, so the parsers walk the
//! header from the right and stop after `hops` elements: a spoofed prefix is never read, however
//! long or malformed. Any doubt (too few elements, an element that is not an IP address, an
//! obfuscated or `unknown` node) gives `None`, and the caller falls back to the connection's
//! peer address.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};

/// The standard `X-Forwarded-For` header name.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The longest element worth parsing: a bracketed IPv6 address with a zone and a port fits in
/// well under this; anything longer is garbage.
const MAX_ELEMENT: usize = 96;

/// The address that the outermost of `hops` trusted proxies put into `X-Forwarded-For`: the
/// `hops`-th element from the right over all the header's lines. `None` when `hops` is 0, when
/// there are fewer elements, or when that element is not an address.
pub(crate) fn x_forwarded_for(headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    let element = nth_from_right(headers, &X_FORWARDED_FOR, hops, split_plain)?;
    parse_node(element)
}

/// The `for=` address of the `hops`-th `Forwarded` element from the right. `None` as above,
/// and when that element has no `for=` or an obfuscated / `unknown` node.
pub(crate) fn forwarded(headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    let element = nth_from_right(headers, &FORWARDED, hops, split_quoted)?;
    let node = for_param(element)?;
    parse_node(&unquote(node)?)
}

/// Splits the last list element off a header line: `(what is left of it, the element)`.
type Splitter<'a> = fn(&'a [u8]) -> (Option<&'a [u8]>, &'a [u8]);

/// The `hops`-th non-empty list element from the right, over every line of `name` (later lines
/// come later in the combined list, RFC 9110 §5.3). Empty elements are skipped, as RFC 9110
/// §5.6.1 asks of recipients. Works on bytes: non-ASCII bytes a client put left of the trusted
/// part cannot make the trusted element unreadable.
fn nth_from_right<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    hops: usize,
    split: Splitter<'a>,
) -> Option<&'a str> {
    if hops == 0 {
        return None;
    }
    let mut seen = 0;
    for line in headers.get_all(name).iter().rev() {
        let mut rest = line.as_bytes();
        loop {
            let (before, element) = split(rest);
            let element = element.trim_ascii();
            if !element.is_empty() {
                seen += 1;
                if seen == hops {
                    return std::str::from_utf8(element).ok();
                }
            }
            match before {
                Some(b) => rest = b,
                None => break,
            }
        }
    }
    None
}

/// Splits off the last comma-separated element: `(what is left of it, the element)`.
fn split_plain(s: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match s.iter().rposition(|&b| b == b',') {
        Some(i) => (Some(&s[..i]), &s[i + 1..]),
        None => (None, s),
    }
}

/// Like [`split_plain`], but a comma inside a quoted string does not split (RFC 7239 values
/// may be quoted strings). Walking right to left, a quote toggles the state; a backslash-escaped
/// quote (`\"`) does not.
fn split_quoted(s: &[u8]) -> (Option<&[u8]>, &[u8]) {
    let mut quoted = false;
    let mut i = s.len();
    while i > 0 {
        i -= 1;
        match s[i] {
            b'"' if !(i > 0 && s[i - 1] == b'\\') => quoted = !quoted,
            b',' if !quoted => return (Some(&s[..i]), &s[i + 1..]),
            _ => {}
        }
    }
    (None, s)
}

/// The value of the `for` parameter of one `Forwarded` element (`for=...;proto=...;by=...`).
fn for_param(element: &str) -> Option<&str> {
    let mut found = None;
    for pair in element.split(';') {
        if pair.trim().is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            // Two `for` parameters in one element: ambiguous, trust neither.
            if found.is_some() {
                return None;
            }
            found = Some(value.trim());
        }
    }
    found
}

/// A token as is, or a quoted string without its quotes (escapes removed). Short values only.
fn unquote(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    if value.len() > MAX_ELEMENT {
        return None;
    }
    match value.strip_prefix('"') {
        None => Some(value.into()),
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            if inner.contains('\\') {
                let mut out = String::with_capacity(inner.len());
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    out.push(if c == '\\' { chars.next()? } else { c });
                }
                Some(out.into())
            } else {
                Some(inner.into())
            }
        }
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`. `unknown`, obfuscated identifiers (`_hidden`) and garbage give `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if node.len() > MAX_ELEMENT {
        return None;
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = node.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    // `[v6]` without a port (RFC 7239 allows it; std's parsers do not).
    let inner = node.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(name: &HeaderName, lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(name.clone(), HeaderValue::from_str(l).unwrap());
        }
        h
    }

    fn xff(lines: &[&str], hops: usize) -> Option<IpAddr> {
        x_forwarded_for(&map(&X_FORWARDED_FOR, lines), hops)
    }

    fn fwd(lines: &[&str], hops: usize) -> Option<IpAddr> {
        forwarded(&map(&FORWARDED, lines), hops)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn xff_takes_the_hops_th_element_from_the_right() {
        let h = ["6.6.6.6, 1.1.1.1, 10.0.0.1"];
        assert_eq!(xff(&h, 0), None);
        assert_eq!(xff(&h, 1), ip("10.0.0.1"));
        assert_eq!(xff(&h, 2), ip("1.1.1.1"));
        assert_eq!(xff(&h, 3), ip("6.6.6.6"));
        assert_eq!(xff(&h, 4), None, "fewer elements than hops");
    }

    #[test]
    fn xff_spans_header_lines_in_order() {
        let h = ["6.6.6.6", "1.1.1.1, 10.0.0.1"];
        assert_eq!(xff(&h, 2), ip("1.1.1.1"));
        assert_eq!(xff(&h, 3), ip("6.6.6.6"));
    }

    #[test]
    fn xff_accepts_ports_brackets_and_ipv6() {
        assert_eq!(xff(&["1.2.3.4:5678"], 1), ip("1.2.3.4"));
        assert_eq!(xff(&["[2001:db8::1]:443"], 1), ip("2001:db8::1"));
        assert_eq!(xff(&["[2001:db8::1]"], 1), ip("2001:db8::1"));
        assert_eq!(xff(&["2001:db8::1"], 1), ip("2001:db8::1"));
    }

    #[test]
    fn xff_rejects_garbage_at_the_trusted_position() {
        assert_eq!(xff(&["1.1.1.1, not-an-ip"], 1), None);
        assert_eq!(xff(&["1.1.1.1, unknown"], 1), None);
        assert_eq!(xff(&["1.1.1.1, 999.1.1.1"], 1), None);
        assert_eq!(xff(&[""], 1), None);
        assert_eq!(xff(&[",,,"], 1), None);
    }

    #[test]
    fn non_ascii_left_of_the_trusted_part_is_harmless() {
        let mut h = HeaderMap::new();
        let line = HeaderValue::from_bytes(b"\xff\xfe evil, 203.0.113.9").unwrap();
        h.append(X_FORWARDED_FOR, line);
        assert_eq!(x_forwarded_for(&h, 1), ip("203.0.113.9"));
        assert_eq!(x_forwarded_for(&h, 2), None);
        let mut h = HeaderMap::new();
        let line = HeaderValue::from_bytes(b"for=\"\xff,\", for=203.0.113.9").unwrap();
        h.append(FORWARDED, line);
        assert_eq!(forwarded(&h, 1), ip("203.0.113.9"));
    }

    #[test]
    fn xff_skips_empty_elements() {
        assert_eq!(xff(&["1.1.1.1,, 2.2.2.2 ,"], 1), ip("2.2.2.2"));
        assert_eq!(xff(&["1.1.1.1,, 2.2.2.2 ,"], 2), ip("1.1.1.1"));
    }

    #[test]
    fn xff_hostile_prefixes_are_never_read() {
        // A huge spoofed prefix, many commas, garbage: only the last element matters.
        let spoof = format!("{}{}", "a,".repeat(50_000), "x".repeat(10_000));
        let line = format!("{spoof}, 9.9.9.9");
        assert_eq!(xff(&[&line], 1), ip("9.9.9.9"));
        let commas = ",".repeat(100_000);
        assert_eq!(xff(&[&commas], 1), None);
        let long = "1".repeat(100_000);
        assert_eq!(xff(&[&long], 1), None);
    }

    #[test]
    fn forwarded_reads_for_from_the_right_element() {
        let h = ["for=6.6.6.6, for=192.0.2.60;proto=http;by=203.0.113.43"];
        assert_eq!(fwd(&h, 1), ip("192.0.2.60"));
        assert_eq!(fwd(&h, 2), ip("6.6.6.6"));
        assert_eq!(fwd(&h, 3), None);
    }

    #[test]
    fn forwarded_quoted_ipv6_with_port_and_case() {
        assert_eq!(
            fwd(&[r#"For="[2001:db8:cafe::17]:4711""#], 1),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(fwd(&[r#"for="[2001:db8::1]""#], 1), ip("2001:db8::1"));
        assert_eq!(fwd(&[r#"for="192.0.2.1:80""#], 1), ip("192.0.2.1"));
        assert_eq!(
            fwd(&[r#"proto=https; for = 192.0.2.1 "#], 1),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn forwarded_obfuscated_unknown_and_ambiguous_give_none() {
        assert_eq!(fwd(&["for=unknown"], 1), None);
        assert_eq!(fwd(&["for=_hidden"], 1), None);
        assert_eq!(fwd(&["proto=http"], 1), None);
        assert_eq!(fwd(&["for=1.1.1.1;for=2.2.2.2"], 1), None);
        assert_eq!(fwd(&[r#"for="1.1.1.1"#], 1), None, "unterminated quote");
        assert_eq!(fwd(&["garbage"], 1), None);
    }

    #[test]
    fn forwarded_quoted_commas_in_the_spoofed_part_do_not_shift_the_trusted_one() {
        // A client-written element with a quoted comma, then our proxy's element.
        let h = [r#"for="1.1.1.1, for=6.6.6.6", for=192.0.2.9"#];
        assert_eq!(fwd(&h, 1), ip("192.0.2.9"));
        // An unbalanced quote in the spoofed part cannot reach the trusted element.
        let h = [r#"for="evil, for=192.0.2.9"#];
        assert_eq!(fwd(&h, 1), ip("192.0.2.9"));
    }

    #[test]
    fn forwarded_hostile_sizes() {
        let line = format!("{}for=192.0.2.9", "for=1.1.1.1,".repeat(20_000));
        assert_eq!(fwd(&[&line], 1), ip("192.0.2.9"));
        let quotes = "\"".repeat(100_001);
        assert_eq!(fwd(&[&quotes], 1), None);
        let long = format!("for=\"{}\"", "a".repeat(10_000));
        assert_eq!(fwd(&[&long], 1), None);
    }
}
