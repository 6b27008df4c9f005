//! `#[circuit_breaker("name")]` / `#[circuit_breaker(name = "...", preset = "...")]`, and with
//! `shared = true` a breaker whose state lives in Redis, shared by every process.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Expr, ExprLit, Lit, LitStr, Signature};

use super::{
    Layer, awaited, inner_body, move_args, private, private_call, private_fn, require_result,
};
use crate::args::{self, Errors, Kind, Spec};
use crate::presets;

const SPECS: &[Spec] = &[
    Spec {
        name: "name",
        kind: Kind::Str,
    },
    Spec {
        name: "preset",
        kind: Kind::Name {
            what: "circuit breaker preset",
            names: presets::BREAKER,
        },
    },
    Spec {
        name: "shared",
        kind: Kind::Expr,
    },
    Spec {
        name: "client",
        kind: Kind::Expr,
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
    },
];

/// `shared = true`: the breaker's state lives in Redis.
struct Shared {
    /// The `true` literal: generated items that only exist with the runtime's `redis` feature
    /// are spanned here.
    span: Span,
    client: Option<Expr>,
}

pub(super) struct Config {
    pub(super) krate: syn::Path,
    name: LitStr,
    preset: Option<LitStr>,
    shared: Option<Shared>,
}

/// The bool literal inside `expr`, looking through invisible groups (from `macro_rules!`).
fn bool_literal(expr: &Expr) -> Option<&syn::LitBool> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Some(b),
        Expr::Group(group) => bool_literal(&group.expr),
        Expr::Paren(paren) => bool_literal(&paren.expr),
        _ => None,
    }
}

impl Config {
    pub(super) fn new(args: TokenStream, sig: &Signature) -> syn::Result<Self> {
        let layer = Layer::CircuitBreaker;
        let opts = args::parse(args, layer.attr(), SPECS, Some("name"))?;
        let mut errors = Errors::default();
        require_result(sig, layer, &mut errors);
        // Without a name, the breaker is named after the function.
        let name = match opts.str("name") {
            Some(lit) => {
                if lit.value().trim().is_empty() {
                    errors.at(lit.span(), "the circuit breaker's name must not be empty");
                }
                lit.clone()
            }
            None => LitStr::new(&sig.ident.unraw_string(), sig.ident.span()),
        };
        let shared = match opts.expr("shared") {
            Some(expr) => match bool_literal(expr) {
                Some(b) if b.value => {
                    if sig.asyncness.is_none() {
                        errors.at(
                            b.span,
                            "`shared = true` needs an `async fn`: the shared state is read from Redis, awaited before the body",
                        );
                    }
                    Some(Shared {
                        span: b.span,
                        client: opts.expr("client").cloned(),
                    })
                }
                Some(_) => None,
                None => {
                    errors.at(
                        expr.span(),
                        "`shared` expects `true` or `false`; write it like `shared = true`",
                    );
                    None
                }
            },
            None => None,
        };
        if shared.is_none()
            && let Some(opt) = opts.get("client")
        {
            errors.at(opt.key_span, "`client` only applies with `shared = true`");
        }
        errors.finish()?;
        Ok(Self {
            krate: opts.krate(),
            name,
            preset: opts.name("preset").map(|(_, lit)| lit.clone()),
            shared,
        })
    }

    pub(super) fn wrap(&self, sig: &Signature, body: Block) -> TokenStream {
        let krate = &self.krate;
        let name = &self.name;
        let preset = match &self.preset {
            Some(lit) => {
                // Spanned on the literal: a name the runtime lacks fails to compile right there.
                let ident = format_ident!("{}", lit.value(), span = lit.span());
                let p = private(krate, lit.span());
                quote_spanned!(lit.span()=> ::core::option::Option::Some(#p::presets::circuit_breaker::#ident))
            }
            None => quote!(::core::option::Option::None),
        };
        let body = inner_body(sig, &body);
        // The body goes in as a future (or a closure, sync) that moves the arguments but not
        // `self` (see `move_args`), so an outer `#[retry]` can run it again on `&mut self`.
        let moves = move_args(sig, &body);
        if let Some(shared) = &self.shared {
            // Only exists with the runtime's `redis` feature: a missing item is reported at
            // `shared = true`.
            let cell = private_fn(krate, shared.span, "SharedBreakerCell");
            let client = match &shared.client {
                Some(expr) => {
                    let source = private_fn(krate, expr.span(), "redis_client_source");
                    quote_spanned!(expr.span()=> || #source(#expr))
                }
                None => quote!(#krate::__private::default_redis_client),
            };
            let backend = private_fn(krate, shared.span, "redis_backend");
            let call = private_call(
                krate,
                sig,
                "shared_breaker_call",
                quote!(__RESILIENCE_BREAKER.get(#client), async { #moves #body }),
            );
            let call = awaited(sig, call);
            return quote! {
                #backend! {{
                    static __RESILIENCE_BREAKER: #cell = #cell::new(#name, #preset);
                    #call
                }}
            };
        }
        let cell = quote! {
            // Resolved once per function, not looked up by name on every call.
            static __RESILIENCE_BREAKER: #krate::__private::BreakerCell =
                #krate::__private::BreakerCell::new(#name, #preset);
        };
        if sig.asyncness.is_some() {
            let call = private_call(
                krate,
                sig,
                "breaker_call",
                quote!(__RESILIENCE_BREAKER.get(), async { #moves #body }),
            );
            let call = awaited(sig, call);
            quote! {
                #cell
                #call
            }
        } else {
            let call = private_call(
                krate,
                sig,
                "breaker_call_blocking",
                quote!(__RESILIENCE_BREAKER.get(), || { #moves #body }),
            );
            quote! {
                #cell
                #call
            }
        }
    }
}

trait UnrawString {
    fn unraw_string(&self) -> String;
}

impl UnrawString for syn::Ident {
    fn unraw_string(&self) -> String {
        use syn::ext::IdentExt;
        self.unraw().to_string()
    }
}
