//! Serialization of requests and replies: JSON by default, MessagePack as an option, chosen
//! per message by `content_type` so a server answers each caller in the caller's format.
//! Also the reply envelope and [`Fault`], the error replies the skeleton itself produces.

use crate::error::RpcError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// How a message body is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `application/json`.
    #[default]
    Json,
    /// `application/msgpack`, maps with field names (readable by any MessagePack library).
    MessagePack,
}

impl Format {
    /// The `content_type` a message in this format carries.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::MessagePack => "application/msgpack",
        }
    }

    /// The format a `content_type` names; a missing one means JSON.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Format> {
        match content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
            None | Some("") | Some("application/json") => Some(Format::Json),
            Some("application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack") => {
                Some(Format::MessagePack)
            }
            Some(_) => None,
        }
    }

    /// Serializes `value`.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Format::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Format::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
        }
    }

    /// Deserializes a `T`.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, String> {
        match self {
            Format::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
            Format::MessagePack => rmp_serde::from_slice(body).map_err(|e| e.to_string()),
        }
    }
}

/// A reply body: the method's value, its typed error, or a fault of the RPC layer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope<T, E> {
    Ok(T),
    Err(E),
    Fault(Fault),
}

/// What went wrong on the server before or around the handler (not the handler's own error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The service has no method of that name.
    UnknownMethod,
    /// The request could not be decoded (unsupported content type, wrong arguments).
    BadRequest,
    /// The handler panicked; the server stays up.
    Panic,
    /// Anything else on the server side (a reply that could not be encoded).
    Internal,
}

/// An error reply made by the server skeleton rather than by the method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    pub message: String,
}

impl Fault {
    pub fn unknown_method(service: &str, method: &str) -> Fault {
        Fault {
            kind: FaultKind::UnknownMethod,
            message: format!("service '{service}' has no method '{method}'"),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Fault {
        Fault {
            kind: FaultKind::BadRequest,
            message: message.into(),
        }
    }

    pub fn panic(message: impl Into<String>) -> Fault {
        Fault {
            kind: FaultKind::Panic,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Fault {
        Fault {
            kind: FaultKind::Internal,
            message: message.into(),
        }
    }

    /// The fault as the reply body a caller decodes, in `format` (JSON if even that fails).
    pub fn encode(&self, format: Format) -> Vec<u8> {
        let envelope: Envelope<(), ()> = Envelope::Fault(self.clone());
        format
            .encode(&envelope)
            .unwrap_or_else(|_| serde_json::to_vec(&envelope).unwrap_or_default())
    }
}

/// What a server skeleton's handler produces: the encoded reply body, or a fault.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, Fault>> + Send + 'static>>;

/// Decodes a method's arguments, or says clearly why they do not decode.
pub fn decode_args<A: DeserializeOwned>(
    format: Format,
    body: &[u8],
    service: &str,
    method: &str,
) -> Result<A, Fault> {
    format.decode(body).map_err(|e| {
        Fault::bad_request(format!(
            "cannot decode the arguments of {service}.{method}: {e}"
        ))
    })
}

/// Encodes a handler's result as a reply body.
pub fn encode_result<T: Serialize, E: Serialize>(
    format: Format,
    result: &Result<T, E>,
) -> Result<Vec<u8>, Fault> {
    let envelope: Envelope<&T, &E> = match result {
        Ok(v) => Envelope::Ok(v),
        Err(e) => Envelope::Err(e),
    };
    format
        .encode(&envelope)
        .map_err(|e| Fault::internal(format!("cannot encode the reply: {e}")))
}

/// Decodes a reply body into the method's result; faults and undecodable bodies become
/// [`RpcError`]s converted into the method's error type.
pub fn decode_reply<T: DeserializeOwned, E: DeserializeOwned + From<RpcError>>(
    format: Format,
    body: &[u8],
    service: &str,
    method: &str,
) -> Result<T, E> {
    match format.decode::<Envelope<T, E>>(body) {
        Ok(Envelope::Ok(v)) => Ok(v),
        Ok(Envelope::Err(e)) => Err(e),
        Ok(Envelope::Fault(f)) => Err(E::from(RpcError::from_fault(service, method, f))),
        Err(e) => Err(E::from(RpcError::BadReply {
            service: service.into(),
            method: method.into(),
            reason: e,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Reservation {
        id: u64,
        sku: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum StockError {
        OutOfStock { available: u32 },
        Rpc(RpcError),
    }

    impl From<RpcError> for StockError {
        fn from(e: RpcError) -> Self {
            StockError::Rpc(e)
        }
    }

    #[test]
    fn content_type_picks_the_format_and_defaults_to_json() {
        assert_eq!(Format::from_content_type(None), Some(Format::Json));
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_content_type(Some("application/msgpack")),
            Some(Format::MessagePack)
        );
        assert_eq!(
            Format::from_content_type(Some("application/x-msgpack")),
            Some(Format::MessagePack)
        );
        assert_eq!(Format::from_content_type(Some("text/xml")), None);
    }

    #[test]
    fn ok_and_typed_error_round_trip_in_both_formats() {
        for format in [Format::Json, Format::MessagePack] {
            let ok: Result<Reservation, StockError> = Ok(Reservation {
                id: 7,
                sku: "A-1".into(),
            });
            let body = encode_result(format, &ok).unwrap();
            assert_eq!(
                decode_reply::<Reservation, StockError>(format, &body, "S", "m"),
                ok
            );
            let err: Result<Reservation, StockError> = Err(StockError::OutOfStock { available: 2 });
            let body = encode_result(format, &err).unwrap();
            assert_eq!(
                decode_reply::<Reservation, StockError>(format, &body, "S", "m"),
                err
            );
        }
    }

    #[test]
    fn json_replies_read_as_ok_err_fault_objects() {
        let body = encode_result::<u32, ()>(Format::Json, &Ok(5)).unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), r#"{"ok":5}"#);
        let fault = Fault::unknown_method("Inventory", "nope").encode(Format::Json);
        assert_eq!(
            String::from_utf8(fault).unwrap(),
            r#"{"fault":{"kind":"unknown_method","message":"service 'Inventory' has no method 'nope'"}}"#
        );
    }

    #[test]
    fn fault_reply_becomes_the_methods_error_via_rpc_error() {
        let body = Fault::panic("boom").encode(Format::MessagePack);
        let got = decode_reply::<u32, StockError>(Format::MessagePack, &body, "S", "m");
        assert_eq!(
            got,
            Err(StockError::Rpc(RpcError::Panicked {
                service: "S".into(),
                method: "m".into(),
                message: "boom".into()
            }))
        );
    }

    #[test]
    fn undecodable_reply_is_a_bad_reply_error() {
        let got = decode_reply::<u32, StockError>(Format::Json, b"{not json", "S", "m");
        assert!(
            matches!(got, Err(StockError::Rpc(RpcError::BadReply { .. }))),
            "{got:?}"
        );
    }

    #[test]
    fn undecodable_arguments_are_a_bad_request_fault_naming_the_method() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Args {
            qty: u32,
        }
        let fault = decode_args::<Args>(Format::Json, br#"{"qty":"many"}"#, "Inventory", "reserve")
            .unwrap_err();
        assert_eq!(fault.kind, FaultKind::BadRequest);
        assert!(
            fault
                .message
                .starts_with("cannot decode the arguments of Inventory.reserve:"),
            "{}",
            fault.message
        );
    }
}
