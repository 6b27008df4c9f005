//! Key encoding properties: injective, inert (no separator, hash tag, glob character,
//! whitespace or control byte can be injected), empty strings and non-UTF-8 bytes stay distinct.

use proptest::prelude::*;
use resilience::redis::{KeySegment, KeyWriter, RedisKey, encode_segment, render_key};

fn enc(bytes: &[u8]) -> String {
    let mut s = String::new();
    encode_segment(bytes, &mut s);
    s
}

/// The inverse of the encoding: if it always recovers the input, the encoding is injective.
fn decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Two user segments in a template, as generated code would write them.
struct Pair(Vec<u8>, String);
impl RedisKey for Pair {
    const NAMESPACE: &'static str = "ns";
    fn write_key(&self, w: &mut KeyWriter) {
        w.literal("a:");
        w.open_hash_tag();
        w.segment(self.0.as_slice());
        w.close_hash_tag();
        w.literal(":b:");
        w.segment(self.1.as_str());
    }
}

/// Bytes biased towards the characters that matter (about 3 in 4 from the nasty set).
fn nasty_bytes() -> impl Strategy<Value = Vec<u8>> {
    const NASTY: &[u8] = b":{}*?[]% \t\r\n\0\\-_.aZ9";
    prop::collection::vec(any::<u8>(), 0..12).prop_map(|v| {
        v.into_iter()
            .map(|b| {
                if b < 192 {
                    NASTY[b as usize % NASTY.len()]
                } else {
                    b
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100_000))]

    #[test]
    fn segment_encoding_is_injective_and_inert(a in nasty_bytes(), b in nasty_bytes()) {
        let (ea, eb) = (enc(&a), enc(&b));
        let decoded = decode(&ea);
        prop_assert_eq!(decoded.as_deref(), Some(a.as_slice()));
        prop_assert!(ea.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-%".contains(&c)), "{}", ea);
        prop_assert_eq!(a == b, ea == eb);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn whole_keys_are_injective(
        a in nasty_bytes(), b in ".{0,8}", c in nasty_bytes(), d in ".{0,8}",
    ) {
        let k1 = render_key("app", &Pair(a.clone(), b.clone())).unwrap();
        let k2 = render_key("app", &Pair(c.clone(), d.clone())).unwrap();
        prop_assert_eq!(a == c && b == d, k1 == k2);
        // Exactly one hash tag, the one the template asked for; the fixed separators only.
        prop_assert_eq!(k1.matches('{').count(), 1);
        prop_assert_eq!(k1.matches('}').count(), 1);
        prop_assert_eq!(k1.matches(':').count(), 5, "{}", k1);
        prop_assert!(!k1.contains(['*', '?', '[', ']', ' ', '\n', '\r', '\t']), "{}", k1);
        // The tag Redis Cluster hashes is the one the template asked for, and never empty
        // (Redis ignores `{}` and would hash the whole key instead).
        let tag = cluster_hash_tag(&k1);
        prop_assert!(tag.is_some_and(|t| !t.is_empty()), "{}", k1);
        if !a.is_empty() {
            let ea = enc(&a);
            prop_assert_eq!(tag, Some(ea.as_str()));
        }
    }

    #[test]
    fn a_segment_impl_cannot_inject_a_tag_or_separator(raw in ".{0,12}", a in nasty_bytes()) {
        // A hand-written impl that forgets to encode.
        struct Raw(String);
        impl KeySegment for Raw {
            fn write_segment(&self, out: &mut String) {
                out.push_str(&self.0);
            }
        }
        struct K(Vec<u8>, Raw);
        impl RedisKey for K {
            const NAMESPACE: &'static str = "ns";
            fn write_key(&self, w: &mut KeyWriter) {
                w.open_hash_tag();
                w.segment(self.0.as_slice());
                w.close_hash_tag();
                w.literal(":");
                w.segment(&self.1);
            }
        }
        let k = render_key("app", &K(a.clone(), Raw(raw))).unwrap();
        prop_assert_eq!(k.matches('{').count(), 1, "{}", k);
        prop_assert_eq!(k.matches('}').count(), 1, "{}", k);
        prop_assert_eq!(k.matches(':').count(), 3, "{}", k);
        prop_assert!(!k.contains(['*', '?', '[', ']', ' ', '\n', '\r', '\t']), "{}", k);
        prop_assert!(cluster_hash_tag(&k).is_some_and(|t| !t.is_empty()), "{}", k);
    }
}

/// The part of `key` Redis Cluster hashes when it has a hash tag: between the first `{` and the
/// first `}` after it (`Some("")` for `{}`, which Redis ignores).
fn cluster_hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = key[open + 1..].find('}')?;
    Some(&key[open + 1..open + 1 + close])
}

#[test]
fn empty_and_non_utf8_stay_distinct() {
    let keys: Vec<String> = [
        &b""[..],
        b"%",
        b"%25",
        b"\xff",
        b"%FF",
        b"\xc3\xbf",
        b" ",
        b"_",
    ]
    .iter()
    .map(|b| render_key("p", &Pair(b.to_vec(), String::new())).unwrap())
    .collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
}

#[test]
fn newtype_segments_delegate_to_their_field() {
    struct GoalId(String);
    struct Seq(u64);
    resilience::key_segment_newtype!(GoalId, Seq);
    struct GoalKey(GoalId, Seq);
    impl RedisKey for GoalKey {
        const NAMESPACE: &'static str = "sword";
        fn write_key(&self, w: &mut KeyWriter) {
            w.literal("goal:");
            w.segment(&self.0);
            w.literal(":");
            w.segment(&self.1);
        }
    }
    let key = GoalKey(GoalId("goal abc:1".into()), Seq(7));
    assert_eq!(
        render_key("nova", &key).unwrap(),
        "nova:sword:goal:goal%20abc%3A1:7"
    );
    // A namespace that is not `[A-Za-z0-9_.-]` is refused, not rendered.
    struct BadNs;
    impl RedisKey for BadNs {
        const NAMESPACE: &'static str = "a:b";
        fn write_key(&self, _: &mut KeyWriter) {}
    }
    assert!(render_key("nova", &BadNs).is_err());
}
