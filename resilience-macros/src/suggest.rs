//! "Did you mean …?" for misspelt names, and the list of valid names for error messages.

/// The candidate closest to `input` by edit distance, when it is close enough to be a likely typo
/// (at most a third of the input's length, and at least one edit allowed).
pub(crate) fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let input = input.to_ascii_lowercase();
    let limit = (input.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (distance(&input, c), *c))
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
    unknown_in(what, input, "", candidates, &[])
}

/// [`unknown`], with `context` after the name (e.g. " for `#[retry]`"), never proposing a name
/// in `taken` (already used): when the closest name is taken, the message says so instead.
pub(crate) fn unknown_in(
    what: &str,
    input: &str,
    context: &str,
    candidates: &[&str],
    taken: &[&str],
) -> String {
    let mut message = format!("unknown {what} `{input}`{context}");
    let free: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| !taken.contains(c))
        .collect();
    match (did_you_mean(input, &free), did_you_mean(input, candidates)) {
        (Some(near), _) => message.push_str(&format!("; did you mean `{near}`?")),
        (None, Some(near)) => message.push_str(&format!("; `{near}` is already given")),
        (None, None) => {}
    }
    message.push_str(&format!("\nvalid names: {}", list(candidates)));
    message
}

/// Edit distance counting an adjacent transposition as one edit (optimal string alignment), so
/// `nmae` is one edit from `name`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance() {
        assert_eq!(distance("patiant", "patient"), 1);
        assert_eq!(distance("nmae", "name"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["quick", "standard", "patient", "aggressive"];
        assert_eq!(did_you_mean("patiant", &names), Some("patient"));
        assert_eq!(did_you_mean("Patient", &names), Some("patient"));
        assert_eq!(did_you_mean("agressive", &names), Some("aggressive"));
        assert_eq!(did_you_mean("zzz", &names), None);
        assert_eq!(
            did_you_mean("hihg", &["critical", "high", "normal"]),
            Some("high")
        );
    }

    #[test]
    fn never_proposes_a_taken_name() {
        let names = ["max_attempts", "max_delay_ms", "backoff"];
        let m = unknown_in("option", "max_attempt", "", &names, &["max_attempts"]);
        assert!(
            m.starts_with("unknown option `max_attempt`; `max_attempts` is already given"),
            "{m}"
        );
        let m = unknown_in("option", "max_dlay_ms", "", &names, &["max_attempts"]);
        assert!(m.contains("did you mean `max_delay_ms`?"), "{m}");
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
