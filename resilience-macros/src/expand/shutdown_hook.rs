//! `#[shutdown_hook(priority = "high")]` on a free `async fn` without arguments: the function
//! stays as written, and a static registration (`inventory`) tells the global shutdown
//! coordinator to run it, named after the function unless `name = "..."` is given.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{ItemFn, LitStr};

use super::{private, with_error};
use crate::args::{self, Errors, Kind, Spec, Value};
use crate::presets;

const ATTR: &str = "#[shutdown_hook]";

const SPECS: &[Spec] = &[
    Spec {
        name: "priority",
        kind: Kind::IntOrName {
            what: "shutdown priority",
            names: presets::PRIORITY,
        },
    },
    Spec {
        name: "name",
        kind: Kind::Str,
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
    },
];

/// Entry point of `#[shutdown_hook]`.
pub(crate) fn shutdown_hook(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(error) => {
            let message =
                format!("`{ATTR}` applies to a free `async fn` without arguments: {error}");
            return with_error(item, syn::Error::new(error.span(), message));
        }
    };
    match expand(args, &func) {
        Ok(tokens) => tokens,
        Err(error) => with_error(quote!(#func), error),
    }
}

fn expand(args: TokenStream, func: &ItemFn) -> syn::Result<TokenStream> {
    let opts = args::parse(args, ATTR, SPECS, None)?;
    let sig = &func.sig;
    let mut errors = Errors::default();
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            format!("`{ATTR}` needs an `async fn`: hooks are awaited by the shutdown coordinator"),
        );
    }
    if !sig.inputs.is_empty() {
        errors.at(
            sig.inputs.span(),
            format!(
                "`{ATTR}` functions take no arguments: the coordinator calls them with none; use a `static` or register a closure with `register_shutdown_hook` to capture state"
            ),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.at(
            sig.generics.span(),
            format!("`{ATTR}` functions cannot be generic"),
        );
    }
    if let Some(c) = &sig.constness {
        errors.at(c.span, format!("`{ATTR}` cannot be used on a `const fn`"));
    }
    let name = match opts.str("name") {
        Some(lit) => {
            if lit.value().trim().is_empty() {
                errors.at(lit.span(), "the hook's name must not be empty");
            }
            lit.clone()
        }
        None => LitStr::new(&sig.ident.unraw().to_string(), sig.ident.span()),
    };
    errors.finish()?;

    let krate = opts.krate();
    let priority = match opts.get("priority").map(|o| &o.value) {
        Some(Value::Name(n, lit)) => {
            let ident = format_ident!("{}", n, span = lit.span());
            let p = private(&krate, lit.span());
            quote_spanned!(lit.span()=> #p::presets::priority::#ident)
        }
        Some(Value::SignedInt(v, span)) => {
            let v = i32::try_from(*v).unwrap_or(0);
            quote_spanned!(*span=> #v)
        }
        _ => quote!(#krate::__private::presets::priority::normal),
    };
    let ident = &sig.ident;
    let p = private(&krate, sig.output.span());
    Ok(quote! {
        #func

        #krate::__private::inventory::submit! {
            #krate::__private::StaticShutdownHook {
                name: #name,
                priority: #priority,
                run: {
                    fn __resilience_run_hook() -> #krate::__private::HookFuture {
                        #p::hook_future(#ident())
                    }
                    __resilience_run_hook
                },
            }
        }
    })
}
