//! `#[rate_limit(per_second = 10, burst = 20)]`, optionally keyed: `key = <expr>`, and with
//! `backend = "redis"` shared by every process through Redis.
//!
//! The check runs before the body, which then runs inline: a rejected call returns
//! `Err(E::from(RateLimited))` without running the body. The in-memory backend's expansion does
//! not change with the Redis options (they are rejected without `backend = "redis"`).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Block, LitStr, Signature};

use super::{Layer, fn_path, private, private_call, private_fn, require_result};
use crate::args::{self, Errors, Kind, Spec};
use crate::presets;

const SPECS: &[Spec] = &[
    Spec {
        name: "preset",
        kind: Kind::Name {
            what: "limiter preset",
            names: presets::LIMITER,
        },
    },
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
        name: "backend",
        kind: Kind::Name {
            what: "rate-limit backend",
            names: presets::BACKEND,
        },
    },
    Spec {
        name: "on_redis_error",
        kind: Kind::Name {
            what: "Redis failure policy",
            names: presets::ON_REDIS_ERROR,
        },
    },
    Spec {
        name: "name",
        kind: Kind::Str,
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

/// The options that only mean something with `backend = "redis"`.
const REDIS_ONLY: [&str; 3] = ["on_redis_error", "name", "client"];

/// `backend = "redis"`: where the buckets live and what happens when Redis cannot answer.
struct Redis {
    /// The `backend = "redis"` literal: generated items that only exist with the runtime's
    /// `redis` feature are spanned here.
    backend: Span,
    /// The limiter's name (a string literal, or the function's path).
    name: TokenStream,
    /// `on_redis_error`: the name and where it was written (call site for the default).
    on_error: (&'static str, Span),
    client: Option<syn::Expr>,
}

pub(super) struct Config {
    pub(super) krate: syn::Path,
    /// The rate: (count, period in seconds).
    count: u64,
    period_secs: u64,
    burst: Option<u64>,
    /// `preset = "..."`: its name and literal's span, and whether a rate overrides its own.
    preset: Option<(&'static str, Span, bool)>,
    key: Option<syn::Expr>,
    redis: Option<Redis>,
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
            (None, None) if opts.name("preset").is_some() => None,
            (None, None) => {
                errors.at(
                    proc_macro2::Span::call_site(),
                    "`#[rate_limit]` needs a rate: `per_second = N` or `per_minute = N`",
                );
                None
            }
        };
        // A preset's burst follows an overriding rate at its ratio: that product must fit too.
        if opts.name("preset").is_some()
            && opts.int("burst").is_none()
            && let Some((v, span)) = opts.int("per_second").or(opts.int("per_minute"))
            && v.saturating_mul(presets::LIMITER_BURST_FACTOR) > u64::from(u32::MAX)
        {
            errors.at(
                span,
                format!(
                    "with a `preset` the burst is {}× the rate, which must fit in a u32; give `burst` too",
                    presets::LIMITER_BURST_FACTOR
                ),
            );
        }
        let redis = match opts.name("backend") {
            Some(("redis", lit)) => {
                if sig.asyncness.is_none() {
                    errors.at(
                        lit.span(),
                        "`backend = \"redis\"` needs an `async fn`: the Redis check is a network round trip, awaited before the body",
                    );
                }
                let name = match opts.str("name") {
                    Some(name) => {
                        if name.value().is_empty() {
                            errors.at(name.span(), "the limiter's `name` must not be empty");
                        }
                        quote!(#name)
                    }
                    // The function's path: two functions never share buckets by accident.
                    None => {
                        let fn_name = LitStr::new(&sig.ident.unraw().to_string(), sig.ident.span());
                        quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
                    }
                };
                Some(Redis {
                    backend: lit.span(),
                    name,
                    on_error: opts
                        .name("on_redis_error")
                        .map_or(("local", Span::call_site()), |(n, lit)| (n, lit.span())),
                    client: opts.expr("client").cloned(),
                })
            }
            _ => {
                for n in REDIS_ONLY {
                    if let Some(opt) = opts.get(n) {
                        errors.at(
                            opt.key_span,
                            format!("`{n}` only applies with `backend = \"redis\"`"),
                        );
                    }
                }
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
            preset: opts
                .name("preset")
                .map(|(name, lit)| (name, lit.span(), rate.is_some())),
            key: opts.expr("key").cloned(),
            redis,
        })
    }

    pub(super) fn wrap(&self, sig: &Signature, body: Block) -> TokenStream {
        let krate = &self.krate;
        let count = u32::try_from(self.count).unwrap_or(u32::MAX);
        let period = self.period_secs;
        let burst = match self.burst {
            Some(b) => {
                let b = u32::try_from(b).unwrap_or(u32::MAX);
                quote!(::core::option::Option::Some(#b))
            }
            None => quote!(::core::option::Option::None),
        };
        let (count, burst) = match self.preset {
            Some((name, span, rate_given)) => self.preset_numbers(name, span, rate_given, count),
            None => (quote!(#count), burst),
        };
        let spec = quote! {
            #krate::__private::RateSpec { count: #count, period_secs: #period, burst: #burst }
        };
        let stmts = &body.stmts;
        if let Some(redis) = &self.redis {
            let check = self.redis_check(sig, redis, &spec);
            return quote!(#check #(#stmts)*);
        }
        // The in-memory limiter's name (its metrics' `name` label): the function's path.
        let name = fn_path(sig);
        let check = match &self.key {
            None => {
                let check = private_call(
                    krate,
                    sig,
                    "rate_limit_check",
                    quote!(__RESILIENCE_LIMITER.get()),
                );
                quote! {
                    static __RESILIENCE_LIMITER: #krate::__private::LimiterCell =
                        #krate::__private::LimiterCell::new(#spec, #name);
                    if let ::core::option::Option::Some(__resilience_rejected) = #check {
                        return __resilience_rejected;
                    }
                }
            }
            Some(key) => {
                let key_tokens = quote_spanned!(key.span()=> &(#key));
                let check = private_call(
                    krate,
                    sig,
                    "rate_limit_check_key",
                    quote!(__RESILIENCE_LIMITER.get(), #key_tokens),
                );
                quote! {
                    static __RESILIENCE_LIMITER: #krate::__private::KeyedLimiterCell =
                        #krate::__private::KeyedLimiterCell::new(#spec, #name);
                    if let ::core::option::Option::Some(__resilience_rejected) = #check {
                        return __resilience_rejected;
                    }
                }
            }
        };
        quote!(#check #(#stmts)*)
    }
}

impl Config {
    /// `preset = "..."`: the count and burst from the runtime's preset (a path spanned on the
    /// literal), an overriding rate keeping the preset's burst ratio unless `burst` is given.
    fn preset_numbers(
        &self,
        name: &str,
        span: Span,
        rate_given: bool,
        count: u32,
    ) -> (TokenStream, TokenStream) {
        let krate = &self.krate;
        let ident = format_ident!("{}", name, span = span);
        let p = private(krate, span);
        let limiter = quote_spanned!(span=> #p::presets::limiter);
        let preset = quote_spanned!(span=> #limiter::#ident);
        let some = |v: TokenStream| quote!(::core::option::Option::Some(#v));
        let burst = self
            .burst
            .map(|b| u32::try_from(b).unwrap_or(u32::MAX))
            .map(|b| some(quote!(#b)));
        if rate_given {
            let burst = burst.unwrap_or_else(|| some(quote!(#count * #limiter::BURST_FACTOR)));
            // Still name the preset, so a name the runtime lacks fails at the literal.
            (quote!({ let _ = #preset; #count }), burst)
        } else {
            (
                quote!(#preset.per_second()),
                burst.unwrap_or_else(|| some(quote!(#preset.burst()))),
            )
        }
    }

    /// The check of `backend = "redis"`: one awaited round trip before the body.
    fn redis_check(&self, sig: &Signature, redis: &Redis, spec: &TokenStream) -> TokenStream {
        let krate = &self.krate;
        // Only exists with the runtime's `redis` feature: a missing item is reported at
        // `backend = "redis"`.
        let cell = private_fn(krate, redis.backend, "RedisLimiterCell");
        let (on_error, on_error_span) = redis.on_error;
        // Spanned on the user's literal: a name the runtime lacks fails to compile right there.
        let policy_ident = format_ident!("{}", on_error, span = on_error_span);
        let policy =
            quote_spanned!(on_error_span=> #krate::__private::on_redis_error::#policy_ident);
        let verdict_fn = if on_error == "closed" {
            "redis_rate_limit_verdict_closed"
        } else {
            "redis_rate_limit_verdict"
        };
        let client = match &redis.client {
            Some(expr) => {
                let source = private_fn(krate, expr.span(), "redis_client_source");
                quote_spanned!(expr.span()=> || #source(#expr))
            }
            None => quote!(#krate::__private::default_redis_client),
        };
        let key = match &self.key {
            Some(key) => quote_spanned!(key.span()=> &(#key)),
            None => quote!(#krate::__private::REDIS_UNKEYED),
        };
        let name = &redis.name;
        let backend = private_fn(krate, redis.backend, "redis_backend");
        let verdict = private_call(
            krate,
            sig,
            verdict_fn,
            quote!(__RESILIENCE_LIMITER.check(#client, #key).await),
        );
        quote! {
            #backend! {
                static __RESILIENCE_LIMITER: #cell = #cell::new(#spec, #name, #policy);
                if let ::core::option::Option::Some(__resilience_rejected) = #verdict {
                    return __resilience_rejected;
                }
            }
        }
    }
}
