//! "Did you mean …?" for misspelt names, and the list of valid names for error messages.

/// The candidate closest to `input` by edit distance, when it is close enough to be a likely typo
/// (at most a third of the input's length, and at least one edit allowed).
pub(crate) fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let input = input.to_ascii_lowercase();
    let limit = (input.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (levenshtein(&input, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "`a`, `b`, `c`": the valid names, quoted, for an error message.
pub(crate) fn list(candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The message for an unknown `what` called `input`: a suggestion when one is close, then the
/// valid names.
pub(crate) fn unknown(what: &str, input: &str, candidates: &[&str]) -> String {
    let mut message = format!("unknown {what} `{input}`");
    if let Some(near) = did_you_mean(input, candidates) {
        message.push_str(&format!("; did you mean `{near}`?"));
    }
    message.push_str(&format!("\nvalid names: {}", list(candidates)));
    message
}

/// Classic two-row Levenshtein distance over chars.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(levenshtein("patiant", "patient"), 1);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["quick", "standard", "patient", "aggressive"];
        assert_eq!(did_you_mean("patiant", &names), Some("patient"));
        assert_eq!(did_you_mean("Patient", &names), Some("patient"));
        assert_eq!(did_you_mean("agressive", &names), Some("aggressive"));
        assert_eq!(did_you_mean("zzz", &names), None);
    }

    #[test]
    fn message_lists_names() {
        let m = unknown("retry preset", "patiant", &["quick", "patient"]);
        assert_eq!(
            m,
            "unknown retry preset `patiant`; did you mean `patient`?\nvalid names: `quick`, `patient`"
        );
    }
}
