//! `#[derive(RedisKey)]`: parse the type ([`ast`]) and its `#[redis_key(...)]` options
//! ([`attr`]), check the template against the fields ([`valid`]), generate the impl ([`expand`]).

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro2::TokenStream;

/// Entry point of the derive.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    match try_derive(input) {
        Ok(tokens) => tokens,
        Err(error) => error.into_compile_error(),
    }
}

fn try_derive(input: TokenStream) -> syn::Result<TokenStream> {
    let input = syn::parse2::<syn::DeriveInput>(input)?;
    let item = ast::Input::from_syn(&input)?;
    let options = attr::Options::from_attrs(&input)?;
    let key = valid::check(&item, &options)?;
    Ok(expand::expand(&item, &options, &key))
}
