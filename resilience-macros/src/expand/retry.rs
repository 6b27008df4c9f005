//! `#[retry]`, `#[retry(preset = "...")]`, `#[retry(max_attempts = 5, backoff = "linear", ...)]`.
//!
//! The body runs again on each attempt, inline in a loop: every argument is re-bound per attempt
//! by cloning it (the clone is spanned on the argument's type, so a non-`Clone` argument errors
//! there; `&mut T` arguments are re-borrowed instead), and each attempt is a plain `async { }`
//! block (or an immediately called closure for a sync fn) so `&self` / `&mut self` are re-borrowed
//! per attempt. By-value `self` and destructuring patterns are rejected.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, FnArg, Pat, Signature, Type};

use super::{
    Layer, awaited, fn_path, inner_body, private, private_call, require_result, respan, return_span,
};
use crate::args::{self, Errors, Kind, Spec};
use crate::presets;

const SPECS: &[Spec] = &[
    Spec {
        name: "preset",
        kind: Kind::Name {
            what: "retry preset",
            names: presets::RETRY,
        },
    },
    Spec {
        name: "service",
        kind: Kind::Name {
            what: "retry service",
            names: presets::RETRY_SERVICE,
        },
    },
    Spec {
        name: "max_attempts",
        kind: Kind::Int,
    },
    Spec {
        name: "initial_delay_ms",
        kind: Kind::Int,
    },
    Spec {
        name: "max_delay_ms",
        kind: Kind::Int,
    },
    Spec {
        name: "backoff",
        kind: Kind::Name {
            what: "backoff",
            names: presets::BACKOFF,
        },
    },
    Spec {
        name: "total_timeout_ms",
        kind: Kind::Int,
    },
    Spec {
        name: "attempt_timeout_ms",
        kind: Kind::Int,
    },
    Spec {
        name: "retry_if",
        kind: Kind::Callable,
    },
    Spec {
        name: "on_retry",
        kind: Kind::Callable,
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
    },
];

/// The options a preset fixes; giving one of them with `preset` is an error.
const NUMBERS: &[&str] = &[
    "max_attempts",
    "initial_delay_ms",
    "max_delay_ms",
    "backoff",
    "total_timeout_ms",
];

/// The default policy's delays (the runtime's `standard` preset); `tests/macros.rs` checks that
/// the boundaries these allow build at run time.
const DEFAULT_INITIAL_DELAY_MS: u64 = 1_000;
const DEFAULT_MAX_DELAY_MS: u64 = 10_000;

/// How one argument is re-bound per attempt.
enum Rebind {
    Clone {
        ident: syn::Ident,
        mutable: bool,
        ty: Box<Type>,
    },
    Reborrow {
        ident: syn::Ident,
        span: Span,
    },
}

pub(super) struct Config {
    pub(super) krate: syn::Path,
    source: TokenStream,
    attempt_timeout_ms: Option<u64>,
    retry_if: Option<syn::Expr>,
    on_retry: Option<syn::Expr>,
    rebinds: Vec<Rebind>,
}

impl Config {
    pub(super) fn new(args: TokenStream, sig: &Signature) -> syn::Result<Self> {
        let layer = Layer::Retry;
        let opts = args::parse(args, layer.attr(), SPECS, None)?;
        let mut errors = Errors::default();
        require_result(sig, layer, &mut errors);
        for n in NUMBERS {
            opts.conflict(
                &mut errors,
                n,
                "preset",
                "a preset fixes the numbers; give either `preset` or the numbers",
            );
            opts.conflict(
                &mut errors,
                n,
                "service",
                "a service preset fixes the numbers; give either `service` or the numbers",
            );
        }
        opts.conflict(
            &mut errors,
            "service",
            "preset",
            "both name a policy; give one of them",
        );
        for n in [
            "max_attempts",
            "total_timeout_ms",
            "attempt_timeout_ms",
            "max_delay_ms",
        ] {
            opts.at_least(&mut errors, n, 1);
        }
        if let (Some((initial, _)), Some((max, span))) =
            (opts.int("initial_delay_ms"), opts.int("max_delay_ms"))
            && max < initial
        {
            errors.at(
                span,
                format!("`max_delay_ms` ({max}) must not be below `initial_delay_ms` ({initial})"),
            );
        }
        // The numbers not given keep the default policy's (the `standard` preset: 1 s initial,
        // 10 s max delay), which the runtime's builder checks together with the given ones.
        match (opts.int("initial_delay_ms"), opts.int("max_delay_ms")) {
            (Some((initial, span)), None) if initial > DEFAULT_MAX_DELAY_MS => errors.at(
                span,
                format!(
                    "`initial_delay_ms` ({initial}) is above the default `max_delay_ms` ({DEFAULT_MAX_DELAY_MS}); give `max_delay_ms` too"
                ),
            ),
            (None, Some((max, span))) if max < DEFAULT_INITIAL_DELAY_MS => errors.at(
                span,
                format!(
                    "`max_delay_ms` ({max}) is below the default `initial_delay_ms` ({DEFAULT_INITIAL_DELAY_MS}); give `initial_delay_ms` too"
                ),
            ),
            _ => {}
        }
        let rebinds = rebinds(sig, &mut errors);
        errors.finish()?;

        let krate = opts.krate();
        let source = match opts.name("preset") {
            None if opts.name("service").is_some() => service_source(&opts, &krate),
            Some((name, lit)) => {
                let ident = format_ident!("{}", name.replace('-', "_"), span = lit.span());
                let p = private(&krate, lit.span());
                quote_spanned!(lit.span()=> #krate::__private::RetrySource::Preset(#p::presets::retry::#ident))
            }
            None if NUMBERS.iter().all(|n| opts.get(n).is_none()) => {
                quote!(#krate::__private::RetrySource::Default)
            }
            None => {
                let some = |n: &str| match opts.int(n) {
                    Some((v, span)) => quote_spanned!(span=> ::core::option::Option::Some(#v)),
                    None => quote!(::core::option::Option::None),
                };
                let max_attempts = match opts.int("max_attempts") {
                    Some((v, span)) => {
                        let v = u32::try_from(v).unwrap_or(u32::MAX);
                        quote_spanned!(span=> ::core::option::Option::Some(#v))
                    }
                    None => quote!(::core::option::Option::None),
                };
                let initial = some("initial_delay_ms");
                let max_delay = some("max_delay_ms");
                let total = some("total_timeout_ms");
                let backoff = match opts.name("backoff") {
                    Some((name, lit)) => {
                        let ident = format_ident!("{}", name.replace('-', "_"), span = lit.span());
                        let p = private(&krate, lit.span());
                        quote_spanned!(lit.span()=> ::core::option::Option::Some(#p::presets::backoff::#ident))
                    }
                    None => quote!(::core::option::Option::None),
                };
                quote! {
                    #krate::__private::RetrySource::Custom(#krate::__private::RetrySpec {
                        max_attempts: #max_attempts,
                        initial_delay_ms: #initial,
                        max_delay_ms: #max_delay,
                        backoff: #backoff,
                        total_timeout_ms: #total,
                    })
                }
            }
        };
        if let Some((v, span)) = opts.int("max_attempts")
            && u32::try_from(v).is_err()
        {
            return Err(syn::Error::new(span, "`max_attempts` must fit in a u32"));
        }
        Ok(Self {
            krate,
            source,
            attempt_timeout_ms: opts.int("attempt_timeout_ms").map(|(v, _)| v),
            retry_if: opts.expr("retry_if").cloned(),
            on_retry: opts.expr("on_retry").cloned(),
            rebinds,
        })
    }

    pub(super) fn wrap(&self, sig: &Signature, body: Block) -> TokenStream {
        let krate = &self.krate;
        let source = &self.source;
        let p = private(krate, return_span(sig));
        // Only arguments the body mentions are re-bound per attempt: one used only by
        // `on_retry` / `retry_if` (or not at all) is neither cloned nor left unused.
        let body_tokens = quote!(#body);
        let rebinds = self.rebinds.iter().filter(|r| {
            let ident = match r {
                Rebind::Clone { ident, .. } | Rebind::Reborrow { ident, .. } => ident,
            };
            mentions(body_tokens.clone(), ident)
        });
        let rebinds = rebinds.map(|r| match r {
            Rebind::Clone { ident, mutable, ty } => {
                let m = mutable.then(|| quote!(mut));
                let pk = private(krate, ty.span());
                quote_spanned!(ty.span()=> let #m #ident = #pk::clone_arg(&#ident);)
            }
            Rebind::Reborrow { ident, span } => {
                quote_spanned!(*span=> let #ident = &mut *#ident;)
            }
        });
        let body = inner_body(sig, &body);
        let asyncness = sig.asyncness.is_some();
        // Each attempt runs through the sequence, which starts the total deadline with the first.
        let attempt = if asyncness {
            // Spanned on the return type: rustc blames this argument for an unmet bound on its
            // output (the error type's conversions).
            let attempt = quote_spanned!(return_span(sig)=> async { #body });
            if self.attempt_timeout_ms.is_some() {
                let timed = private_call(
                    krate,
                    sig,
                    "timed_attempt",
                    quote!(&mut __resilience_retry, #attempt),
                );
                awaited(sig, timed)
            } else {
                quote!(#p::attempt(&mut __resilience_retry, #attempt).await)
            }
        } else {
            quote!(#p::blocking_attempt(&mut __resilience_retry, || { #body }))
        };
        let step_name = match (asyncness, self.retry_if.is_some()) {
            (true, false) => "retry_step",
            (true, true) => "retry_step_if",
            (false, false) => "retry_step_blocking",
            (false, true) => "retry_step_blocking_if",
        };
        let on_retry = match &self.on_retry {
            Some(expr) => quote!(#expr),
            None => respan(quote!(#krate::__private::no_observer), return_span(sig)),
        };
        // Spanned on the return type, as the attempt above: rustc may blame any of these.
        let state =
            quote_spanned!(return_span(sig)=> &mut __resilience_retry, __resilience_outcome);
        let args = match &self.retry_if {
            Some(expr) => quote!(#state, #expr, #on_retry),
            None => quote!(#state, #on_retry),
        };
        let step = private_call(krate, sig, step_name, args);
        let step = if asyncness { awaited(sig, step) } else { step };
        let attempt_timeout = match self.attempt_timeout_ms {
            Some(ms) => quote!(::core::option::Option::Some(#ms)),
            None => quote!(::core::option::Option::None),
        };
        let step_match = quote_spanned! {return_span(sig)=>
            match #step {
                ::core::ops::ControlFlow::Break(__resilience_done) => break __resilience_done,
                ::core::ops::ControlFlow::Continue(()) => {}
            }
        };
        let name = fn_path(sig);
        quote! {
            static __RESILIENCE_POLICY: #krate::__private::RetryCell =
                #krate::__private::RetryCell::new(#source, #attempt_timeout).named(#name);
            let mut __resilience_retry = #krate::__private::RetryLoop::new(__RESILIENCE_POLICY.get());
            loop {
                let __resilience_outcome = {
                    #(#rebinds)*
                    #attempt
                };
                #step_match
            }
        }
    }

    /// `mut` on an argument would now be unused (each attempt binds its own copy): drop it from
    /// the signature; the per-attempt binding keeps it.
    pub(super) fn adjust_signature(sig: &mut Signature) {
        for arg in &mut sig.inputs {
            if let FnArg::Typed(pt) = arg
                && let Pat::Ident(pi) = &mut *pt.pat
            {
                pi.mutability = None;
            }
        }
    }
}

/// `#[retry(service = "...")]`: the runtime's service preset, by a path spanned on the literal.
fn service_source(opts: &args::Options, krate: &syn::Path) -> TokenStream {
    let Some((name, lit)) = opts.name("service") else {
        return quote!(#krate::__private::RetrySource::Default);
    };
    let ident = format_ident!("{}", name, span = lit.span());
    let p = private(krate, lit.span());
    quote_spanned!(lit.span()=> #krate::__private::RetrySource::Service(#p::presets::retry_service::#ident))
}

/// Whether `tokens` mention `ident`: as an identifier, or inside a literal (a format string's
/// `{ident}` names it without an identifier token). Erring towards "mentioned" only costs a clone.
pub(super) fn mentions(tokens: TokenStream, ident: &syn::Ident) -> bool {
    let name = ident.to_string();
    tokens.into_iter().any(|tree| match tree {
        proc_macro2::TokenTree::Ident(i) => i == *ident,
        proc_macro2::TokenTree::Group(g) => mentions(g.stream(), ident),
        proc_macro2::TokenTree::Literal(l) => l.to_string().contains(&name),
        proc_macro2::TokenTree::Punct(_) => false,
    })
}

fn rebinds(sig: &Signature, errors: &mut Errors) -> Vec<Rebind> {
    let mut out = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => {
                let by_ref = r.reference.is_some() || matches!(&*r.ty, Type::Reference(_));
                if !by_ref {
                    errors.at(
                        r.self_token.span,
                        "`#[retry]` runs the body once per attempt, so it cannot take `self` by value; take `&self` or `&mut self`",
                    );
                }
            }
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                    match &*pt.ty {
                        Type::Reference(r) if r.mutability.is_some() => out.push(Rebind::Reborrow {
                            ident: pi.ident.clone(),
                            span: pt.ty.span(),
                        }),
                        ty => out.push(Rebind::Clone {
                            ident: pi.ident.clone(),
                            mutable: pi.mutability.is_some(),
                            ty: Box::new(ty.clone()),
                        }),
                    }
                }
                Pat::Wild(_) => {}
                pat => errors.at(
                    pat.span(),
                    "`#[retry]` clones each argument per attempt, so arguments must be plain names; bind this one to a name and destructure it in the body",
                ),
            },
        }
    }
    out
}
