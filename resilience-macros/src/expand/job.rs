//! `#[job(queue = "emails", name = "welcome", retry = "patient", priority = "high",
//! timeout_ms = 30000)]` on a free `async fn(payload: T) -> Result<R, E>` (optionally with a
//! second parameter `ctx: JobContext`): the function stays as written; a static registration
//! (`inventory`, as `#[shutdown_hook]`) gives `WorkerBuilder::registered` its handler, and two
//! typed helpers, `<fn>_enqueue` and `<fn>_enqueue_with`, add jobs of that name to the queue.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, ReturnType, Signature, Type};

use super::{private, respan, return_span, with_error};
use crate::args::{self, Errors, Kind, Options, Spec, Value};
use crate::presets;

const ATTR: &str = "#[job]";

/// BullMQ's highest priority number (the runtime's `jobs::MAX_PRIORITY`).
const MAX_PRIORITY: u64 = 2_097_151;

/// The runtime's limit on queue and job names, in bytes (`jobs/queue.rs`).
const MAX_NAME_BYTES: usize = 200;

const GENERIC: &str =
    "`#[job]` functions cannot be generic: the worker deserialises one concrete payload type";

const SPECS: &[Spec] = &[
    Spec {
        name: "queue",
        kind: Kind::Str,
    },
    Spec {
        name: "name",
        kind: Kind::Str,
    },
    Spec {
        name: "retry",
        kind: Kind::Name {
            what: "retry preset",
            names: presets::RETRY,
        },
    },
    Spec {
        name: "priority",
        kind: Kind::UIntOrName {
            what: "job priority",
            names: presets::JOB_PRIORITY,
        },
    },
    Spec {
        name: "timeout_ms",
        kind: Kind::Int,
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
    },
];

/// Entry point of `#[job]`.
pub(crate) fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(error) => {
            let message = format!("`{ATTR}` applies to a free `async fn`: {error}");
            return with_error(item, syn::Error::new(error.span(), message));
        }
    };
    match expand(args, &func) {
        Ok(tokens) => tokens,
        Err(error) => with_error(quote!(#func), error),
    }
}

/// The function's parameters as the handler sees them.
struct Params<'a> {
    payload: &'a Type,
    context: Option<&'a Type>,
}

fn expand(args: TokenStream, func: &ItemFn) -> syn::Result<TokenStream> {
    let opts = args::parse(args, ATTR, SPECS, None)?;
    let sig = &func.sig;
    let mut errors = Errors::default();
    let params = check_signature(sig, &mut errors);
    let queue = match opts.str("queue") {
        Some(lit) => {
            check_queue_name(lit, &mut errors);
            lit.clone()
        }
        None => {
            errors.at(
                Span::call_site(),
                format!("`{ATTR}` needs `queue = \"...\"`: the queue whose workers run the job"),
            );
            LitStr::new("", Span::call_site())
        }
    };
    let name = match opts.str("name") {
        Some(lit) => lit.clone(),
        None => LitStr::new(&sig.ident.unraw().to_string(), sig.ident.span()),
    };
    check_job_name(&name, &mut errors);
    if let Some((v, span)) = opts.int("priority")
        && v > MAX_PRIORITY
    {
        errors.at(
            span,
            format!("`priority` must be at most {MAX_PRIORITY} (BullMQ's limit), got {v}"),
        );
    }
    opts.at_least(&mut errors, "timeout_ms", 1);
    errors.finish()?;
    let Some(params) = params else {
        // `check_signature` reported why.
        return Ok(quote!(#func));
    };

    let krate = opts.krate();
    let spec = job_spec(&opts, &krate, &queue, &name);
    let handler = handler(&krate, sig, &params, &spec);
    let helpers = enqueue_helpers(&krate, func, params.payload, &spec, &queue, &name);
    Ok(quote! {
        #func

        #krate::__private::inventory::submit! {
            #krate::__private::jobs::JobRegistration {
                queue: #queue,
                name: #name,
                handler: {
                    fn __resilience_job_handler() -> #krate::__private::jobs::Handler {
                        #handler
                    }
                    __resilience_job_handler
                },
            }
        }

        #helpers
    })
}

/// Checks the function's shape, reporting each problem on its token; the parameters when the
/// shape fits.
fn check_signature<'a>(sig: &'a Signature, errors: &mut Errors) -> Option<Params<'a>> {
    let mut local = Errors::default();
    if sig.asyncness.is_none() {
        local.at(
            sig.fn_token.span,
            format!("`{ATTR}` needs an `async fn`: the worker awaits the handler"),
        );
    }
    if let Some(u) = &sig.unsafety {
        local.at(
            u.span,
            format!("`{ATTR}` cannot register an `unsafe fn`: a worker cannot uphold its contract"),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        local.at(sig.generics.span(), GENERIC);
    }
    let mut typed = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => local.at(
                r.self_token.span,
                format!(
                    "`{ATTR}` applies to free functions: the worker has no `self` to call a method on"
                ),
            ),
            FnArg::Typed(pt) => typed.push(&*pt.ty),
        }
    }
    if sig.inputs.is_empty() {
        local.at(
            sig.paren_token.span.join(),
            format!(
                "`{ATTR}` functions take the payload, and optionally a `resilience::jobs::JobContext`: `async fn welcome(payload: T)`"
            ),
        );
    }
    if let Some(extra) = typed.get(2) {
        local.at(
            extra.span(),
            format!(
                "`{ATTR}` functions take at most two parameters: the payload, then a `resilience::jobs::JobContext`"
            ),
        );
    }
    for (index, ty) in typed.iter().take(2).enumerate() {
        match peel(ty) {
            Type::Reference(_) if index == 0 => local.at(
                ty.span(),
                format!(
                    "`{ATTR}` deserialises the payload into an owned value: take it by value (`String`, not `&str`)"
                ),
            ),
            Type::Reference(_) => local.at(
                ty.span(),
                format!("`{ATTR}` hands the context over by value: take `JobContext`, not a reference"),
            ),
            Type::ImplTrait(_) => local.at(ty.span(), GENERIC),
            _ => {}
        }
    }
    check_return(sig, &mut local);
    match local.finish() {
        Ok(()) => typed.first().map(|payload| Params {
            payload,
            context: typed.get(1).copied(),
        }),
        Err(error) => {
            errors.push(error);
            None
        }
    }
}

/// The return type must be written as a `Result` (or an alias named `Result`, as
/// `std::io::Result` and `anyhow::Result`).
fn check_return(sig: &Signature, errors: &mut Errors) {
    let message = format!(
        "`{ATTR}` functions return `Result<T, E>`: the `Ok` value becomes the job's result, and the error decides between another attempt and failing the job"
    );
    match &sig.output {
        ReturnType::Default => errors.at(sig.paren_token.span.close(), message),
        ReturnType::Type(_, ty) => {
            let is_result = match peel(ty) {
                Type::Path(p) if p.qself.is_none() => {
                    p.path.segments.last().is_some_and(|s| s.ident == "Result")
                }
                _ => false,
            };
            if !is_result {
                errors.at(ty.span(), message);
            }
        }
    }
}

/// The type inside invisible groups and parentheses (from `macro_rules!` callers).
fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => peel(&g.elem),
        Type::Paren(p) => peel(&p.elem),
        ty => ty,
    }
}

/// The runtime's `validate_queue_name`, at compile time: 1 to 200 bytes, no `:` (BullMQ's
/// separator), no braces (the Cluster hash tag is the runtime's to add), no whitespace or control
/// characters.
fn check_queue_name(lit: &LitStr, errors: &mut Errors) {
    let name = lit.value();
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        errors.at(
            lit.span(),
            format!(
                "a queue name must be 1 to {MAX_NAME_BYTES} bytes, got {}",
                name.len()
            ),
        );
    } else if let Some(c) = name
        .chars()
        .find(|&c| matches!(c, ':' | '{' | '}') || c.is_whitespace() || c.is_control())
    {
        errors.at(
            lit.span(),
            format!(
                "a queue name must not contain `:`, braces, whitespace or control characters; found {c:?}"
            ),
        );
    }
}

/// The runtime's `validate_job_name`: 1 to 200 bytes without control characters.
fn check_job_name(lit: &LitStr, errors: &mut Errors) {
    let name = lit.value();
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        errors.at(
            lit.span(),
            format!(
                "a job name must be 1 to {MAX_NAME_BYTES} bytes, got {}",
                name.len()
            ),
        );
    } else if let Some(c) = name.chars().find(|c| c.is_control()) {
        errors.at(
            lit.span(),
            format!("a job name must not contain control characters; found {c:?}"),
        );
    }
}

/// The `__private::jobs::JobSpec` constant the registration and the helpers share.
fn job_spec(opts: &Options, krate: &syn::Path, queue: &LitStr, name: &LitStr) -> TokenStream {
    let priority = match opts.get("priority").map(|o| &o.value) {
        Some(Value::Name(n, lit)) => {
            let ident = format_ident!("{}", n, span = lit.span());
            let p = private(krate, lit.span());
            quote_spanned!(lit.span()=> ::core::option::Option::Some(#p::presets::job_priority::#ident))
        }
        Some(Value::Int(v, lit)) => {
            let v = u32::try_from(*v).unwrap_or(u32::MAX);
            let p = private(krate, lit.span());
            quote_spanned!(lit.span()=> ::core::option::Option::Some(#p::jobs::JobPriority::Level(#v)))
        }
        _ => quote!(::core::option::Option::None),
    };
    let retry = match opts.name("retry") {
        Some((n, lit)) => {
            let ident = format_ident!("{}", n, span = lit.span());
            let p = private(krate, lit.span());
            quote_spanned!(lit.span()=> #p::presets::retry::#ident)
        }
        None => quote!(#krate::__private::presets::retry::standard),
    };
    let timeout = match opts.int("timeout_ms") {
        Some((ms, span)) => quote_spanned! {span=>
            ::core::option::Option::Some(::core::time::Duration::from_millis(#ms))
        },
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #krate::__private::jobs::JobSpec {
            queue: #queue,
            name: #name,
            priority: #priority,
            retry: #retry,
            timeout: #timeout,
        }
    }
}

/// `__private::jobs::handler::<T, ..>(&SPEC, |payload, ctx| f(payload[, ctx]))`: the call is
/// spanned on the return type (an `Ok` or error type that does not fit is reported there), `T`
/// on the payload's type, and the context conversion on the context parameter's type.
fn handler(
    krate: &syn::Path,
    sig: &Signature,
    params: &Params<'_>,
    spec: &TokenStream,
) -> TokenStream {
    let ident = &sig.ident;
    let (ctx_param, call) = match params.context {
        Some(cty) => {
            let context = respan(quote!(#krate::__private::jobs::context), cty.span());
            let ctx = quote_spanned!(cty.span()=> #context(__resilience_ctx));
            (
                quote!(__resilience_ctx),
                quote!(#ident(__resilience_payload, #ctx)),
            )
        }
        None => (quote!(_), quote!(#ident(__resilience_payload))),
    };
    let ty = params.payload;
    let span = return_span(sig);
    let path = respan(quote!(#krate::__private::jobs::handler::), span);
    // `T` keeps the payload's span; the inferred `_`s (the `Ok` and error types among them) get
    // the return type's.
    let generics = quote_spanned!(span=> <#ty, _, _, _, _>);
    let mut args = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote! {
            &#spec,
            |__resilience_payload: #ty, #ctx_param: #krate::__private::jobs::JobContext| #call
        },
    );
    args.set_span(span);
    quote!(#path #generics #args)
}

/// `<fn>_enqueue(queue, &payload)` and `<fn>_enqueue_with(queue, &payload, opts)`, with the
/// function's visibility.
fn enqueue_helpers(
    krate: &syn::Path,
    func: &ItemFn,
    payload: &Type,
    spec: &TokenStream,
    queue: &LitStr,
    name: &LitStr,
) -> TokenStream {
    let vis = &func.vis;
    let ident = &func.sig.ident;
    let base = ident.unraw();
    let enqueue = format_ident!("{}_enqueue", base, span = ident.span());
    let enqueue_with = format_ident!("{}_enqueue_with", base, span = ident.span());
    let (queue, name) = (queue.value(), name.value());
    let doc = format!(
        " Adds a `{name}` job to `queue`, which must be the `{queue}` queue, with the priority, retry preset and timeout of the `#[job]` attribute on `{base}`."
    );
    let doc_with = format!(
        " Adds a `{name}` job to `queue`, which must be the `{queue}` queue; `opts` overrides the priority, retry preset and timeout of the `#[job]` attribute on `{base}` where it sets them."
    );
    let errors = " Fails with `QueueError::WrongQueue` on another queue, and as `Queue::add` does otherwise.";
    let jobs = quote!(#krate::__private::jobs);
    let enqueue_fn = respan(quote!(#jobs::enqueue::<#payload>), payload.span());
    let mut args = proc_macro2::Group::new(
        proc_macro2::Delimiter::Parenthesis,
        quote!(&#spec, queue, payload, opts),
    );
    args.set_span(payload.span());
    let enqueue_call = quote!(#enqueue_fn #args);
    // rustc reports an async call's unmet bound again at its `.await`: the same span merges them.
    let awaited = quote_spanned!(payload.span()=> .await);
    quote! {
        #[doc = #doc]
        #[doc = ""]
        #[doc = " # Errors"]
        #[doc = ""]
        #[doc = #errors]
        #[allow(dead_code)]
        #vis async fn #enqueue(
            queue: &#jobs::Queue,
            payload: &#payload,
        ) -> ::core::result::Result<::std::string::String, #jobs::QueueError> {
            #enqueue_with(queue, payload, #jobs::JobOptions::new()).await
        }

        #[doc = #doc_with]
        #[doc = ""]
        #[doc = " # Errors"]
        #[doc = ""]
        #[doc = #errors]
        #[allow(dead_code)]
        #vis async fn #enqueue_with(
            queue: &#jobs::Queue,
            payload: &#payload,
            opts: #jobs::JobOptions,
        ) -> ::core::result::Result<::std::string::String, #jobs::QueueError> {
            #enqueue_call #awaited
        }
    }
}
