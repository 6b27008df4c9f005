//! Redaction of credentials in free text (check messages are often error texts that quote a
//! connection URL or a connection string).

use std::borrow::Cow;

/// What replaces a secret.
const MASK: &str = "***";

/// Key names whose value is a secret, matched case-insensitively anywhere in the key, so
/// `DB_PASSWORD`, `client_secret` and `x-api-key` are caught too. Over-matching only hides more.
const SECRET_KEYS: [&str; 9] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "credential",
];

/// Keys that are secrets only as a whole word (`pass=`), not as part of one (`bypass=`).
const SECRET_WORDS: [&str; 3] = ["pass", "auth", "key"];

/// Schemes of `Authorization`-style values whose next word is the credential.
const AUTH_SCHEMES: [&str; 2] = ["bearer", "basic"];

/// `text` with the credentials it quotes masked as `***`:
///
/// - the password of a URL (`postgres://admin:s3cret@db` → `postgres://admin:***@db`), or the
///   whole user part when it has no password (`https://ghp_token@host` → `https://***@host`);
/// - the value of a key that names a secret (`password=…`, `DB_PASSWORD: …`, `?token=…`,
///   `api_key='…'`);
/// - the word after `Bearer` / `Basic`.
///
/// Borrows `text` unchanged when there is nothing to mask. Errs on the side of masking: a value
/// that only looks like a credential is masked too.
///
/// ```
/// use resilience::health::redact_secrets;
///
/// assert_eq!(
///     redact_secrets("connect postgres://admin:hunter2@db.internal:5432/app failed"),
///     "connect postgres://admin:***@db.internal:5432/app failed",
/// );
/// assert_eq!(redact_secrets("host=db password=hunter2 user=app"), "host=db password=*** user=app");
/// assert_eq!(redact_secrets("connection refused"), "connection refused");
/// ```
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    let mut spans = Vec::new();
    url_userinfo(text, &mut spans);
    key_values(text, &mut spans);
    auth_schemes(text, &mut spans);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        // Overlapping spans (a URL password that is also `password=`) merge into one mask.
        if end <= at {
            continue;
        }
        let start = start.max(at);
        out.push_str(text.get(at..start).unwrap_or_default());
        if !out.ends_with(MASK) || start > at {
            out.push_str(MASK);
        }
        at = end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    Cow::Owned(out)
}

/// Ends a token: whitespace, quotes and the brackets text puts around a URL.
fn ends_token(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\'' | '`' | '<' | '>' | '(' | ')' | '[' | ']' | ','
        )
}

/// The byte spans of URL user parts to mask.
fn url_userinfo(text: &str, spans: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    while let Some(found) = text.get(from..).and_then(|t| t.find("://")) {
        let start = from + found + 3;
        let token_end = text
            .get(start..)
            .and_then(|t| t.find(ends_token))
            .map_or(text.len(), |i| start + i);
        from = start;
        let Some(token) = text.get(start..token_end) else {
            continue;
        };
        // The user part ends at the last `@` of the token (a password may hold an unescaped
        // `@`); the user name, before the first `:`, cannot contain a path or query character.
        let Some(at) = token.rfind('@') else { continue };
        let userinfo = &token[..at];
        match userinfo.find(':') {
            Some(colon) if !userinfo[..colon].contains(['/', '?', '#']) => {
                spans.push((start + colon + 1, start + at));
            }
            None if !userinfo.contains(['/', '?', '#']) && !userinfo.is_empty() => {
                spans.push((start, start + at));
            }
            _ => {}
        }
        from = token_end;
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// The byte spans of secret values in `key=value` / `key: value` pairs.
fn key_values(text: &str, spans: &mut Vec<(usize, usize)>) {
    for (sep, _) in text.match_indices(['=', ':']) {
        // The key: the run of key characters right before the separator.
        let key_start = text[..sep]
            .char_indices()
            .rev()
            .find(|&(_, c)| !is_key_char(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let key = text[key_start..sep].to_ascii_lowercase();
        let secret = SECRET_KEYS.iter().any(|k| key.contains(k))
            || SECRET_WORDS.iter().any(|w| {
                key.strip_suffix(w)
                    .is_some_and(|k| k.is_empty() || k.ends_with('_'))
            });
        if key.is_empty() || !secret {
            continue;
        }
        let rest = &text[sep + 1..];
        // `scheme://` is a URL, handled above.
        if rest.starts_with("//") {
            continue;
        }
        let value_start = sep + 1 + (rest.len() - rest.trim_start_matches([' ', '\t']).len());
        let value = &text[value_start..];
        let value_end = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..]
                .find(q)
                .map_or(text.len(), |i| value_start + 1 + i + 1),
            Some(_) => value
                .find(|c: char| ends_token(c) || matches!(c, '&' | ';'))
                .map_or(text.len(), |i| value_start + i),
            None => continue,
        };
        if value_end > value_start {
            spans.push((value_start, value_end));
        }
    }
}

/// The byte spans of the credential after `Bearer ` / `Basic `.
fn auth_schemes(text: &str, spans: &mut Vec<(usize, usize)>) {
    let lower = text.to_ascii_lowercase();
    for scheme in AUTH_SCHEMES {
        for (i, _) in lower.match_indices(scheme) {
            let before_ok = lower[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_ascii_alphanumeric());
            let after = i + scheme.len();
            if !before_ok || !lower[after..].starts_with(' ') {
                continue;
            }
            let start =
                after + 1 + (lower[after + 1..].len() - lower[after + 1..].trim_start().len());
            let end = text[start..]
                .find(ends_token)
                .map_or(text.len(), |j| start + j);
            if end > start {
                spans.push((start, end));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_secrets;

    #[test]
    fn masks_every_form_and_leaves_plain_text_alone() {
        let cases = [
            ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
            ("https://ghp_abc@github.com/x", "https://***@github.com/x"),
            ("https://github.com/a@b", "https://github.com/a@b"),
            ("mysql://u:p@ss/w@rd@h/db", "mysql://u:***@h/db"),
            ("see <amqp://guest:guest@mq>", "see <amqp://guest:***@mq>"),
            ("DB_PASSWORD: hunter2 next", "DB_PASSWORD: *** next"),
            ("GET /x?user=a&token=t0k&y=1", "GET /x?user=a&token=***&y=1"),
            ("api_key='a b c' rest", "api_key=*** rest"),
            ("pass=1 bypass=2", "pass=*** bypass=2"),
            ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
            ("password=", "password="),
            ("timed out after 2s", "timed out after 2s"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(redact_secrets(input), want, "{input}");
        }
    }

    #[test]
    fn never_panics_on_multibyte_text() {
        for input in [
            "pässword=ü",
            "é://ü:ö@ä",
            "token:",
            "bearer ",
            "://@",
            "a=:b",
        ] {
            let out = redact_secrets(input);
            assert!(!out.is_empty() || input.is_empty());
        }
    }
}
