//! `#[warren_rpc::service]`: turns a trait of `async fn`s into an RPC service.
//!
//! From
//!
//! ```ignore
//! #[warren_rpc::service]
//! pub trait Inventory {
//!     #[idempotent]
//!     async fn reserve(&self, sku: String, qty: u32) -> Result<Reservation, InventoryError>;
//! }
//! ```
//!
//! it generates the trait (each method returning a `Send` future, so handlers can run on a
//! multi-threaded runtime), `InventoryClient` (the stub: it implements `Inventory` by calling
//! the remote service, plus `start_*` and `notify_*` variants), `InventoryServer<S>` (the
//! skeleton: decodes a request, calls `S`, encodes the reply) and one hidden argument struct
//! per method. Method arguments travel as an object keyed by parameter name.
//!
//! This crate only rewrites syntax; every rule of the protocol lives in `warren-rpc`, which
//! the generated code calls through `::warren_rpc::__private`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{
    Attribute, Error, Expr, ExprLit, FnArg, GenericArgument, Ident, ItemTrait, Lit, Meta, Pat,
    PathArguments, ReturnType, Token, TraitItem, TraitItemFn, Type,
};

/// Declares an RPC service; see the crate docs. `#[service(name = "inventory")]` sets the
/// service name (default: the trait's name). Mark methods that are safe to run twice with
/// `#[idempotent]`: only those are retried.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let trait_item = syn::parse_macro_input!(item as ItemTrait);
    match expand(attr.into(), trait_item) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// One method of the service, as parsed from the trait.
struct Method {
    attrs: Vec<Attribute>,
    name: Ident,
    params: Vec<(Ident, Type)>,
    ok: Type,
    err: Type,
    idempotent: bool,
}

fn service_name(attr: TokenStream2, default: &Ident) -> syn::Result<String> {
    let mut name = default.to_string();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        match meta {
            Meta::NameValue(nv) if nv.path.is_ident("name") => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(lit), ..
                }) => name = lit.value(),
                other => return Err(Error::new_spanned(other, "expected a string literal")),
            },
            other => return Err(Error::new_spanned(other, "expected `name = \"…\"`")),
        }
    }
    if name.is_empty() {
        return Err(Error::new(
            Span::call_site(),
            "the service name must not be empty",
        ));
    }
    Ok(name)
}

fn parse_method(f: &TraitItemFn) -> syn::Result<Method> {
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        return Err(Error::new_spanned(
            sig.fn_token,
            "RPC methods must be `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &sig.generics,
            "RPC methods cannot be generic",
        ));
    }
    if f.default.is_some() {
        return Err(Error::new_spanned(
            &f.default,
            "RPC methods cannot have a default body",
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        _ => {
            return Err(Error::new_spanned(
                &sig.inputs,
                "RPC methods take `&self` first",
            ))
        }
    }
    let mut params = Vec::new();
    for input in inputs {
        let FnArg::Typed(pt) = input else {
            unreachable!("only the first input can be a receiver")
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(Error::new_spanned(
                &pt.pat,
                "RPC parameters must be plain names (they name the JSON fields)",
            ));
        };
        if let Type::Reference(r) = &*pt.ty {
            return Err(Error::new_spanned(
                r,
                "RPC parameters must be owned values (they are deserialized)",
            ));
        }
        params.push((pi.ident.clone(), (*pt.ty).clone()));
    }
    let (ok, err) = result_types(&sig.output)?;
    let mut idempotent = false;
    let mut attrs = Vec::new();
    for a in &f.attrs {
        if a.path().is_ident("idempotent") {
            a.meta.require_path_only()?;
            idempotent = true;
        } else {
            attrs.push(a.clone());
        }
    }
    Ok(Method {
        attrs,
        name: sig.ident.clone(),
        params,
        ok,
        err,
        idempotent,
    })
}

/// `T` and `E` of a `Result<T, E>` return type.
fn result_types(output: &ReturnType) -> syn::Result<(Type, Type)> {
    let complain = |span: &dyn quote::ToTokens| {
        Error::new_spanned(
            span,
            "RPC methods return `Result<T, E>` where `E: From<warren_rpc::RpcError>`",
        )
    };
    let ReturnType::Type(_, ty) = output else {
        return Err(complain(output));
    };
    let Type::Path(tp) = &**ty else {
        return Err(complain(ty));
    };
    let last = tp.path.segments.last().ok_or_else(|| complain(ty))?;
    if last.ident != "Result" {
        return Err(complain(ty));
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Err(complain(ty));
    };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [ok, err] => Ok(((*ok).clone(), (*err).clone())),
        _ => Err(complain(ty)),
    }
}

fn expand(attr: TokenStream2, item: ItemTrait) -> syn::Result<TokenStream2> {
    let trait_name = &item.ident;
    let service = service_name(attr, trait_name)?;
    if !item.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &item.generics,
            "RPC service traits cannot be generic",
        ));
    }
    let mut methods = Vec::new();
    for ti in &item.items {
        match ti {
            TraitItem::Fn(f) => methods.push(parse_method(f)?),
            other => {
                return Err(Error::new_spanned(
                    other,
                    "RPC service traits contain only `async fn` methods",
                ))
            }
        }
    }
    let vis = &item.vis;
    let trait_attrs = &item.attrs;
    let client = format_ident!("{}Client", trait_name);
    let server = format_ident!("{}Server", trait_name);
    let rpc = quote!(::warren_rpc::__private);

    let args_struct =
        |m: &Method| format_ident!("__{}{}Args", trait_name, to_camel(&m.name.to_string()));

    let trait_methods = methods.iter().map(|m| {
        let Method { attrs, name, params, ok, err, .. } = m;
        let ps = params.iter().map(|(n, t)| quote!(#n: #t));
        quote! {
            #(#attrs)*
            fn #name(&self, #(#ps),*) -> impl ::core::future::Future<Output = ::core::result::Result<#ok, #err>> + ::core::marker::Send;
        }
    });

    let arg_structs = methods.iter().map(|m| {
        let s = args_struct(m);
        let fields = m.params.iter().map(|(n, t)| quote!(#n: #t));
        let serde_path = format!("{}", quote!(::warren_rpc::__private::serde)).replace(' ', "");
        quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            #[derive(#rpc::serde::Serialize, #rpc::serde::Deserialize)]
            #[serde(crate = #serde_path)]
            #vis struct #s { #(#fields),* }
        }
    });

    let method_infos = methods.iter().map(|m| {
        let name = m.name.to_string();
        let idempotent = m.idempotent;
        quote!(#rpc::MethodInfo { name: #name, idempotent: #idempotent })
    });

    let client_impls = methods.iter().enumerate().map(|(i, m)| {
        let Method { name, params, ok, err, .. } = m;
        let s = args_struct(m);
        let ps: Vec<_> = params.iter().map(|(n, t)| quote!(#n: #t)).collect();
        let names: Vec<_> = params.iter().map(|(n, _)| n).collect();
        quote! {
            fn #name(&self, #(#ps),*) -> impl ::core::future::Future<Output = ::core::result::Result<#ok, #err>> + ::core::marker::Send {
                let rpc = self.rpc.clone();
                let service = ::std::clone::Clone::clone(&self.service);
                async move {
                    rpc.call::<#s, #ok, #err>(&service, &<#server<()> as #rpc::Methods>::METHODS[#i], #s { #(#names),* }).await
                }
            }
        }
    });

    let client_extras = methods.iter().enumerate().map(|(i, m)| {
        let Method { name, params, ok, err, .. } = m;
        let s = args_struct(m);
        let start = format_ident!("start_{}", name);
        let notify = format_ident!("notify_{}", name);
        let ps: Vec<_> = params.iter().map(|(n, t)| quote!(#n: #t)).collect();
        let names: Vec<_> = params.iter().map(|(n, _)| n).collect();
        let start_doc = format!("Starts `{name}` now and returns its reply as a future to await later.");
        let notify_doc = format!("Sends `{name}` without waiting for (or asking for) a reply.");
        quote! {
            #[doc = #start_doc]
            pub fn #start(&self, #(#ps),*) -> #rpc::Pending<#ok, #err> {
                self.rpc.start::<#s, #ok, #err>(&self.service, &<#server<()> as #rpc::Methods>::METHODS[#i], #s { #(#names),* })
            }
            #[doc = #notify_doc]
            pub async fn #notify(&self, #(#ps),*) -> ::core::result::Result<(), #err> {
                self.rpc.notify::<#s, #err>(&self.service, &<#server<()> as #rpc::Methods>::METHODS[#i], #s { #(#names),* }).await
            }
        }
    });

    let dispatch_arms = methods.iter().map(|m| {
        let Method { name, params, ok, err, .. } = m;
        let s = args_struct(m);
        let method_name = name.to_string();
        let names: Vec<_> = params.iter().map(|(n, _)| n).collect();
        quote! {
            #method_name => {
                let #s { #(#names),* } = #rpc::decode_args::<#s>(format, body, #service, #method_name)?;
                let service = ::std::sync::Arc::clone(&self.service);
                ::core::result::Result::Ok(::std::boxed::Box::pin(async move {
                    let result: ::core::result::Result<#ok, #err> = service.#name(#(#names),*).await;
                    #rpc::encode_result(format, &result)
                }))
            }
        }
    });

    let client_doc = format!(
        "Client stub of the `{service}` service: implements [`{trait_name}`] by remote calls."
    );
    let server_doc =
        format!("Server skeleton of the `{service}` service: serve it with `warren_rpc::Server`.");

    Ok(quote! {
        #(#trait_attrs)*
        #vis trait #trait_name: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#trait_methods)*
        }

        #(#arg_structs)*

        #[doc = #client_doc]
        #[derive(Clone)]
        #vis struct #client {
            rpc: #rpc::Client,
            service: ::std::sync::Arc<str>,
        }

        impl #client {
            /// The service's default name (the trait's, or `#[service(name = …)]`).
            pub const SERVICE: &'static str = #service;

            /// A stub that calls through `client` with its default call options.
            pub fn new(client: &#rpc::Client) -> Self {
                Self { rpc: client.clone(), service: ::std::sync::Arc::from(#service) }
            }

            /// The same stub calling the service deployed under another name (see
            /// `ServerConfig::name`), e.g. a second version side by side.
            pub fn named(&self, service: &str) -> Self {
                Self { rpc: self.rpc.clone(), service: ::std::sync::Arc::from(service) }
            }

            /// The name of the service this stub calls.
            pub fn service_name(&self) -> &str {
                &self.service
            }

            /// The same stub with other call options (deadline, retries, format).
            pub fn with_options(&self, options: #rpc::CallOptions) -> Self {
                Self { rpc: self.rpc.with_options(options), service: ::std::clone::Clone::clone(&self.service) }
            }

            /// The same stub with another per-call deadline.
            pub fn with_deadline(&self, deadline: ::std::time::Duration) -> Self {
                Self { rpc: self.rpc.with_deadline(deadline), service: ::std::clone::Clone::clone(&self.service) }
            }

            /// The same stub sending requests in another format.
            pub fn with_format(&self, format: #rpc::Format) -> Self {
                Self { rpc: self.rpc.with_format(format), service: ::std::clone::Clone::clone(&self.service) }
            }

            #(#client_extras)*
        }

        impl #trait_name for #client {
            #(#client_impls)*
        }

        #[doc = #server_doc]
        #vis struct #server<S> {
            service: ::std::sync::Arc<S>,
        }

        impl<S> #server<S> {
            /// Wraps the implementation to be served.
            pub fn new(service: S) -> Self {
                Self { service: ::std::sync::Arc::new(service) }
            }

            /// Wraps an implementation shared with other code.
            pub fn from_arc(service: ::std::sync::Arc<S>) -> Self {
                Self { service }
            }
        }

        impl<S> #rpc::Methods for #server<S> {
            const METHODS: &'static [#rpc::MethodInfo] = &[#(#method_infos),*];
        }

        impl<S: #trait_name> #rpc::Service for #server<S> {
            fn name(&self) -> &'static str {
                #service
            }

            fn methods(&self) -> &'static [#rpc::MethodInfo] {
                <Self as #rpc::Methods>::METHODS
            }

            fn call(&self, method: &str, format: #rpc::Format, body: &[u8]) -> ::core::result::Result<#rpc::HandlerFuture, #rpc::Fault> {
                match method {
                    #(#dispatch_arms)*
                    other => ::core::result::Result::Err(#rpc::Fault::unknown_method(#service, other)),
                }
            }
        }
    })
}

/// `reserve_stock` -> `ReserveStock`, for the argument struct's name.
fn to_camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}
