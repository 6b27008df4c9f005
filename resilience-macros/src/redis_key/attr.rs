//! `#[redis_key(namespace = "...", template = "...", hash_tag = "...", crate = "...")]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{DeriveInput, LitStr};

use crate::args::{self, Errors, Kind, Spec};

const ATTR: &str = "#[redis_key]";

const SPECS: &[Spec] = &[
    Spec {
        name: "namespace",
        kind: Kind::Str,
    },
    Spec {
        name: "template",
        kind: Kind::Str,
    },
    Spec {
        name: "hash_tag",
        kind: Kind::Str,
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
    },
];

pub(crate) struct Options {
    pub(crate) krate: syn::Path,
    pub(crate) namespace: LitStr,
    pub(crate) template: Option<LitStr>,
    pub(crate) hash_tag: Option<LitStr>,
}

impl Options {
    pub(crate) fn from_attrs(input: &DeriveInput) -> syn::Result<Self> {
        let mut errors = Errors::default();
        // Every `#[redis_key(...)]` on the type, read as one option list (so a repeated option
        // is reported as a duplicate wherever it is).
        let mut tokens = TokenStream::new();
        let mut seen = false;
        for attr in input
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("redis_key"))
        {
            seen = true;
            match attr.meta.require_list() {
                Ok(list) => {
                    let inner = &list.tokens;
                    if !tokens.is_empty() {
                        tokens.extend(quote!(,));
                    }
                    tokens.extend(inner.clone());
                }
                Err(error) => errors.push(error),
            }
        }
        // `#[redis_key]` on fields is not a thing (yet): say so rather than ignore it.
        if let syn::Data::Struct(data) = &input.data {
            for field in &data.fields {
                for attr in field
                    .attrs
                    .iter()
                    .filter(|a| a.path().is_ident("redis_key"))
                {
                    errors.at(
                        attr.path().get_ident().map_or_else(proc_macro2::Span::call_site, |i| i.span()),
                        "`#[redis_key]` goes on the struct, not on fields: every field is a placeholder in the template",
                    );
                }
            }
        }
        if !seen {
            errors.at(
                input.ident.span(),
                "`#[derive(RedisKey)]` needs `#[redis_key(namespace = \"...\")]` on the struct (and optionally `template = \"...\"`)",
            );
        }
        errors.finish()?;
        let opts = args::parse(tokens, ATTR, SPECS, None)?;
        let Some(namespace) = opts.str("namespace").cloned() else {
            return Err(syn::Error::new(
                input.ident.span(),
                "`#[redis_key]` needs `namespace = \"...\"`: the key's first segment after the prefix",
            ));
        };
        Ok(Self {
            krate: opts.krate(),
            namespace,
            template: opts.str("template").cloned(),
            hash_tag: opts.str("hash_tag").cloned(),
        })
    }
}
