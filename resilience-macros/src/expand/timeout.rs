//! `#[timeout(ms = 5000)]`: the body runs under a deadline; when it passes, the call returns
//! `Err(E::from(TimeoutError))` and the body's future is dropped.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Block, Signature};

use super::{
    Layer, awaited, fn_path, inner_body, move_args, private_call, require_async, require_result,
};
use crate::args::{self, Errors, Kind, Spec};

const SPECS: &[Spec] = &[
    Spec {
        name: "ms",
        kind: Kind::Int,
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
    },
];

pub(super) struct Config {
    pub(super) krate: syn::Path,
    ms: u64,
}

impl Config {
    pub(super) fn new(args: TokenStream, sig: &Signature) -> syn::Result<Self> {
        let layer = Layer::Timeout;
        let opts = args::parse(args, layer.attr(), SPECS, Some("ms"))?;
        let mut errors = Errors::default();
        require_result(sig, layer, &mut errors);
        require_async(sig, layer, &mut errors);
        opts.at_least(&mut errors, "ms", 1);
        if opts.get("ms").is_none() {
            errors.at(
                proc_macro2::Span::call_site(),
                "`#[timeout]` needs a duration: `#[timeout(ms = 5000)]`",
            );
        }
        errors.finish()?;
        Ok(Self {
            krate: opts.krate(),
            ms: opts.int("ms").map_or(1, |(v, _)| v),
        })
    }

    pub(super) fn wrap(&self, sig: &Signature, body: Block) -> TokenStream {
        let ms = self.ms;
        let body = inner_body(sig, &body);
        // Not `async move`: that would move a `&mut self` too (see `move_args`).
        let moves = move_args(sig, &body);
        let krate = &self.krate;
        let name = fn_path(sig);
        let call = private_call(
            krate,
            sig,
            "timeout_call",
            quote!(&__RESILIENCE_TIMEOUT, #ms, async { #moves #body }),
        );
        let call = awaited(sig, call);
        quote! {{
            static __RESILIENCE_TIMEOUT: #krate::__private::TimeoutCell =
                #krate::__private::TimeoutCell::new(#name);
            #call
        }}
    }
}
