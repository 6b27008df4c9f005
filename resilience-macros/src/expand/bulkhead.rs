//! `#[bulkhead(max_concurrent = 10, max_queued = 100, queue_timeout_ms = 1000)]`.
//!
//! A permit is acquired before the body, which then runs inline holding it; a full bulkhead
//! returns `Err(E::from(BulkheadFull))` without running the body.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Block, Signature};

use super::{Layer, fn_path, private_call, require_async, require_result};
use crate::args::{self, Errors, Kind, Spec};

const SPECS: &[Spec] = &[
    Spec {
        name: "max_concurrent",
        kind: Kind::Int,
    },
    Spec {
        name: "max_queued",
        kind: Kind::Int,
    },
    Spec {
        name: "queue_timeout_ms",
        kind: Kind::Int,
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
    },
];

pub(super) struct Config {
    pub(super) krate: syn::Path,
    max_concurrent: u64,
    max_queued: Option<u64>,
    queue_timeout_ms: Option<u64>,
}

impl Config {
    pub(super) fn new(args: TokenStream, sig: &Signature) -> syn::Result<Self> {
        let layer = Layer::Bulkhead;
        let opts = args::parse(args, layer.attr(), SPECS, None)?;
        let mut errors = Errors::default();
        require_result(sig, layer, &mut errors);
        require_async(sig, layer, &mut errors);
        opts.at_least(&mut errors, "max_concurrent", 1);
        opts.at_least(&mut errors, "queue_timeout_ms", 1);
        for n in ["max_concurrent", "max_queued"] {
            if let Some((v, span)) = opts.int(n)
                && u32::try_from(v).is_err()
            {
                errors.at(span, format!("`{n}` must fit in a u32"));
            }
        }
        // The runtime's rule: a queue timeout needs a queue to wait in.
        if let Some((_, span)) = opts.int("queue_timeout_ms")
            && opts.int("max_queued").is_none_or(|(n, _)| n == 0)
        {
            errors.at(
                span,
                "`queue_timeout_ms` has no effect without a queue: give `max_queued = N` (N ≥ 1) too",
            );
        }
        if opts.get("max_concurrent").is_none() {
            errors.at(
                proc_macro2::Span::call_site(),
                "`#[bulkhead]` needs `max_concurrent = N`",
            );
        }
        errors.finish()?;
        Ok(Self {
            krate: opts.krate(),
            max_concurrent: opts.int("max_concurrent").map_or(1, |(v, _)| v),
            max_queued: opts.int("max_queued").map(|(v, _)| v),
            queue_timeout_ms: opts.int("queue_timeout_ms").map(|(v, _)| v),
        })
    }

    pub(super) fn wrap(&self, sig: &Signature, body: Block) -> TokenStream {
        let krate = &self.krate;
        let max_concurrent = u32::try_from(self.max_concurrent).unwrap_or(u32::MAX);
        let opt = |v: Option<u64>| match v {
            Some(v) => quote!(::core::option::Option::Some(#v)),
            None => quote!(::core::option::Option::None),
        };
        let max_queued = opt(self.max_queued);
        let queue_timeout = opt(self.queue_timeout_ms);
        let stmts = &body.stmts;
        let acquire = private_call(
            krate,
            sig,
            "bulkhead_acquire",
            quote!(__RESILIENCE_BULKHEAD.get()),
        );
        let name = fn_path(sig);
        quote! {
            static __RESILIENCE_BULKHEAD: #krate::__private::BulkheadCell =
                #krate::__private::BulkheadCell::new(#krate::__private::BulkheadSpec {
                    max_concurrent: #max_concurrent,
                    max_queued: #max_queued,
                    queue_timeout_ms: #queue_timeout,
                }, #name);
            let __resilience_permit = match #acquire.await {
                ::core::result::Result::Ok(__resilience_permit) => __resilience_permit,
                ::core::result::Result::Err(__resilience_rejected) => return __resilience_rejected,
            };
            #(#stmts)*
        }
    }
}
