//! Sans-IO AMQP 0-9-1 codec, with RabbitMQ's field-table types.
//!
//! Bytes in -> frames out, frames in -> bytes out. This crate owns the wire format and nothing
//! else: it never touches a socket, a clock or a file, and it knows nothing of brokers.
//! Decoding never panics on any input; every failure is a typed [`Error`] that carries the
//! AMQP reply code the peer should be closed with.

pub mod content;
pub mod error;
pub mod frame;
pub mod methods;
pub mod properties;
pub mod shortstr;
pub mod table;
mod wire;

pub use error::{Error, ReplyCode};
pub use frame::{
    encode_basic_header, encode_body_frames, encode_content_header, encode_deliver,
    encode_heartbeat, encode_method, encode_method_with_content, ContentHeader, Frame,
    FrameDecoder, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD,
    FRAME_MIN_SIZE, FRAME_OVERHEAD, PROTOCOL_HEADER,
};
pub use methods::*;
pub use properties::BasicProperties;
pub use shortstr::ShortStr;
pub use table::{Decimal, FieldTable, FieldValue, MAX_NESTING_DEPTH};
