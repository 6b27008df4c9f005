//! `#[rate_limit(per_second = 10, burst = 20)]`, optionally keyed: `key = <expr>`.
//!
//! The check runs before the body, which then runs inline: a rejected call returns
//! `Err(E::from(RateLimited))` without running the body.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Signature};

use super::{Layer, private, require_result, return_span};
use crate::args::{self, Errors, Kind, Spec};

const SPECS: &[Spec] = &[
    Spec {
        name: "per_second",
        kind: Kind::Int,
    },
    Spec {
        name: "per_minute",
        kind: Kind::Int,
    },
    Spec {
        name: "burst",
        kind: Kind::Int,
    },
    Spec {
        name: "key",
        kind: Kind::Expr,
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
    },
];

pub(super) struct Config {
    pub(super) krate: syn::Path,
    /// The rate: (count, period in seconds).
    count: u64,
    period_secs: u64,
    burst: Option<u64>,
    key: Option<syn::Expr>,
}

impl Config {
    pub(super) fn new(args: TokenStream, sig: &Signature) -> syn::Result<Self> {
        let layer = Layer::RateLimit;
        let opts = args::parse(args, layer.attr(), SPECS, None)?;
        let mut errors = Errors::default();
        require_result(sig, layer, &mut errors);
        opts.conflict(
            &mut errors,
            "per_minute",
            "per_second",
            "give the rate once, per second or per minute",
        );
        for n in ["per_second", "per_minute", "burst"] {
            opts.at_least(&mut errors, n, 1);
        }
        for n in ["per_second", "per_minute", "burst"] {
            if let Some((v, span)) = opts.int(n)
                && u32::try_from(v).is_err()
            {
                errors.at(span, format!("`{n}` must fit in a u32"));
            }
        }
        let rate = match (opts.int("per_second"), opts.int("per_minute")) {
            (Some((v, _)), _) => Some((v, 1)),
            (None, Some((v, _))) => Some((v, 60)),
            (None, None) => {
                errors.at(
                    proc_macro2::Span::call_site(),
                    "`#[rate_limit]` needs a rate: `per_second = N` or `per_minute = N`",
                );
                None
            }
        };
        errors.finish()?;
        let (count, period_secs) = rate.unwrap_or((1, 1));
        Ok(Self {
            krate: opts.krate(),
            count,
            period_secs,
            burst: opts.int("burst").map(|(v, _)| v),
            key: opts.expr("key").cloned(),
        })
    }

    pub(super) fn wrap(&self, sig: &Signature, body: Block) -> TokenStream {
        let krate = &self.krate;
        let p = private(krate, return_span(sig));
        let count = u32::try_from(self.count).unwrap_or(u32::MAX);
        let period = self.period_secs;
        let burst = match self.burst {
            Some(b) => {
                let b = u32::try_from(b).unwrap_or(u32::MAX);
                quote!(::core::option::Option::Some(#b))
            }
            None => quote!(::core::option::Option::None),
        };
        let spec = quote! {
            #krate::__private::RateSpec { count: #count, period_secs: #period, burst: #burst }
        };
        let stmts = &body.stmts;
        let check = match &self.key {
            None => quote! {
                static __RESILIENCE_LIMITER: #krate::__private::LimiterCell =
                    #krate::__private::LimiterCell::new(#spec);
                if let ::core::option::Option::Some(__resilience_rejected) =
                    #p::rate_limit_check(__RESILIENCE_LIMITER.get())
                {
                    return __resilience_rejected;
                }
            },
            Some(key) => {
                let key_tokens = quote_spanned!(key.span()=> &(#key));
                quote! {
                    static __RESILIENCE_LIMITER: #krate::__private::KeyedLimiterCell =
                        #krate::__private::KeyedLimiterCell::new(#spec);
                    if let ::core::option::Option::Some(__resilience_rejected) =
                        #p::rate_limit_check_key(__RESILIENCE_LIMITER.get(), #key_tokens)
                    {
                        return __resilience_rejected;
                    }
                }
            }
        };
        quote!(#check #(#stmts)*)
    }
}
