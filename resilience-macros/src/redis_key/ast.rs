//! The shape of a type deriving `RedisKey`: a struct with named fields, positional fields, or none.

use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, Type};

/// One field a placeholder can refer to.
pub(crate) struct Field<'a> {
    /// `goal_id` for a named field, `0` for a positional one.
    pub(crate) name: String,
    /// The expression that reads it from `self`: `self.goal_id` / `self.0`.
    pub(crate) member: syn::Member,
    pub(crate) ty: &'a Type,
    /// Where to blame an unused field.
    pub(crate) span: proc_macro2::Span,
}

/// The struct's fields, by kind.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Named,
    Tuple,
    Unit,
}

pub(crate) struct Input<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) generics: &'a syn::Generics,
    pub(crate) style: Style,
    pub(crate) fields: Vec<Field<'a>>,
}

impl<'a> Input<'a> {
    pub(crate) fn from_syn(input: &'a DeriveInput) -> syn::Result<Self> {
        let data = match &input.data {
            Data::Struct(data) => data,
            Data::Enum(data) => {
                return Err(syn::Error::new(
                    data.enum_token.span,
                    "`#[derive(RedisKey)]` supports structs only; derive it on one struct per key shape",
                ));
            }
            Data::Union(data) => {
                return Err(syn::Error::new(
                    data.union_token.span,
                    "`#[derive(RedisKey)]` cannot be derived for a union: a key needs every field",
                ));
            }
        };
        let style = match &data.fields {
            Fields::Named(_) => Style::Named,
            Fields::Unnamed(_) => Style::Tuple,
            Fields::Unit => Style::Unit,
        };
        let fields = data
            .fields
            .iter()
            .enumerate()
            .map(|(index, field)| match &field.ident {
                Some(ident) => Field {
                    name: syn::ext::IdentExt::unraw(ident).to_string(),
                    member: syn::Member::Named(ident.clone()),
                    ty: &field.ty,
                    span: ident.span(),
                },
                None => Field {
                    name: index.to_string(),
                    member: syn::Member::Unnamed(syn::Index {
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                        span: field.ty.span(),
                    }),
                    ty: &field.ty,
                    span: field.ty.span(),
                },
            })
            .collect();
        Ok(Self {
            ident: &input.ident,
            generics: &input.generics,
            style,
            fields,
        })
    }
}
