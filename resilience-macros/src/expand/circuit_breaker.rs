//! `#[circuit_breaker("name")]` / `#[circuit_breaker(name = "...", preset = "...")]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{Block, LitStr, Signature};

use super::{Layer, inner_body, private, require_result, return_span};
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
        name: "crate",
        kind: Kind::Crate,
    },
];

pub(super) struct Config {
    pub(super) krate: syn::Path,
    name: LitStr,
    preset: Option<LitStr>,
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
        errors.finish()?;
        Ok(Self {
            krate: opts.krate(),
            name,
            preset: opts.name("preset").map(|(_, lit)| lit.clone()),
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
        let p = private(krate, return_span(sig));
        let cell = quote! {
            // Resolved once per function, not looked up by name on every call.
            static __RESILIENCE_BREAKER: #krate::__private::BreakerCell =
                #krate::__private::BreakerCell::new(#name, #preset);
        };
        if sig.asyncness.is_some() {
            quote! {
                #cell
                #p::breaker_call(
                    __RESILIENCE_BREAKER.get(),
                    move || async move { #body },
                ).await
            }
        } else {
            quote! {
                #cell
                #p::breaker_call_blocking(
                    __RESILIENCE_BREAKER.get(),
                    move || { #body },
                )
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
