//! Template checks: placeholders match fields one to one, literal text is inert, segments are
//! separated, the namespace is one segment.

use syn::LitStr;

use super::ast::{Input, Style};
use super::attr::Options;
use crate::args::Errors;
use crate::suggest;

/// One piece of a checked template.
pub(crate) enum Piece {
    /// Template text, passed to `KeyWriter::literal`.
    Literal(String),
    /// A field, by index into `Input::fields`; `hash_tag` wraps it in `{...}`.
    Field { index: usize, hash_tag: bool },
}

/// Characters allowed in literal template text and in the namespace (no separators that
/// segments could forge, no hash tag braces, no glob characters).
fn inert(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

pub(crate) fn check(input: &Input<'_>, options: &Options) -> syn::Result<Vec<Piece>> {
    let mut errors = Errors::default();

    let namespace = options.namespace.value();
    if namespace.is_empty() {
        errors.at(options.namespace.span(), "the namespace must not be empty");
    } else if let Some(c) = namespace.chars().find(|c| !inert(*c) || *c == ':') {
        errors.at(
            options.namespace.span(),
            format!(
                "the namespace is one key segment: {c:?} is not allowed (use letters, digits, `_`, `.`, `-`)"
            ),
        );
    }

    let (text, span) = match &options.template {
        Some(lit) => (lit.value(), lit.span()),
        None => {
            if input.fields.is_empty() {
                errors.at(
                    input.ident.span(),
                    "a struct without fields needs `template = \"...\"` with the key's text",
                );
                errors.check()?;
            }
            // The default template: every field, in order, separated by `:`.
            let text = input
                .fields
                .iter()
                .map(|f| format!("{{{}}}", f.name))
                .collect::<Vec<_>>()
                .join(":");
            (text, input.ident.span())
        }
    };
    if text.is_empty() {
        errors.at(
            span,
            "the template must not be empty; write the key's text with `{field}` placeholders, like \"goal:{goal_id}\"",
        );
        errors.check()?;
    }

    // Fields named by some placeholder: a "did you mean" never proposes one of them (the
    // template has it already).
    let placeholders = placeholder_names(&text);
    let unplaced: Vec<&str> = input
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| !placeholders.contains(n))
        .collect();

    let mut pieces = Vec::new();
    let mut rest = text.as_str();
    let mut literal = String::new();
    let mut used = vec![false; input.fields.len()];
    let names: Vec<&str> = input.fields.iter().map(|f| f.name.as_str()).collect();
    let mut last_was_field = false;
    let mut bad_char_reported = false;
    let mut placeholder_errors = false;
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            // A placeholder ends at the next `}`; another `{` first (or none) leaves it unclosed.
            // One error says it all: what follows cannot be read as placeholders, so neither
            // "unknown placeholder" nor "unused field" is reported after it.
            let Some(end) = placeholder_end(rest) else {
                errors.at(span, format!("unclosed `{{` in the template {text:?}"));
                placeholder_errors = true;
                break;
            };
            let name = &rest[1..end];
            rest = &rest[end + 1..];
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            } else if last_was_field {
                errors.at(
                    span,
                    format!(
                        "placeholders must be separated by literal text (such as `:`) so the key stays unambiguous; found `{{{name}}}` right after another placeholder"
                    ),
                );
            }
            last_was_field = true;
            if name.is_empty() {
                errors.at(
                    span,
                    "empty placeholder `{}` in the template; name a field, like `{id}`",
                );
                continue;
            }
            let named = !name.chars().all(|c| c.is_ascii_digit());
            if input.style == Style::Tuple && named {
                errors.at(
                    span,
                    format!(
                        "placeholder `{{{name}}}` names a field, but this is a tuple struct: refer to its fields by position, like `{{0}}`"
                    ),
                );
                placeholder_errors = true;
                continue;
            }
            match input.fields.iter().position(|f| f.name == name) {
                Some(index) if used[index] => {
                    errors.at(
                        span,
                        format!(
                            "placeholder `{{{name}}}` appears twice in the template; each field is written into the key once"
                        ),
                    );
                }
                Some(index) => {
                    used[index] = true;
                    let hash_tag = options.hash_tag.as_ref().is_some_and(|h| h.value() == name);
                    pieces.push(Piece::Field { index, hash_tag });
                }
                None => {
                    let mut message = format!(
                        "placeholder `{{{name}}}` does not match a field of `{}`",
                        input.ident
                    );
                    if let Some(near) = suggest::did_you_mean(name, &unplaced) {
                        message.push_str(&format!("; did you mean `{{{near}}}`?"));
                    }
                    if names.is_empty() {
                        message.push_str("\nthe struct has no fields");
                    } else {
                        message.push_str(&format!("\nfields: {}", suggest::list(&names)));
                    }
                    errors.at(span, message);
                    placeholder_errors = true;
                }
            }
        } else if c == '}' {
            errors.at(span, format!("unmatched `}}` in the template {text:?}"));
            placeholder_errors = true;
            break;
        } else {
            if !inert(c) && !bad_char_reported {
                errors.at(
                    span,
                    format!(
                        "{c:?} is not allowed in template text (use letters, digits, `_`, `.`, `:`, `-`; values go in `{{field}}` placeholders)"
                    ),
                );
                bad_char_reported = true;
            }
            literal.push(c);
            last_was_field = false;
            rest = &rest[c.len_utf8()..];
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }

    // After a misspelt placeholder, "unused field" would only repeat the same mistake.
    for (field, used) in input.fields.iter().zip(&used) {
        if !used && !placeholder_errors {
            errors.at(
                field.span,
                format!(
                    "field `{}` is not used in the key template {text:?}; every field must be part of the key (add `{{{}}}`)",
                    field.name, field.name
                ),
            );
        }
    }

    if let Some(tag) = &options.hash_tag {
        let placed: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| placeholders.contains(n))
            .collect();
        check_hash_tag(tag, &names, &placed, &pieces, input, &mut errors);
    }
    errors.finish()?;
    Ok(pieces)
}

/// Where the placeholder at the start of `rest` (a `{`) closes: the next `}`, unless another `{`
/// comes first.
fn placeholder_end(rest: &str) -> Option<usize> {
    let i = rest.get(1..)?.find(['{', '}'])? + 1;
    (rest.as_bytes().get(i) == Some(&b'}')).then_some(i)
}

/// The names inside well-formed placeholders of `text`.
fn placeholder_names(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open..];
        match placeholder_end(rest) {
            Some(end) => {
                names.push(&rest[1..end]);
                rest = &rest[end + 1..];
            }
            None => rest = &rest[1..],
        }
    }
    names
}

/// `placed`: the fields the template names; the tag may only be one of them, so only they are
/// suggested.
fn check_hash_tag(
    tag: &LitStr,
    names: &[&str],
    placed: &[&str],
    pieces: &[Piece],
    input: &Input<'_>,
    errors: &mut Errors,
) {
    let value = tag.value();
    let in_template = pieces
        .iter()
        .any(|p| matches!(p, Piece::Field { index, .. } if input.fields[*index].name == value));
    if !in_template && names.contains(&value.as_str()) {
        errors.at(
            tag.span(),
            format!("`hash_tag` names `{value}`, which is not a placeholder in the template"),
        );
    } else if !in_template {
        let mut message = format!(
            "`hash_tag` names `{value}`, which is not a field of `{}`",
            input.ident
        );
        if let Some(near) = suggest::did_you_mean(&value, placed) {
            message.push_str(&format!("; did you mean `{near}`?"));
        }
        message.push_str(&format!("\nfields: {}", suggest::list(names)));
        errors.at(tag.span(), message);
    }
}
