//! Collision-safe typed keys: `<prefix>:<namespace>:...`.
//!
//! Template text (from [`KeyWriter::literal`]) is trusted and may contain `:`; user values go
//! through [`KeyWriter::segment`], which percent-encodes every byte outside `[A-Za-z0-9_.-]`
//! (including `%` itself). So an encoded value never contains a separator (`:`), a hash-tag
//! brace, a glob character (`*?[]`), whitespace or a control byte, and the encoding is injective:
//! distinct values (the empty string and non-UTF-8 bytes included) give distinct keys.
//!
//! Hash tags never come out empty: Redis Cluster ignores `{}` and hashes the whole key instead,
//! so a tag whose content is empty (e.g. an empty hash-tag field) is written `{%}` — a lone `%`
//! that no encoded value can produce, so the encoding stays injective. Scripts that touch several
//! keys (the lock and its fencing counter) get them from one function that puts the tag right
//! after the prefix (`<prefix>:{<namespace>:...}<suffix>`): every key starts with the prefix (for
//! ACL key patterns such as `~nova:*` and `SCAN MATCH nova:*`) and they share one slot for every
//! input.
//!
//! ```
//! use resilience::redis::{KeyWriter, RedisKey};
//!
//! struct GoalKey<'a> { goal_id: &'a str }
//! impl RedisKey for GoalKey<'_> {
//!     const NAMESPACE: &'static str = "sword";
//!     fn write_key(&self, w: &mut KeyWriter) {
//!         w.literal("goal:");
//!         w.segment(self.goal_id);
//!     }
//! }
//! let key = resilience::redis::render_key("nova", &GoalKey { goal_id: "a:b*" }).unwrap();
//! assert_eq!(key, "nova:sword:goal:a%3Ab%2A");
//! ```

use std::fmt::Write as _;
use std::net::IpAddr;

use super::error::RedisError;

/// A typed Redis key; `#[derive(RedisKey)]` implements it from a template.
pub trait RedisKey {
    /// The namespace: the key's first segment after the client's prefix.
    const NAMESPACE: &'static str;
    /// Appends the rest of the key (after `<prefix>:<namespace>:`) to `w`.
    fn write_key(&self, w: &mut KeyWriter);
}

impl<K: RedisKey + ?Sized> RedisKey for &K {
    const NAMESPACE: &'static str = K::NAMESPACE;
    fn write_key(&self, w: &mut KeyWriter) {
        (**self).write_key(w);
    }
}

/// A value that can appear as a user-supplied key segment; its encoding must be inert (see the
/// module docs). Implement it by delegating to an existing impl (e.g. a newtype's inner string).
pub trait KeySegment {
    /// Appends the encoded segment to `out`.
    fn write_segment(&self, out: &mut String);
}

/// Builds one key; handed to [`RedisKey::write_key`].
#[derive(Debug)]
pub struct KeyWriter {
    buf: String,
    open_tags: u32,
}

impl KeyWriter {
    /// A writer that already holds `<prefix>:<namespace>:` (or `<namespace>:` with an empty
    /// prefix). Both are validated by [`render_key`]; this constructor trusts them.
    fn with_head(prefix: &str, namespace: &str) -> Self {
        let mut buf = String::with_capacity(prefix.len() + namespace.len() + 40);
        if !prefix.is_empty() {
            buf.push_str(prefix);
            buf.push(':');
        }
        buf.push_str(namespace);
        buf.push(':');
        Self { buf, open_tags: 0 }
    }

    /// Appends template text as is. Generated code only passes `[A-Za-z0-9_.:-]`; other
    /// characters are percent-encoded here too, so a hand-written impl cannot inject a brace or
    /// a glob character by mistake either.
    pub fn literal(&mut self, text: &'static str) {
        for b in text.bytes() {
            if b == b':' || is_plain(b) {
                self.buf.push(b as char);
            } else {
                push_escaped(&mut self.buf, b);
            }
        }
    }

    /// Appends a user value, encoded injectively and inertly.
    pub fn segment<T: KeySegment + ?Sized>(&mut self, value: &T) {
        let start = self.buf.len();
        value.write_segment(&mut self.buf);
        // A hand-written `KeySegment` writes straight into the key: unless its output is already
        // in encoded form, encode it, so no impl can add a separator, a brace or a glob.
        if !is_encoded(&self.buf.as_bytes()[start..]) {
            let raw = self.buf.split_off(start);
            encode_segment(raw.as_bytes(), &mut self.buf);
        }
    }

    /// Opens a hash tag: the following segment(s), up to [`close_hash_tag`](Self::close_hash_tag),
    /// choose the Redis Cluster slot.
    pub fn open_hash_tag(&mut self) {
        self.buf.push('{');
        self.open_tags += 1;
    }

    /// Closes the hash tag opened by [`open_hash_tag`](Self::open_hash_tag). An empty tag is
    /// written `{%}`: Redis ignores `{}`, which would move the key to another slot.
    pub fn close_hash_tag(&mut self) {
        if self.open_tags > 0 {
            self.open_tags -= 1;
            if self.buf.ends_with('{') {
                // `%` alone: every `%` that segments and literals write starts a `%XX` triple.
                self.buf.push('%');
            }
            self.buf.push('}');
        }
    }

    /// The key written so far.
    pub fn as_str(&self) -> &str {
        &self.buf
    }

    fn finish(mut self) -> String {
        // An unbalanced tag would move the key to another slot than the author meant.
        while self.open_tags > 0 {
            self.close_hash_tag();
        }
        self.buf
    }
}

#[inline]
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Whether `b` is in the form [`encode_segment`] writes: plain bytes and `%XX` (uppercase hex).
fn is_encoded(b: &[u8]) -> bool {
    let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
    let mut i = 0;
    while i < b.len() {
        if is_plain(b[i]) {
            i += 1;
        } else if b[i] == b'%' && i + 2 < b.len() && hex(b[i + 1]) && hex(b[i + 2]) {
            i += 3;
        } else {
            return false;
        }
    }
    true
}

#[inline]
fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 0xF) as usize] as char);
}

/// Percent-encodes `bytes` onto `out`: bytes in `[A-Za-z0-9_.-]` stay, every other byte
/// (including `%`) becomes `%XX`. Injective, and the output holds no `:{}*?[]`, space or control.
pub fn encode_segment(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len());
    for &b in bytes {
        if is_plain(b) {
            out.push(b as char);
        } else {
            push_escaped(out, b);
        }
    }
}

impl KeySegment for str {
    fn write_segment(&self, out: &mut String) {
        encode_segment(self.as_bytes(), out);
    }
}

impl KeySegment for String {
    fn write_segment(&self, out: &mut String) {
        encode_segment(self.as_bytes(), out);
    }
}

impl KeySegment for [u8] {
    fn write_segment(&self, out: &mut String) {
        encode_segment(self, out);
    }
}

impl KeySegment for Vec<u8> {
    fn write_segment(&self, out: &mut String) {
        encode_segment(self, out);
    }
}

impl<T: KeySegment + ?Sized> KeySegment for &T {
    fn write_segment(&self, out: &mut String) {
        (**self).write_segment(out);
    }
}

impl<T: KeySegment + ?Sized> KeySegment for Box<T> {
    fn write_segment(&self, out: &mut String) {
        (**self).write_segment(out);
    }
}

impl<T: KeySegment + ?Sized> KeySegment for std::sync::Arc<T> {
    fn write_segment(&self, out: &mut String) {
        (**self).write_segment(out);
    }
}

macro_rules! int_segment {
    ($($t:ty),*) => {$(
        impl KeySegment for $t {
            // Decimal digits and `-` are all plain characters: nothing to escape.
            fn write_segment(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
int_segment!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

impl KeySegment for bool {
    fn write_segment(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl KeySegment for char {
    fn write_segment(&self, out: &mut String) {
        let mut b = [0u8; 4];
        encode_segment(self.encode_utf8(&mut b).as_bytes(), out);
    }
}

impl KeySegment for IpAddr {
    // IPv6 has `:`, which must be escaped like any other user byte.
    fn write_segment(&self, out: &mut String) {
        encode_segment(self.to_string().as_bytes(), out);
    }
}

/// Implements [`KeySegment`] for a newtype over a string-like or integer field (e.g. an id type)
/// by delegating to the field: `resilience::key_segment_newtype!(GoalId);` for
/// `struct GoalId(String)`.
#[macro_export]
macro_rules! key_segment_newtype {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::redis::KeySegment for $t {
            fn write_segment(&self, out: &mut ::std::string::String) {
                $crate::redis::KeySegment::write_segment(&self.0, out)
            }
        }
    )*};
}

/// Checks a key prefix: empty (no prefix), or `[A-Za-z0-9_.-]` parts joined by single `:`.
pub fn validate_prefix(prefix: &str) -> Result<(), crate::ConfigError> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix
        .split(':')
        .any(|p| p.is_empty() || !p.bytes().all(is_plain))
    {
        return Err(crate::ConfigError::new(
            "key_prefix",
            "must be `[A-Za-z0-9_.-]` parts joined by single `:` (no leading, trailing or doubled \
             `:`, no braces, glob characters or spaces)",
        ));
    }
    Ok(())
}

fn validate_namespace(ns: &'static str) -> Result<(), RedisError> {
    if ns.is_empty() || !ns.bytes().all(is_plain) {
        return Err(RedisError::InvalidKey {
            reason: "a key namespace must be non-empty `[A-Za-z0-9_.-]` (no `:`)",
        });
    }
    Ok(())
}

/// Renders `key` as `<prefix>:<namespace>:...`; `prefix` must pass [`validate_prefix`] (the
/// client validates its prefix once, when built).
pub fn render_key<K: RedisKey + ?Sized>(prefix: &str, key: &K) -> Result<String, RedisError> {
    validate_namespace(K::NAMESPACE)?;
    if validate_prefix(prefix).is_err() {
        return Err(RedisError::InvalidKey {
            reason: "the key prefix must be `[A-Za-z0-9_.-]` parts joined by single `:`",
        });
    }
    let mut w = KeyWriter::with_head(prefix, K::NAMESPACE);
    key.write_key(&mut w);
    Ok(w.finish())
}

/// Renders with an already validated prefix (the client's).
pub(crate) fn render_trusted<K: RedisKey + ?Sized>(
    prefix: &str,
    key: &K,
) -> Result<String, RedisError> {
    validate_namespace(K::NAMESPACE)?;
    let mut w = KeyWriter::with_head(prefix, K::NAMESPACE);
    key.write_key(&mut w);
    Ok(w.finish())
}

/// The keys of one script call that touches several keys about `key`, in one Redis Cluster slot
/// for every input: `<prefix>:{<namespace>:<rest>}<suffix>` for each of `suffixes`.
///
/// The tag opens right after the prefix, so every key starts with the prefix; its content starts
/// with the (non-empty) namespace, so it is never empty; and everything up to the tag's end is
/// common to the whole set, so the slot is too, even when `<rest>` holds a hash tag of its own.
/// Rendered keys always have a namespace right after the prefix, so these keys never collide
/// with one (a `{` there is impossible), and wrapping is injective.
pub(crate) fn colocated_keys<K: RedisKey + ?Sized, const N: usize>(
    prefix: &str,
    key: &K,
    suffixes: [&str; N],
) -> Result<[String; N], RedisError> {
    let rendered = render_trusted(prefix, key)?;
    let head = if prefix.is_empty() {
        0
    } else {
        prefix.len() + 1
    };
    let (head, body) = rendered.split_at(head);
    Ok(suffixes.map(|suffix| {
        let mut k = String::with_capacity(rendered.len() + 2 + suffix.len());
        k.push_str(head);
        k.push('{');
        k.push_str(body);
        k.push('}');
        k.push_str(suffix);
        k
    }))
}

/// The window a rate-limit key counts in (part of the key, so limits per window stay apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateWindow {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
    /// Per day.
    Day,
}

impl RateWindow {
    /// The window's name as it appears in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// Who a rate limit applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateSubject {
    /// An API key (store a hash of it if the key itself is a secret).
    ApiKey(String),
    /// A client IP address.
    Ip(IpAddr),
    /// A user id.
    User(String),
    /// Anything else, under a name of your choice.
    Custom(String),
}

/// `<prefix>:rate:<kind>:<subject>:<window>` — e.g. `nova:rate:ip:192.168.1.1:minute`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateLimitKey {
    /// Who is limited.
    pub subject: RateSubject,
    /// The window.
    pub window: RateWindow,
}

impl RateLimitKey {
    /// Per API key.
    pub fn api_key(key: impl Into<String>, window: RateWindow) -> Self {
        Self {
            subject: RateSubject::ApiKey(key.into()),
            window,
        }
    }
    /// Per client IP.
    pub fn ip(ip: IpAddr, window: RateWindow) -> Self {
        Self {
            subject: RateSubject::Ip(ip),
            window,
        }
    }
    /// Per user.
    pub fn user(user: impl Into<String>, window: RateWindow) -> Self {
        Self {
            subject: RateSubject::User(user.into()),
            window,
        }
    }
    /// Per anything.
    pub fn custom(name: impl Into<String>, window: RateWindow) -> Self {
        Self {
            subject: RateSubject::Custom(name.into()),
            window,
        }
    }
}

impl RedisKey for RateLimitKey {
    const NAMESPACE: &'static str = "rate";
    fn write_key(&self, w: &mut KeyWriter) {
        match &self.subject {
            RateSubject::ApiKey(k) => {
                w.literal("api:");
                w.segment(k.as_str());
            }
            RateSubject::Ip(ip) => {
                w.literal("ip:");
                w.segment(ip);
            }
            RateSubject::User(u) => {
                w.literal("user:");
                w.segment(u.as_str());
            }
            RateSubject::Custom(c) => {
                w.literal("custom:");
                w.segment(c.as_str());
            }
        }
        w.literal(":");
        w.literal(self.window.as_str());
    }
}

/// A raw, already-chosen rate-limit bucket name: `<prefix>:rate:key:<name>` (used by
/// [`RedisRateLimiter`](crate::rate_limit::RedisRateLimiter) for its string keys).
#[derive(Debug, Clone, Copy)]
pub struct RateBucketKey<'a> {
    /// The limiter's name (part of the key so two limiters never share buckets).
    pub limiter: &'a str,
    /// The caller's key.
    pub key: &'a str,
}

impl RedisKey for RateBucketKey<'_> {
    const NAMESPACE: &'static str = "rate";
    fn write_key(&self, w: &mut KeyWriter) {
        w.literal("bucket:");
        w.segment(self.limiter);
        w.literal(":");
        w.segment(self.key);
    }
}

/// `<prefix>:lock:<resource>` — a lock by name. Like any key given to
/// [`RedisClient::acquire_lock`](crate::redis::RedisClient::acquire_lock), the lock itself is
/// stored at `<prefix>:{lock:<resource>}` and its fencing counter at `...:fence`, in one Cluster
/// slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockKey {
    /// What is locked.
    pub resource: String,
}

impl LockKey {
    /// A lock on `resource`.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
        }
    }
}

impl RedisKey for LockKey {
    const NAMESPACE: &'static str = "lock";
    fn write_key(&self, w: &mut KeyWriter) {
        // No tag of its own: `colocated_keys` adds the one the lock scripts need.
        w.segment(self.resource.as_str());
    }
}

/// `<prefix>:cache:<kind>:<hash>` — e.g. `CacheKey::llm_response(sha256_hex)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The cache's kind (e.g. `llm`).
    pub kind: String,
    /// The entry's id, usually a content hash.
    pub id: String,
}

impl CacheKey {
    /// A cached LLM response, by a hash of the request.
    pub fn llm_response(hash: impl Into<String>) -> Self {
        Self {
            kind: "llm".to_owned(),
            id: hash.into(),
        }
    }
    /// Any cache entry.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

impl RedisKey for CacheKey {
    const NAMESPACE: &'static str = "cache";
    fn write_key(&self, w: &mut KeyWriter) {
        w.segment(self.kind.as_str());
        w.literal(":");
        w.segment(self.id.as_str());
    }
}

/// `<prefix>:breaker:{<name>}` — shared circuit-breaker state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BreakerKey {
    /// The breaker's name.
    pub name: String,
}

impl BreakerKey {
    /// The state key of breaker `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl RedisKey for BreakerKey {
    const NAMESPACE: &'static str = "breaker";
    fn write_key(&self, w: &mut KeyWriter) {
        w.open_hash_tag();
        w.segment(self.name.as_str());
        w.close_hash_tag();
    }
}

/// `<prefix>:idem:<scope>:<key>` — an idempotency record (e.g. per endpoint and request key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// Where the key applies (e.g. an endpoint name).
    pub scope: String,
    /// The client-supplied idempotency key.
    pub key: String,
}

impl IdempotencyKey {
    /// The record of `key` within `scope`.
    pub fn new(scope: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            key: key.into(),
        }
    }
}

impl RedisKey for IdempotencyKey {
    const NAMESPACE: &'static str = "idem";
    fn write_key(&self, w: &mut KeyWriter) {
        w.segment(self.scope.as_str());
        w.literal(":");
        w.segment(self.key.as_str());
    }
}

/// Typed constructors of the built-in key families, e.g. `Keys::lock("goal-42")`.
#[derive(Debug, Clone, Copy)]
pub struct Keys;

impl Keys {
    /// [`RateLimitKey`] per API key.
    pub fn rate_api_key(key: impl Into<String>, window: RateWindow) -> RateLimitKey {
        RateLimitKey::api_key(key, window)
    }
    /// [`RateLimitKey`] per IP.
    pub fn rate_ip(ip: IpAddr, window: RateWindow) -> RateLimitKey {
        RateLimitKey::ip(ip, window)
    }
    /// [`LockKey`].
    pub fn lock(resource: impl Into<String>) -> LockKey {
        LockKey::new(resource)
    }
    /// [`CacheKey`] for an LLM response hash.
    pub fn llm_response(hash: impl Into<String>) -> CacheKey {
        CacheKey::llm_response(hash)
    }
    /// [`BreakerKey`].
    pub fn breaker(name: impl Into<String>) -> BreakerKey {
        BreakerKey::new(name)
    }
    /// [`IdempotencyKey`].
    pub fn idempotency(scope: impl Into<String>, key: impl Into<String>) -> IdempotencyKey {
        IdempotencyKey::new(scope, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(b: &[u8]) -> String {
        let mut s = String::new();
        encode_segment(b, &mut s);
        s
    }

    #[test]
    fn encoding_escapes_everything_dangerous() {
        assert_eq!(enc(b"abc_AZ-09."), "abc_AZ-09.");
        assert_eq!(enc(b"a:b{c}*?[] \n%"), "a%3Ab%7Bc%7D%2A%3F%5B%5D%20%0A%25");
        assert_eq!(enc(b""), "");
        assert_eq!(enc(&[0xff, 0x00]), "%FF%00");
    }

    #[test]
    fn built_in_families_render() {
        let ip: IpAddr = "192.168.1.1".parse().unwrap();
        assert_eq!(
            render_key("nova", &RateLimitKey::ip(ip, RateWindow::Minute)).unwrap(),
            "nova:rate:ip:192.168.1.1:minute"
        );
        let ip6: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            render_key("nova", &RateLimitKey::ip(ip6, RateWindow::Second)).unwrap(),
            "nova:rate:ip:%3A%3A1:second"
        );
        assert_eq!(
            render_key("nova", &LockKey::new("goal_abc")).unwrap(),
            "nova:lock:goal_abc"
        );
        assert_eq!(
            render_key("", &CacheKey::llm_response("ab12")).unwrap(),
            "cache:llm:ab12"
        );
        assert_eq!(
            render_key("a:b", &IdempotencyKey::new("pay", "x y")).unwrap(),
            "a:b:idem:pay:x%20y"
        );
    }

    struct Tagged(&'static str);
    impl RedisKey for Tagged {
        const NAMESPACE: &'static str = "t";
        fn write_key(&self, w: &mut KeyWriter) {
            w.literal("x:");
            w.open_hash_tag();
            w.segment(self.0);
            w.close_hash_tag();
        }
    }

    #[test]
    fn an_empty_hash_tag_is_never_written() {
        assert_eq!(render_key("p", &Tagged("")).unwrap(), "p:t:x:{%}");
        // `%` itself is encoded, so the marker stays unique.
        assert_eq!(render_key("p", &Tagged("%")).unwrap(), "p:t:x:{%25}");
        // A tag left open is closed the same way.
        struct Open;
        impl RedisKey for Open {
            const NAMESPACE: &'static str = "t";
            fn write_key(&self, w: &mut KeyWriter) {
                w.open_hash_tag();
            }
        }
        assert_eq!(render_key("p", &Open).unwrap(), "p:t:{%}");
    }

    #[test]
    fn a_careless_segment_impl_is_encoded_anyway() {
        struct Raw(&'static str);
        impl KeySegment for Raw {
            fn write_segment(&self, out: &mut String) {
                out.push_str(self.0);
            }
        }
        struct K(Raw);
        impl RedisKey for K {
            const NAMESPACE: &'static str = "t";
            fn write_key(&self, w: &mut KeyWriter) {
                w.open_hash_tag();
                w.segment(&self.0);
                w.close_hash_tag();
            }
        }
        assert_eq!(
            render_key("p", &K(Raw("a}{b*"))).unwrap(),
            "p:t:{a%7D%7Bb%2A}"
        );
        assert_eq!(render_key("p", &K(Raw("%4"))).unwrap(), "p:t:{%254}");
        // Output already in encoded form is kept as it is.
        assert_eq!(render_key("p", &K(Raw("a%3A-1"))).unwrap(), "p:t:{a%3A-1}");
    }

    #[test]
    fn colocated_keys_put_the_tag_after_the_prefix() {
        let [l, f] = colocated_keys("nova", &LockKey::new("goal"), ["", ":fence"]).unwrap();
        assert_eq!(
            (l.as_str(), f.as_str()),
            ("nova:{lock:goal}", "nova:{lock:goal}:fence")
        );
        let [l] = colocated_keys("", &LockKey::new(""), [""]).unwrap();
        assert_eq!(l, "{lock:}");
        // A key with its own tag: the first `}` ends the common tag, still shared by the set.
        let [l, f] = colocated_keys("a:b", &Tagged(""), ["", ":fence"]).unwrap();
        assert_eq!(
            (l.as_str(), f.as_str()),
            ("a:b:{t:x:{%}}", "a:b:{t:x:{%}}:fence")
        );
    }

    #[test]
    fn bad_prefixes_are_rejected() {
        for p in ["a:", ":a", "a::b", "a b", "a{b}", "a*"] {
            assert!(validate_prefix(p).is_err(), "{p:?}");
        }
        for p in ["", "nova", "nova:v1", "my-app.prod"] {
            assert!(validate_prefix(p).is_ok(), "{p:?}");
        }
    }
}
