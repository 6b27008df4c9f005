//! The generated `RedisKey` impl.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::Input;
use super::attr::Options;
use super::valid::Piece;

pub(crate) fn expand(input: &Input<'_>, options: &Options, pieces: &[Piece]) -> TokenStream {
    let krate = &options.krate;
    let ident = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let namespace = &options.namespace;
    let writes = pieces.iter().map(|piece| match piece {
        Piece::Literal(text) => quote!(__resilience_w.literal(#text);),
        Piece::Field { index, hash_tag } => {
            let field = &input.fields[*index];
            let member = &field.member;
            let ty = field.ty;
            // Spanned on the field's type: a type without `KeySegment` is reported there.
            let write = quote_spanned! {ty.span()=>
                #krate::__private::redis::write_segment::<#ty>(__resilience_w, &self.#member);
            };
            if *hash_tag {
                quote! {
                    __resilience_w.open_hash_tag();
                    #write
                    __resilience_w.close_hash_tag();
                }
            } else {
                write
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private::redis::RedisKey for #ident #ty_generics #where_clause {
            const NAMESPACE: &'static str = #namespace;

            fn write_key(&self, __resilience_w: &mut #krate::__private::redis::KeyWriter) {
                #(#writes)*
            }
        }
    }
}
