//! The function attributes. Each layer (breaker, retry, ...) parses its options against the
//! function's signature and then replaces the body; [`attribute`] drives them.
//!
//! Stacking: an attribute macro expands before the attributes written below it, and whatever
//! expands last wraps outermost. So that attributes apply "outermost first, as written" (the
//! breaker above `#[retry]` sees one call per retried sequence), a resilience attribute that finds
//! resilience attributes below it defers: it re-emits itself, marked, below them, and they expand
//! first. (Consuming them instead would leave the user's `use resilience::retry` unused.)

mod bulkhead;
mod circuit_breaker;
mod job;
mod rate_limit;
mod retry;
mod shutdown_hook;
mod timeout;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{AttrStyle, Attribute, Block, ItemFn, Meta, ReturnType, Signature, Type};

use crate::args::Errors;

pub(crate) use job::job;
pub(crate) use shutdown_hook::shutdown_hook;

/// The wrapping attributes, which can be stacked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    CircuitBreaker,
    Retry,
    RateLimit,
    Bulkhead,
    Timeout,
}

impl Layer {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "circuit_breaker" => Self::CircuitBreaker,
            "retry" => Self::Retry,
            "rate_limit" => Self::RateLimit,
            "bulkhead" => Self::Bulkhead,
            "timeout" => Self::Timeout,
            _ => return None,
        })
    }

    /// The macro's name.
    fn name(self) -> &'static str {
        match self {
            Self::CircuitBreaker => "circuit_breaker",
            Self::Retry => "retry",
            Self::RateLimit => "rate_limit",
            Self::Bulkhead => "bulkhead",
            Self::Timeout => "timeout",
        }
    }

    /// The attribute as users write it, for messages.
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Self::CircuitBreaker => "#[circuit_breaker]",
            Self::Retry => "#[retry]",
            Self::RateLimit => "#[rate_limit]",
            Self::Bulkhead => "#[bulkhead]",
            Self::Timeout => "#[timeout]",
        }
    }
}

/// One layer with its options checked, ready to wrap a body.
enum Built {
    CircuitBreaker(circuit_breaker::Config),
    Retry(retry::Config),
    RateLimit(rate_limit::Config),
    Bulkhead(bulkhead::Config),
    Timeout(timeout::Config),
}

impl Built {
    fn new(layer: Layer, args: TokenStream, sig: &Signature) -> syn::Result<Self> {
        Ok(match layer {
            Layer::CircuitBreaker => Self::CircuitBreaker(circuit_breaker::Config::new(args, sig)?),
            Layer::Retry => Self::Retry(retry::Config::new(args, sig)?),
            Layer::RateLimit => Self::RateLimit(rate_limit::Config::new(args, sig)?),
            Layer::Bulkhead => Self::Bulkhead(bulkhead::Config::new(args, sig)?),
            Layer::Timeout => Self::Timeout(timeout::Config::new(args, sig)?),
        })
    }

    fn krate(&self) -> &syn::Path {
        match self {
            Self::CircuitBreaker(c) => &c.krate,
            Self::Retry(c) => &c.krate,
            Self::RateLimit(c) => &c.krate,
            Self::Bulkhead(c) => &c.krate,
            Self::Timeout(c) => &c.krate,
        }
    }

    fn wrap(&self, sig: &Signature, body: Block) -> Block {
        let tokens = match self {
            Self::CircuitBreaker(c) => c.wrap(sig, body),
            Self::Retry(c) => c.wrap(sig, body),
            Self::RateLimit(c) => c.wrap(sig, body),
            Self::Bulkhead(c) => c.wrap(sig, body),
            Self::Timeout(c) => c.wrap(sig, body),
        };
        Block {
            brace_token: Default::default(),
            stmts: vec![syn::Stmt::Expr(syn::Expr::Verbatim(tokens), None)],
        }
    }
}

/// Marks an attribute that was moved below the others (see the module docs).
const STACKED: &str = "__resilience_stacked";

/// Entry point of every wrapping attribute.
pub(crate) fn attribute(layer: Layer, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(error) => {
            let message = format!(
                "`{}` applies to a function or method with a body: {error}",
                layer.attr()
            );
            let error = syn::Error::new(error.span(), message);
            return with_error(item, error);
        }
    };
    let (stacked, args) = strip_marker(args);
    let built = match Built::new(layer, args.clone(), &func.sig) {
        Ok(built) => built,
        Err(error) => return with_error(func.into_token_stream(), error),
    };

    let pending = func
        .attrs
        .iter()
        .any(|a| a.style == AttrStyle::Outer && stacked_layer(a).is_some() && !is_stacked(a));
    if pending && !stacked {
        // Let the attributes below expand first: move this one under them, marked.
        let krate = built.krate();
        let name = syn::Ident::new(layer.name(), Span::call_site());
        let marker = syn::Ident::new(STACKED, Span::call_site());
        let this: Attribute = syn::parse_quote!(#[#krate::#name(#marker, #args)]);
        let (marked, mut attrs): (Vec<Attribute>, Vec<Attribute>) =
            std::mem::take(&mut func.attrs).into_iter().partition(|a| {
                a.style == AttrStyle::Outer && stacked_layer(a).is_some() && is_stacked(a)
            });
        attrs.push(this);
        attrs.extend(marked);
        func.attrs = attrs;
        return func.into_token_stream();
    }

    // An inner `#![...]` of the body applies to the whole function: keep it, as an outer one.
    for attr in &mut func.attrs {
        attr.style = AttrStyle::Outer;
    }
    let body = *func.block;
    func.block = Box::new(built.wrap(&func.sig, body));
    match built {
        Built::Retry(_) => retry::Config::adjust_signature(&mut func.sig),
        // These move the arguments into a block with `move_args`.
        Built::CircuitBreaker(_) | Built::Timeout(_) => strip_arg_mut(&mut func.sig),
        Built::RateLimit(_) | Built::Bulkhead(_) => {}
    }
    func.into_token_stream()
}

/// Splits the deferral marker off an attribute's arguments.
fn strip_marker(args: TokenStream) -> (bool, TokenStream) {
    let mut tokens = args.clone().into_iter();
    match tokens.next() {
        Some(proc_macro2::TokenTree::Ident(ident)) if ident == STACKED => {
            // Skip the comma after the marker, if any.
            let rest: TokenStream = tokens
                .skip_while(|t| matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ','))
                .collect();
            (true, rest)
        }
        _ => (false, args),
    }
}

fn is_stacked(attr: &Attribute) -> bool {
    match &attr.meta {
        Meta::List(list) => strip_marker(list.tokens.clone()).0,
        _ => false,
    }
}

/// The item unchanged, followed by the error: one mistake does not cascade into unrelated
/// errors, and IDEs keep seeing the function.
pub(crate) fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    quote!(#item #error)
}

/// The resilience layer an attribute stands for: `retry`, `resilience::retry`, ...
fn stacked_layer(attr: &Attribute) -> Option<Layer> {
    let path = attr.path();
    let last = path.segments.last()?;
    let layer = Layer::from_name(&last.ident.to_string())?;
    let plain = path.segments.len() == 1 && path.leading_colon.is_none();
    let ours = path.segments.len() == 2 && path.segments[0].ident == "resilience";
    (plain || ours).then_some(layer)
}

/// The declared return type for type inference, with each `impl Trait` replaced by `_`.
fn inference_type(sig: &Signature) -> Type {
    struct ReplaceImplTrait;
    impl VisitMut for ReplaceImplTrait {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::ImplTrait(it) = ty {
                *ty = Type::Infer(syn::TypeInfer {
                    underscore_token: syn::Token![_](it.span()),
                });
            } else {
                syn::visit_mut::visit_type_mut(self, ty);
            }
        }
    }
    match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => {
            let mut ty = (**ty).clone();
            ReplaceImplTrait.visit_type_mut(&mut ty);
            ty
        }
    }
}

/// A "fake return edge": an unreachable `return` of a value of the declared return type, so
/// type inference inside a closure or async block sees the function's real return type (for
/// `?` conversions and `.into()`).
fn fake_return(sig: &Signature) -> TokenStream {
    let ty = inference_type(sig);
    quote! {
        #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return)]
        if let ::core::option::Option::Some(__resilience_ret) =
            ::core::option::Option::None::<#ty>
        {
            return __resilience_ret;
        }
    }
}

/// The span to blame when the return type does not fit: the declared type's first token (on
/// stable a span cannot cover several tokens), or the function's name when there is none.
fn return_span(sig: &Signature) -> Span {
    match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    }
}

/// `path::to::runtime::__private::name(args)`, the path and the parentheses spanned on the
/// return type: an unmet bound of the call — a return type that is not a `Result`, an error type
/// without the `From` the layer needs — is reported there, not on the whole attribute. `args`
/// keep their own spans.
fn private_call(krate: &syn::Path, sig: &Signature, name: &str, args: TokenStream) -> TokenStream {
    let span = return_span(sig);
    let path = private_fn(krate, span, name);
    let mut parens = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, args);
    parens.set_span(span);
    quote!(#path #parens)
}

/// `call.await`, the `.await` spanned on the return type too: rustc reports an async call's unmet
/// bound a second time at its `.await`, and with the same span the two reports merge into one.
fn awaited(sig: &Signature, call: TokenStream) -> TokenStream {
    quote_spanned!(return_span(sig)=> #call.await)
}

/// Re-binds, inside a block the body moves into, the arguments the body mentions: `let x = x;`
/// moves each into the block (as `async move` would), while `self` is left to the block's own
/// capture inference, so a `&mut self` is re-borrowed, not moved, and an outer `#[retry]` can run
/// the block again (a `self` cannot be re-bound by name). Each binding keeps the argument's `mut`
/// ([`strip_arg_mut`] takes it off the signature, where it would now be unused).
fn move_args(sig: &Signature, body: &TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    for arg in &sig.inputs {
        let syn::FnArg::Typed(pt) = arg else { continue };
        for (ident, mutable) in bound_idents(&pt.pat) {
            if retry::mentions(body.clone(), &ident) {
                let m = mutable.then(|| quote!(mut));
                out.extend(quote! {
                    #[allow(unused_variables, unused_mut)]
                    let #m #ident = #ident;
                });
            }
        }
    }
    out
}

/// The names a pattern binds by value, with whether each is `mut`.
fn bound_idents(pat: &syn::Pat) -> Vec<(syn::Ident, bool)> {
    // `VisitMut` on a copy: the workspace enables syn's `visit-mut`, not `visit`.
    struct Collect(Vec<(syn::Ident, bool)>);
    impl VisitMut for Collect {
        fn visit_pat_ident_mut(&mut self, pi: &mut syn::PatIdent) {
            self.0.push((
                pi.ident.clone(),
                pi.by_ref.is_none() && pi.mutability.is_some(),
            ));
            syn::visit_mut::visit_pat_ident_mut(self, pi);
        }
    }
    let mut collect = Collect(Vec::new());
    collect.visit_pat_mut(&mut pat.clone());
    collect.0
}

/// Takes `mut` off the by-value bindings of the arguments (see [`move_args`]).
fn strip_arg_mut(sig: &mut Signature) {
    struct Strip;
    impl VisitMut for Strip {
        fn visit_pat_ident_mut(&mut self, pi: &mut syn::PatIdent) {
            if pi.by_ref.is_none() {
                pi.mutability = None;
            }
            syn::visit_mut::visit_pat_ident_mut(self, pi);
        }
    }
    for arg in &mut sig.inputs {
        if let syn::FnArg::Typed(pt) = arg {
            Strip.visit_pat_mut(&mut pt.pat);
        }
    }
}

/// Rejects a function without a declared return type: every wrapping layer needs a `Result`.
fn require_result(sig: &Signature, layer: Layer, errors: &mut Errors) {
    if let ReturnType::Default = sig.output {
        errors.at(
            sig.paren_token.span.close(),
            format!(
                "`{}` needs a function that returns a `Result` (its error type receives the layer's rejections)",
                layer.attr()
            ),
        );
    }
    if let Some(c) = &sig.constness {
        errors.at(
            c.span,
            format!("`{}` cannot wrap a `const fn`", layer.attr()),
        );
    }
}

/// Rejects a non-async function, for layers that need to await.
fn require_async(sig: &Signature, layer: Layer, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            format!("`{}` needs an `async fn`", layer.attr()),
        );
    }
}

/// The statements of `body`, with the fake return edge in front, for a closure or async block.
fn inner_body(sig: &Signature, body: &Block) -> TokenStream {
    let fake = fake_return(sig);
    let stmts = &body.stmts;
    quote!(#fake #(#stmts)*)
}

/// `path::to::runtime::__private` with the span of `span` (so a missing item is reported there).
fn private(krate: &syn::Path, span: Span) -> TokenStream {
    quote_spanned!(span=> #krate::__private)
}

/// `path::to::runtime::__private::name`, every token spanned at `span`: a call whose bounds fail
/// (a missing `From` conversion, a non-`Result` return type) is reported there.
fn private_fn(krate: &syn::Path, span: Span, name: &str) -> TokenStream {
    let name = syn::Ident::new(name, span);
    respan(quote!(#krate::__private::#name), span)
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(group) = &tree {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = proc_macro2::TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// The function's path, `module::path::fn_name`, as a `&'static str` expression: the name of
/// an instrument an attribute creates (its metrics' `name` label).
fn fn_path(sig: &Signature) -> TokenStream {
    use syn::ext::IdentExt;
    let fn_name = syn::LitStr::new(&sig.ident.unraw().to_string(), sig.ident.span());
    quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
}
