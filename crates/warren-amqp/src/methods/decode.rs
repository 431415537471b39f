//! Method frame payload -> [`Method`]: class id, method id, then the arguments in the order
//! the spec lists them. Reserved arguments (`ticket`, `reserved-1`, …) are read past and
//! dropped; consecutive bits come from one octet, first field in the lowest bit.

use super::*;
use crate::table::read_table;
use crate::wire::{bit, Reader};
use crate::Error;

#[inline]
pub(super) fn decode(payload: &Bytes) -> Result<Method, Error> {
    let mut r = Reader::new(payload);
    if r.remaining() < 4 {
        return Err(Error::Syntax(format!(
            "method frame payload of {} bytes is too short to hold class and method ids",
            r.remaining()
        )));
    }
    let class_id = r.u16("class-id")?;
    let method_id = r.u16("method-id")?;
    let Some(name) = method_name(class_id, method_id) else {
        return Err(Error::UnknownMethod {
            class_id,
            method_id,
        });
    };
    arguments(class_id, method_id, &mut r)
        .and_then(|m| r.finish("the arguments").map(|()| m))
        .map_err(|e| in_method(e, name))
}

#[cold]
fn in_method(e: Error, name: &str) -> Error {
    match e {
        Error::Syntax(text) => Error::Syntax(format!("{name}: {text}")),
        other => other,
    }
}

fn arguments(class_id: u16, method_id: u16, r: &mut Reader<'_>) -> Result<Method, Error> {
    use Method as M;
    Ok(match (class_id, method_id) {
        (60, 40) => {
            r.u16("ticket")?;
            let exchange = r.shortstr("exchange")?;
            let routing_key = r.shortstr("routing-key")?;
            let bits = r.u8("mandatory/immediate bits")?;
            M::BasicPublish(BasicPublish {
                exchange,
                routing_key,
                mandatory: bit(bits, 0),
                immediate: bit(bits, 1),
            })
        }
        (60, 80) => M::BasicAck(BasicAck {
            delivery_tag: r.u64("delivery-tag")?,
            multiple: bit(r.u8("multiple bit")?, 0),
        }),
        (60, 120) => {
            let delivery_tag = r.u64("delivery-tag")?;
            let bits = r.u8("multiple/requeue bits")?;
            M::BasicNack(BasicNack {
                delivery_tag,
                multiple: bit(bits, 0),
                requeue: bit(bits, 1),
            })
        }
        (60, 90) => M::BasicReject(BasicReject {
            delivery_tag: r.u64("delivery-tag")?,
            requeue: bit(r.u8("requeue bit")?, 0),
        }),
        (60, 60) => M::BasicDeliver(BasicDeliver {
            consumer_tag: r.shortstr("consumer-tag")?,
            delivery_tag: r.u64("delivery-tag")?,
            redelivered: bit(r.u8("redelivered bit")?, 0),
            exchange: r.shortstr("exchange")?,
            routing_key: r.shortstr("routing-key")?,
        }),
        (60, 10) => M::BasicQos(BasicQos {
            prefetch_size: r.u32("prefetch-size")?,
            prefetch_count: r.u16("prefetch-count")?,
            global: bit(r.u8("global bit")?, 0),
        }),
        (60, 11) => M::BasicQosOk,
        (60, 20) => {
            r.u16("ticket")?;
            let queue = r.shortstr("queue")?;
            let consumer_tag = r.shortstr("consumer-tag")?;
            let bits = r.u8("no-local/no-ack/exclusive/nowait bits")?;
            M::BasicConsume(BasicConsume {
                queue,
                consumer_tag,
                no_local: bit(bits, 0),
                no_ack: bit(bits, 1),
                exclusive: bit(bits, 2),
                nowait: bit(bits, 3),
                arguments: read_table(r, "arguments")?,
            })
        }
        (60, 21) => M::BasicConsumeOk {
            consumer_tag: r.shortstr("consumer-tag")?,
        },
        (60, 30) => M::BasicCancel(BasicCancel {
            consumer_tag: r.shortstr("consumer-tag")?,
            nowait: bit(r.u8("nowait bit")?, 0),
        }),
        (60, 31) => M::BasicCancelOk {
            consumer_tag: r.shortstr("consumer-tag")?,
        },
        (60, 50) => M::BasicReturn(BasicReturn {
            reply_code: r.u16("reply-code")?,
            reply_text: r.shortstr("reply-text")?,
            exchange: r.shortstr("exchange")?,
            routing_key: r.shortstr("routing-key")?,
        }),
        (60, 70) => {
            r.u16("ticket")?;
            M::BasicGet(BasicGet {
                queue: r.shortstr("queue")?,
                no_ack: bit(r.u8("no-ack bit")?, 0),
            })
        }
        (60, 71) => M::BasicGetOk(BasicGetOk {
            delivery_tag: r.u64("delivery-tag")?,
            redelivered: bit(r.u8("redelivered bit")?, 0),
            exchange: r.shortstr("exchange")?,
            routing_key: r.shortstr("routing-key")?,
            message_count: r.u32("message-count")?,
        }),
        (60, 72) => {
            r.skip_shortstr("cluster-id")?;
            M::BasicGetEmpty
        }
        (60, 100) => M::BasicRecoverAsync {
            requeue: bit(r.u8("requeue bit")?, 0),
        },
        (60, 110) => M::BasicRecover {
            requeue: bit(r.u8("requeue bit")?, 0),
        },
        (60, 111) => M::BasicRecoverOk,

        (10, 10) => M::ConnectionStart(ConnectionStart {
            version_major: r.u8("version-major")?,
            version_minor: r.u8("version-minor")?,
            server_properties: read_table(r, "server-properties")?,
            mechanisms: r.longstr("mechanisms")?,
            locales: r.longstr("locales")?,
        }),
        (10, 11) => M::ConnectionStartOk(ConnectionStartOk {
            client_properties: read_table(r, "client-properties")?,
            mechanism: r.shortstr("mechanism")?,
            response: r.longstr("response")?,
            locale: r.shortstr("locale")?,
        }),
        (10, 20) => M::ConnectionSecure(ConnectionSecure {
            challenge: r.longstr("challenge")?,
        }),
        (10, 21) => M::ConnectionSecureOk(ConnectionSecureOk {
            response: r.longstr("response")?,
        }),
        (10, 30) => M::ConnectionTune(ConnectionTune {
            channel_max: r.u16("channel-max")?,
            frame_max: r.u32("frame-max")?,
            heartbeat: r.u16("heartbeat")?,
        }),
        (10, 31) => M::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: r.u16("channel-max")?,
            frame_max: r.u32("frame-max")?,
            heartbeat: r.u16("heartbeat")?,
        }),
        (10, 40) => {
            let virtual_host = r.shortstr("virtual-host")?;
            r.skip_shortstr("capabilities")?;
            r.u8("insist bit")?;
            M::ConnectionOpen(ConnectionOpen { virtual_host })
        }
        (10, 41) => {
            r.skip_shortstr("known-hosts")?;
            M::ConnectionOpenOk
        }
        (10, 50) => M::ConnectionClose(ConnectionClose {
            reply_code: r.u16("reply-code")?,
            reply_text: r.shortstr("reply-text")?,
            class_id: r.u16("class-id")?,
            method_id: r.u16("method-id")?,
        }),
        (10, 51) => M::ConnectionCloseOk,
        (10, 60) => M::ConnectionBlocked(ConnectionBlocked {
            reason: r.shortstr("reason")?,
        }),
        (10, 61) => M::ConnectionUnblocked,
        (10, 70) => M::ConnectionUpdateSecret(ConnectionUpdateSecret {
            new_secret: r.longstr("new-secret")?,
            reason: r.shortstr("reason")?,
        }),
        (10, 71) => M::ConnectionUpdateSecretOk,

        (20, 10) => {
            r.skip_shortstr("out-of-band")?;
            M::ChannelOpen
        }
        (20, 11) => {
            r.skip_longstr("channel-id")?;
            M::ChannelOpenOk
        }
        (20, 20) => M::ChannelFlow(ChannelFlow {
            active: bit(r.u8("active bit")?, 0),
        }),
        (20, 21) => M::ChannelFlowOk(ChannelFlow {
            active: bit(r.u8("active bit")?, 0),
        }),
        (20, 40) => M::ChannelClose(ChannelClose {
            reply_code: r.u16("reply-code")?,
            reply_text: r.shortstr("reply-text")?,
            class_id: r.u16("class-id")?,
            method_id: r.u16("method-id")?,
        }),
        (20, 41) => M::ChannelCloseOk,

        (30, 10) => {
            let realm = r.shortstr("realm")?;
            let bits = r.u8("exclusive/passive/active/write/read bits")?;
            M::AccessRequest(AccessRequest {
                realm,
                exclusive: bit(bits, 0),
                passive: bit(bits, 1),
                active: bit(bits, 2),
                write: bit(bits, 3),
                read: bit(bits, 4),
            })
        }
        (30, 11) => {
            r.u16("ticket")?;
            M::AccessRequestOk
        }

        (40, 10) => {
            r.u16("ticket")?;
            let exchange = r.shortstr("exchange")?;
            let kind = r.shortstr("type")?;
            let bits = r.u8("passive/durable/auto-delete/internal/nowait bits")?;
            M::ExchangeDeclare(ExchangeDeclare {
                exchange,
                kind,
                passive: bit(bits, 0),
                durable: bit(bits, 1),
                auto_delete: bit(bits, 2),
                internal: bit(bits, 3),
                nowait: bit(bits, 4),
                arguments: read_table(r, "arguments")?,
            })
        }
        (40, 11) => M::ExchangeDeclareOk,
        (40, 20) => {
            r.u16("ticket")?;
            let exchange = r.shortstr("exchange")?;
            let bits = r.u8("if-unused/nowait bits")?;
            M::ExchangeDelete(ExchangeDelete {
                exchange,
                if_unused: bit(bits, 0),
                nowait: bit(bits, 1),
            })
        }
        (40, 21) => M::ExchangeDeleteOk,
        (40, 30) => M::ExchangeBind(exchange_bind(r)?),
        (40, 31) => M::ExchangeBindOk,
        (40, 40) => M::ExchangeUnbind(exchange_bind(r)?),
        (40, 51) => M::ExchangeUnbindOk,

        (50, 10) => {
            r.u16("ticket")?;
            let queue = r.shortstr("queue")?;
            let bits = r.u8("passive/durable/exclusive/auto-delete/nowait bits")?;
            M::QueueDeclare(QueueDeclare {
                queue,
                passive: bit(bits, 0),
                durable: bit(bits, 1),
                exclusive: bit(bits, 2),
                auto_delete: bit(bits, 3),
                nowait: bit(bits, 4),
                arguments: read_table(r, "arguments")?,
            })
        }
        (50, 11) => M::QueueDeclareOk(QueueDeclareOk {
            queue: r.shortstr("queue")?,
            message_count: r.u32("message-count")?,
            consumer_count: r.u32("consumer-count")?,
        }),
        (50, 20) => {
            r.u16("ticket")?;
            M::QueueBind(QueueBind {
                queue: r.shortstr("queue")?,
                exchange: r.shortstr("exchange")?,
                routing_key: r.shortstr("routing-key")?,
                nowait: bit(r.u8("nowait bit")?, 0),
                arguments: read_table(r, "arguments")?,
            })
        }
        (50, 21) => M::QueueBindOk,
        (50, 30) => {
            r.u16("ticket")?;
            M::QueuePurge(QueuePurge {
                queue: r.shortstr("queue")?,
                nowait: bit(r.u8("nowait bit")?, 0),
            })
        }
        (50, 31) => M::QueuePurgeOk {
            message_count: r.u32("message-count")?,
        },
        (50, 40) => {
            r.u16("ticket")?;
            let queue = r.shortstr("queue")?;
            let bits = r.u8("if-unused/if-empty/nowait bits")?;
            M::QueueDelete(QueueDelete {
                queue,
                if_unused: bit(bits, 0),
                if_empty: bit(bits, 1),
                nowait: bit(bits, 2),
            })
        }
        (50, 41) => M::QueueDeleteOk {
            message_count: r.u32("message-count")?,
        },
        (50, 50) => {
            r.u16("ticket")?;
            M::QueueUnbind(QueueUnbind {
                queue: r.shortstr("queue")?,
                exchange: r.shortstr("exchange")?,
                routing_key: r.shortstr("routing-key")?,
                arguments: read_table(r, "arguments")?,
            })
        }
        (50, 51) => M::QueueUnbindOk,

        (85, 10) => M::ConfirmSelect {
            nowait: bit(r.u8("nowait bit")?, 0),
        },
        (85, 11) => M::ConfirmSelectOk,

        (90, 10) => M::TxSelect,
        (90, 11) => M::TxSelectOk,
        (90, 20) => M::TxCommit,
        (90, 21) => M::TxCommitOk,
        (90, 30) => M::TxRollback,
        (90, 31) => M::TxRollbackOk,

        _ => {
            return Err(Error::UnknownMethod {
                class_id,
                method_id,
            })
        }
    })
}

/// `exchange.bind` and `exchange.unbind` share one argument list.
fn exchange_bind(r: &mut Reader<'_>) -> Result<ExchangeBind, Error> {
    r.u16("ticket")?;
    Ok(ExchangeBind {
        destination: r.shortstr("destination")?,
        source: r.shortstr("source")?,
        routing_key: r.shortstr("routing-key")?,
        nowait: bit(r.u8("nowait bit")?, 0),
        arguments: read_table(r, "arguments")?,
    })
}
