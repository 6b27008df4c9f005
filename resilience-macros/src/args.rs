//! Option parsing in two stages, as the best macro crates do it: first every `name = value` is
//! parsed and type-checked on its own, keeping its spans ([`parse`]); then each attribute's build
//! step checks the rules between options and reports on the offending option's span.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitInt, LitStr, Token};

use crate::suggest;

/// Collects every error of one expansion, so the user sees all of them at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Records one more error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Records an error at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// `Err` with everything recorded so far (emptying the collector), or `Ok(())`.
    pub(crate) fn check(&mut self) -> syn::Result<()> {
        self.0.take().map_or(Ok(()), Err)
    }

    /// `Err` with everything recorded, or `Ok(())`.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// One option as written: `name = value`, or a bare value in the positional slot.
struct RawArg {
    name: Option<Ident>,
    value: Expr,
}

struct RawArgs(Vec<RawArg>);

impl Parse for RawArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Vec::new();
        while !input.is_empty() {
            // `Ident::parse_any` also accepts keywords, so `crate = "..."` parses.
            let arg = if input.peek(Ident::peek_any) && input.peek2(Token![=]) {
                let name = Ident::parse_any(input)?;
                input.parse::<Token![=]>()?;
                let value = input.parse()?;
                RawArg {
                    name: Some(name),
                    value,
                }
            } else {
                RawArg {
                    name: None,
                    value: input.parse()?,
                }
            };
            args.push(arg);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(Self(args))
    }
}

/// The type of value an option takes.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A string literal.
    Str,
    /// A non-negative integer literal.
    Int,
    /// A string literal naming one of `names` (a `what`, e.g. "retry preset").
    Name {
        what: &'static str,
        names: &'static [&'static str],
    },
    /// A name from `names`, or an integer literal (possibly negative).
    IntOrName {
        what: &'static str,
        names: &'static [&'static str],
    },
    /// A name from `names`, or a non-negative integer literal.
    UIntOrName {
        what: &'static str,
        names: &'static [&'static str],
    },
    /// A path to a function, or a closure.
    Callable,
    /// Any expression, evaluated in the function's scope.
    Expr,
    /// A string literal holding a path to the runtime crate (`crate = "..."`).
    Crate,
}

/// One option an attribute accepts.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
}

/// A type-checked option value.
pub(crate) enum Value {
    Str(LitStr),
    Int(u64, LitInt),
    SignedInt(i64, Span),
    Name(&'static str, LitStr),
    Expr(Expr),
    Crate(syn::Path),
}

/// One parsed option: its name's span (or the value's, when positional) and its value.
pub(crate) struct Opt {
    pub(crate) name: &'static str,
    pub(crate) key_span: Span,
    pub(crate) value: Value,
}

/// The options of one attribute, after the first stage.
pub(crate) struct Options {
    opts: Vec<Opt>,
}

impl Options {
    /// The option called `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&Opt> {
        self.opts.iter().find(|o| o.name == name)
    }

    /// An integer option's value and span.
    pub(crate) fn int(&self, name: &str) -> Option<(u64, Span)> {
        self.get(name).and_then(|o| match &o.value {
            Value::Int(v, lit) => Some((*v, lit.span())),
            _ => None,
        })
    }

    /// A string option.
    pub(crate) fn str(&self, name: &str) -> Option<&LitStr> {
        self.get(name).and_then(|o| match &o.value {
            Value::Str(lit) => Some(lit),
            _ => None,
        })
    }

    /// A name option: the canonical name and the literal as written.
    pub(crate) fn name(&self, name: &str) -> Option<(&'static str, &LitStr)> {
        self.get(name).and_then(|o| match &o.value {
            Value::Name(n, lit) => Some((*n, lit)),
            _ => None,
        })
    }

    /// An expression option.
    pub(crate) fn expr(&self, name: &str) -> Option<&Expr> {
        self.get(name).and_then(|o| match &o.value {
            Value::Expr(e) => Some(e),
            _ => None,
        })
    }

    /// The runtime crate's path: `crate = "..."`, or `::resilience`.
    pub(crate) fn krate(&self) -> syn::Path {
        match self.get("crate").map(|o| &o.value) {
            Some(Value::Crate(path)) => path.clone(),
            _ => syn::parse_quote!(::resilience),
        }
    }

    /// Reports `name` as conflicting with `other` when both are given, on `name`'s span.
    pub(crate) fn conflict(&self, errors: &mut Errors, name: &str, other: &str, why: &str) {
        if let (Some(a), Some(_)) = (self.get(name), self.get(other)) {
            errors.at(
                a.key_span,
                format!("`{name}` cannot be combined with `{other}`: {why}"),
            );
        }
    }

    /// Reports an integer option below `min`, on its value.
    pub(crate) fn at_least(&self, errors: &mut Errors, name: &str, min: u64) {
        if let Some((v, span)) = self.int(name)
            && v < min
        {
            errors.at(span, format!("`{name}` must be at least {min}, got {v}"));
        }
    }
}

/// Stage one: parses `tokens` (the attribute's arguments) against `specs`. `attr` names the
/// attribute in messages (e.g. "#[retry]"); `positional` is the option a leading bare value
/// stands for, if the attribute has one.
pub(crate) fn parse(
    tokens: TokenStream,
    attr: &str,
    specs: &[Spec],
    positional: Option<&'static str>,
) -> syn::Result<Options> {
    let raw = RawArgs::parse.parse2(tokens)?;
    let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
    // Options written correctly somewhere in the attribute: a misspelt one is not "meant" to be
    // one of them, so they are left out of its suggestions.
    let mut given: Vec<&str> = raw
        .0
        .iter()
        .filter_map(|a| a.name.as_ref())
        .filter_map(|n| names.iter().copied().find(|s| n.unraw() == *s))
        .collect();
    if let (Some(p), Some(RawArg { name: None, .. })) = (positional, raw.0.first()) {
        given.push(p);
    }
    let mut errors = Errors::default();
    let mut opts: Vec<Opt> = Vec::new();
    for (index, arg) in raw.0.into_iter().enumerate() {
        let (spec, key_span) = match &arg.name {
            Some(name) => {
                let key = name.unraw().to_string();
                match specs.iter().find(|s| s.name == key) {
                    Some(spec) => (spec, name.span()),
                    None => {
                        let context = format!(" for `{attr}`");
                        let message = suggest::unknown_in("option", &key, &context, &names, &given);
                        errors.at(name.span(), message);
                        continue;
                    }
                }
            }
            None => match positional {
                Some(p) if index == 0 => match specs.iter().find(|s| s.name == p) {
                    Some(spec) => (spec, arg.value.span()),
                    None => continue,
                },
                _ => {
                    let hint = match positional {
                        Some(p) => format!(
                            "expected `name = value`; only the first argument of `{attr}` may be a bare value (the {p})"
                        ),
                        None => format!(
                            "expected `name = value`; `{attr}` takes named options: {}",
                            suggest::list(&names)
                        ),
                    };
                    errors.at(arg.value.span(), hint);
                    continue;
                }
            },
        };
        if let Some(first) = opts.iter().find(|o| o.name == spec.name) {
            let mut error = syn::Error::new(
                key_span,
                format!("duplicate option `{}` in `{attr}`", spec.name),
            );
            error.combine(syn::Error::new(
                first.key_span,
                format!("`{}` first given here", spec.name),
            ));
            errors.push(error);
            continue;
        }
        match check_value(spec, arg.value) {
            Ok(value) => opts.push(Opt {
                name: spec.name,
                key_span,
                value,
            }),
            Err(error) => errors.push(error),
        }
    }
    errors.finish()?;
    Ok(Options { opts })
}

/// The literal inside `expr`, looking through invisible groups (from `macro_rules!` callers).
fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(group) => literal(&group.expr),
        Expr::Paren(paren) => literal(&paren.expr),
        _ => None,
    }
}

/// What a value looks like, for "expects X, found Y" messages.
fn describe(expr: &Expr) -> &'static str {
    match literal(expr) {
        Some(Lit::Str(_)) => "a string",
        Some(Lit::Int(_)) => "an integer",
        Some(Lit::Float(_)) => "a float",
        Some(Lit::Bool(_)) => "a bool",
        Some(_) => "a literal",
        None => match expr {
            Expr::Path(_) => "a path",
            Expr::Closure(_) => "a closure",
            Expr::Unary(_) => "an expression",
            _ => "an expression",
        },
    }
}

/// The text of a bare path written where a string literal was expected (`preset = patient`), to
/// show it quoted.
fn bare_path(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => Some(
            quote::ToTokens::to_token_stream(&p.path)
                .to_string()
                .replace(' ', ""),
        ),
        Expr::Group(group) => bare_path(&group.expr),
        _ => None,
    }
}

/// The example for a name option: the bare name quoted when it is (close to) a valid one, e.g.
/// `preset = patient` → `"patient"`; otherwise the first valid name.
fn name_example(expr: &Expr, names: &[&str]) -> String {
    let near = bare_path(expr).and_then(|bare| {
        names
            .iter()
            .find(|n| **n == bare)
            .copied()
            .or_else(|| suggest::did_you_mean(&bare, names))
    });
    format!(
        "\"{}\"",
        near.or(names.first().copied()).unwrap_or_default()
    )
}

/// The name in `lit` if it is one of `names`, else "unknown `what`" with a suggestion.
fn pick_name(lit: &LitStr, what: &str, names: &'static [&'static str]) -> syn::Result<Value> {
    let text = lit.value();
    match names.iter().find(|n| **n == text) {
        Some(n) => Ok(Value::Name(n, lit.clone())),
        None => Err(syn::Error::new(
            lit.span(),
            suggest::unknown(what, &text, names),
        )),
    }
}

fn check_value(spec: &Spec, expr: Expr) -> syn::Result<Value> {
    let name = spec.name;
    let wrong = |expected: &str, example: &str| {
        syn::Error::new(
            expr.span(),
            format!(
                "`{name}` expects {expected}, found {}; write it like `{name} = {example}`",
                describe(&expr)
            ),
        )
    };
    match spec.kind {
        Kind::Str => match literal(&expr) {
            Some(Lit::Str(lit)) => Ok(Value::Str(lit.clone())),
            _ => {
                let example =
                    bare_path(&expr).map_or_else(|| "\"...\"".to_owned(), |b| format!("\"{b}\""));
                Err(wrong("a string literal", &example))
            }
        },
        Kind::Int => match literal(&expr) {
            Some(Lit::Int(lit)) => Ok(Value::Int(lit.base10_parse::<u64>()?, lit.clone())),
            _ if matches!(&expr, Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_))) => Err(
                syn::Error::new(expr.span(), format!("`{name}` must not be negative")),
            ),
            _ => Err(wrong("an integer literal", "5")),
        },
        Kind::Name { what, names } => match literal(&expr) {
            Some(Lit::Str(lit)) => pick_name(lit, what, names),
            _ => Err(wrong(
                &format!("a string naming a {what} ({})", suggest::list(names)),
                &name_example(&expr, names),
            )),
        },
        Kind::IntOrName { what, names } => {
            let negative = matches!(&expr, Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)));
            let inner = match &expr {
                Expr::Unary(u) if negative => &*u.expr,
                e => e,
            };
            match literal(inner) {
                Some(Lit::Str(lit)) if !negative => pick_name(lit, what, names),
                Some(Lit::Int(lit)) => {
                    let v = lit.base10_parse::<i64>()?;
                    let v = if negative { -v } else { v };
                    if i32::try_from(v).is_err() {
                        return Err(syn::Error::new(
                            expr.span(),
                            format!("`{name}` must fit in an i32, got {v}"),
                        ));
                    }
                    Ok(Value::SignedInt(v, expr.span()))
                }
                _ => Err(wrong(
                    &format!("a {what} name ({}) or an integer", suggest::list(names)),
                    &name_example(&expr, names),
                )),
            }
        }
        Kind::UIntOrName { what, names } => match literal(&expr) {
            Some(Lit::Str(lit)) => pick_name(lit, what, names),
            Some(Lit::Int(lit)) => Ok(Value::Int(lit.base10_parse::<u64>()?, lit.clone())),
            _ if matches!(&expr, Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_))) => Err(
                syn::Error::new(expr.span(), format!("`{name}` must not be negative")),
            ),
            _ => Err(wrong(
                &format!("a {what} name ({}) or an integer", suggest::list(names)),
                &name_example(&expr, names),
            )),
        },
        Kind::Callable => match &expr {
            Expr::Path(_) | Expr::Closure(_) => Ok(Value::Expr(expr)),
            _ => Err(wrong(
                "a path to a function `fn(&E) -> bool` or a closure",
                "path::to::predicate",
            )),
        },
        Kind::Expr => Ok(Value::Expr(expr)),
        Kind::Crate => match literal(&expr) {
            Some(Lit::Str(lit)) => {
                let path = lit.parse::<syn::Path>().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        format!(
                            "`crate` expects a path like \"::resilience\", got {:?}",
                            lit.value()
                        ),
                    )
                })?;
                Ok(Value::Crate(path))
            }
            _ => {
                let example = bare_path(&expr)
                    .map_or_else(|| "\"::my_resilience\"".to_owned(), |b| format!("\"{b}\""));
                Err(wrong("a string holding a path", &example))
            }
        },
    }
}
