//! Every AMQP 0-9-1 method, as RabbitMQ implements the protocol (including its extensions:
//! `basic.nack`, `confirm.*`, `exchange.bind/unbind`, `connection.blocked/unblocked`,
//! `connection.update-secret`). Reserved fields (`ticket`, `reserved-1`, …) are not kept:
//! they are skipped on decode and written as zero on encode.
//!
//! Layout of the wire format (class id, method id, then arguments; consecutive bits packed
//! into octets) lives in the submodules: `decode` and `encode` (one mirror of the other) and
//! `names` (ids and RabbitMQ's names).

use crate::{FieldTable, ShortStr};
use bytes::Bytes;

mod decode;
mod encode;
mod names;

pub use names::{
    method_name, BASIC_PUBLISH, CLASS_ACCESS, CLASS_BASIC, CLASS_CHANNEL, CLASS_CONFIRM, CLASS_CONNECTION,
    CLASS_EXCHANGE, CLASS_QUEUE, CLASS_TX,
};

// ---- class connection (10) ----
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionStart {
    pub version_major: u8,
    pub version_minor: u8,
    pub server_properties: FieldTable,
    pub mechanisms: Bytes,
    pub locales: Bytes,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionStartOk {
    pub client_properties: FieldTable,
    pub mechanism: ShortStr,
    pub response: Bytes,
    pub locale: ShortStr,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSecure {
    pub challenge: Bytes,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSecureOk {
    pub response: Bytes,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionTune {
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionTuneOk {
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionOpen {
    pub virtual_host: ShortStr,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionClose {
    pub reply_code: u16,
    pub reply_text: ShortStr,
    pub class_id: u16,
    pub method_id: u16,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionBlocked {
    pub reason: ShortStr,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionUpdateSecret {
    pub new_secret: Bytes,
    pub reason: ShortStr,
}

// ---- class channel (20) ----
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelFlow {
    pub active: bool,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelClose {
    pub reply_code: u16,
    pub reply_text: ShortStr,
    pub class_id: u16,
    pub method_id: u16,
}

// ---- class access (30), accepted for old clients ----
#[derive(Debug, Clone, PartialEq)]
pub struct AccessRequest {
    pub realm: ShortStr,
    pub exclusive: bool,
    pub passive: bool,
    pub active: bool,
    pub write: bool,
    pub read: bool,
}

// ---- class exchange (40) ----
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDeclare {
    pub exchange: ShortStr,
    pub kind: ShortStr,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub nowait: bool,
    pub arguments: FieldTable,
}
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDelete {
    pub exchange: ShortStr,
    pub if_unused: bool,
    pub nowait: bool,
}
/// Used for both `exchange.bind` and `exchange.unbind`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeBind {
    pub destination: ShortStr,
    pub source: ShortStr,
    pub routing_key: ShortStr,
    pub nowait: bool,
    pub arguments: FieldTable,
}

// ---- class queue (50) ----
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDeclare {
    pub queue: ShortStr,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub nowait: bool,
    pub arguments: FieldTable,
}
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDeclareOk {
    pub queue: ShortStr,
    pub message_count: u32,
    pub consumer_count: u32,
}
#[derive(Debug, Clone, PartialEq)]
pub struct QueueBind {
    pub queue: ShortStr,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub nowait: bool,
    pub arguments: FieldTable,
}
/// `queue.unbind` has no `nowait` bit.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueUnbind {
    pub queue: ShortStr,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}
#[derive(Debug, Clone, PartialEq)]
pub struct QueuePurge {
    pub queue: ShortStr,
    pub nowait: bool,
}
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDelete {
    pub queue: ShortStr,
    pub if_unused: bool,
    pub if_empty: bool,
    pub nowait: bool,
}

// ---- class basic (60) ----
#[derive(Debug, Clone, PartialEq)]
pub struct BasicQos {
    pub prefetch_size: u32,
    pub prefetch_count: u16,
    pub global: bool,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BasicConsume {
    pub queue: ShortStr,
    pub consumer_tag: ShortStr,
    pub no_local: bool,
    pub no_ack: bool,
    pub exclusive: bool,
    pub nowait: bool,
    pub arguments: FieldTable,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BasicCancel {
    pub consumer_tag: ShortStr,
    pub nowait: bool,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BasicPublish {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub mandatory: bool,
    pub immediate: bool,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BasicReturn {
    pub reply_code: u16,
    pub reply_text: ShortStr,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BasicDeliver {
    pub consumer_tag: ShortStr,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BasicGet {
    pub queue: ShortStr,
    pub no_ack: bool,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BasicGetOk {
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub message_count: u32,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BasicAck {
    pub delivery_tag: u64,
    pub multiple: bool,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BasicReject {
    pub delivery_tag: u64,
    pub requeue: bool,
}
#[derive(Debug, Clone, PartialEq)]
pub struct BasicNack {
    pub delivery_tag: u64,
    pub multiple: bool,
    pub requeue: bool,
}

/// One decoded method. Variant names are `ClassMethod`.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    ConnectionStart(ConnectionStart),
    ConnectionStartOk(ConnectionStartOk),
    ConnectionSecure(ConnectionSecure),
    ConnectionSecureOk(ConnectionSecureOk),
    ConnectionTune(ConnectionTune),
    ConnectionTuneOk(ConnectionTuneOk),
    ConnectionOpen(ConnectionOpen),
    ConnectionOpenOk,
    ConnectionClose(ConnectionClose),
    ConnectionCloseOk,
    ConnectionBlocked(ConnectionBlocked),
    ConnectionUnblocked,
    ConnectionUpdateSecret(ConnectionUpdateSecret),
    ConnectionUpdateSecretOk,

    ChannelOpen,
    ChannelOpenOk,
    ChannelFlow(ChannelFlow),
    ChannelFlowOk(ChannelFlow),
    ChannelClose(ChannelClose),
    ChannelCloseOk,

    AccessRequest(AccessRequest),
    AccessRequestOk,

    ExchangeDeclare(ExchangeDeclare),
    ExchangeDeclareOk,
    ExchangeDelete(ExchangeDelete),
    ExchangeDeleteOk,
    ExchangeBind(ExchangeBind),
    ExchangeBindOk,
    ExchangeUnbind(ExchangeBind),
    ExchangeUnbindOk,

    QueueDeclare(QueueDeclare),
    QueueDeclareOk(QueueDeclareOk),
    QueueBind(QueueBind),
    QueueBindOk,
    QueuePurge(QueuePurge),
    QueuePurgeOk { message_count: u32 },
    QueueDelete(QueueDelete),
    QueueDeleteOk { message_count: u32 },
    QueueUnbind(QueueUnbind),
    QueueUnbindOk,

    BasicQos(BasicQos),
    BasicQosOk,
    BasicConsume(BasicConsume),
    BasicConsumeOk { consumer_tag: ShortStr },
    BasicCancel(BasicCancel),
    BasicCancelOk { consumer_tag: ShortStr },
    BasicPublish(BasicPublish),
    BasicReturn(BasicReturn),
    BasicDeliver(BasicDeliver),
    BasicGet(BasicGet),
    BasicGetOk(BasicGetOk),
    BasicGetEmpty,
    BasicAck(BasicAck),
    BasicReject(BasicReject),
    BasicRecoverAsync { requeue: bool },
    BasicRecover { requeue: bool },
    BasicRecoverOk,
    BasicNack(BasicNack),

    ConfirmSelect { nowait: bool },
    ConfirmSelectOk,

    TxSelect,
    TxSelectOk,
    TxCommit,
    TxCommitOk,
    TxRollback,
    TxRollbackOk,
}

impl Method {
    /// Decodes a method frame's payload (class id, method id, arguments). String and byte
    /// arguments are slices of `payload` (no copy). Truncated or trailing bytes, bad UTF-8 or
    /// a bad field table are [`Error::Syntax`](crate::Error::Syntax) naming the method and
    /// field; an id pair outside the protocol is [`Error::UnknownMethod`](crate::Error::UnknownMethod).
    #[inline]
    pub fn decode(payload: Bytes) -> Result<Method, crate::Error> {
        decode::decode(&payload)
    }

    /// Appends the method frame's payload (class id, method id, arguments).
    pub fn encode_payload(&self, out: &mut bytes::BytesMut) {
        encode::encode(self, out)
    }
}
