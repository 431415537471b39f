//! [`Method`] -> method frame payload, the mirror of `decode.rs`: reserved arguments are
//! written as zero / empty, consecutive bits packed into one octet.

use super::*;
use crate::wire::{pack_bits, put_longstr, put_shortstr, put_shortstr_bytes};
use bytes::{BufMut, BytesMut};

pub(super) fn encode(m: &Method, out: &mut BytesMut) {
    use Method as M;
    let (class_id, method_id) = m.id();
    out.put_u16(class_id);
    out.put_u16(method_id);
    match m {
        M::BasicPublish(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.exchange);
            put_shortstr(out, &a.routing_key);
            out.put_u8(pack_bits(&[a.mandatory, a.immediate]));
        }
        M::BasicDeliver(a) => {
            put_shortstr(out, &a.consumer_tag);
            out.put_u64(a.delivery_tag);
            out.put_u8(pack_bits(&[a.redelivered]));
            put_shortstr(out, &a.exchange);
            put_shortstr(out, &a.routing_key);
        }
        M::BasicAck(a) => {
            out.put_u64(a.delivery_tag);
            out.put_u8(pack_bits(&[a.multiple]));
        }
        M::BasicNack(a) => {
            out.put_u64(a.delivery_tag);
            out.put_u8(pack_bits(&[a.multiple, a.requeue]));
        }
        M::BasicReject(a) => {
            out.put_u64(a.delivery_tag);
            out.put_u8(pack_bits(&[a.requeue]));
        }
        M::BasicQos(a) => {
            out.put_u32(a.prefetch_size);
            out.put_u16(a.prefetch_count);
            out.put_u8(pack_bits(&[a.global]));
        }
        M::BasicConsume(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.queue);
            put_shortstr(out, &a.consumer_tag);
            out.put_u8(pack_bits(&[a.no_local, a.no_ack, a.exclusive, a.nowait]));
            a.arguments.encode(out);
        }
        M::BasicConsumeOk { consumer_tag } | M::BasicCancelOk { consumer_tag } => {
            put_shortstr(out, consumer_tag);
        }
        M::BasicCancel(a) => {
            put_shortstr(out, &a.consumer_tag);
            out.put_u8(pack_bits(&[a.nowait]));
        }
        M::BasicReturn(a) => {
            out.put_u16(a.reply_code);
            put_shortstr(out, &a.reply_text);
            put_shortstr(out, &a.exchange);
            put_shortstr(out, &a.routing_key);
        }
        M::BasicGet(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.queue);
            out.put_u8(pack_bits(&[a.no_ack]));
        }
        M::BasicGetOk(a) => {
            out.put_u64(a.delivery_tag);
            out.put_u8(pack_bits(&[a.redelivered]));
            put_shortstr(out, &a.exchange);
            put_shortstr(out, &a.routing_key);
            out.put_u32(a.message_count);
        }
        M::BasicGetEmpty => put_shortstr_bytes(out, b""),
        M::BasicRecoverAsync { requeue } | M::BasicRecover { requeue } => {
            out.put_u8(pack_bits(&[*requeue]));
        }

        M::ConnectionStart(a) => {
            out.put_u8(a.version_major);
            out.put_u8(a.version_minor);
            a.server_properties.encode(out);
            put_longstr(out, &a.mechanisms);
            put_longstr(out, &a.locales);
        }
        M::ConnectionStartOk(a) => {
            a.client_properties.encode(out);
            put_shortstr(out, &a.mechanism);
            put_longstr(out, &a.response);
            put_shortstr(out, &a.locale);
        }
        M::ConnectionSecure(a) => put_longstr(out, &a.challenge),
        M::ConnectionSecureOk(a) => put_longstr(out, &a.response),
        M::ConnectionTune(ConnectionTune {
            channel_max,
            frame_max,
            heartbeat,
        })
        | M::ConnectionTuneOk(ConnectionTuneOk {
            channel_max,
            frame_max,
            heartbeat,
        }) => {
            out.put_u16(*channel_max);
            out.put_u32(*frame_max);
            out.put_u16(*heartbeat);
        }
        M::ConnectionOpen(a) => {
            put_shortstr(out, &a.virtual_host);
            put_shortstr_bytes(out, b""); // capabilities
            out.put_u8(0); // insist
        }
        M::ConnectionOpenOk => put_shortstr_bytes(out, b""), // known-hosts
        M::ConnectionClose(ConnectionClose {
            reply_code,
            reply_text,
            class_id,
            method_id,
        })
        | M::ChannelClose(ChannelClose {
            reply_code,
            reply_text,
            class_id,
            method_id,
        }) => {
            out.put_u16(*reply_code);
            put_shortstr(out, reply_text);
            out.put_u16(*class_id);
            out.put_u16(*method_id);
        }
        M::ConnectionBlocked(a) => put_shortstr(out, &a.reason),
        M::ConnectionUpdateSecret(a) => {
            put_longstr(out, &a.new_secret);
            put_shortstr(out, &a.reason);
        }

        M::ChannelOpen => put_shortstr_bytes(out, b""), // out-of-band
        M::ChannelOpenOk => put_longstr(out, b""),      // channel-id
        M::ChannelFlow(a) | M::ChannelFlowOk(a) => out.put_u8(pack_bits(&[a.active])),

        M::AccessRequest(a) => {
            put_shortstr(out, &a.realm);
            out.put_u8(pack_bits(&[
                a.exclusive,
                a.passive,
                a.active,
                a.write,
                a.read,
            ]));
        }
        M::AccessRequestOk => out.put_u16(0), // ticket

        M::ExchangeDeclare(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.exchange);
            put_shortstr(out, &a.kind);
            out.put_u8(pack_bits(&[
                a.passive,
                a.durable,
                a.auto_delete,
                a.internal,
                a.nowait,
            ]));
            a.arguments.encode(out);
        }
        M::ExchangeDelete(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.exchange);
            out.put_u8(pack_bits(&[a.if_unused, a.nowait]));
        }
        M::ExchangeBind(a) | M::ExchangeUnbind(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.destination);
            put_shortstr(out, &a.source);
            put_shortstr(out, &a.routing_key);
            out.put_u8(pack_bits(&[a.nowait]));
            a.arguments.encode(out);
        }

        M::QueueDeclare(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.queue);
            out.put_u8(pack_bits(&[
                a.passive,
                a.durable,
                a.exclusive,
                a.auto_delete,
                a.nowait,
            ]));
            a.arguments.encode(out);
        }
        M::QueueDeclareOk(a) => {
            put_shortstr(out, &a.queue);
            out.put_u32(a.message_count);
            out.put_u32(a.consumer_count);
        }
        M::QueueBind(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.queue);
            put_shortstr(out, &a.exchange);
            put_shortstr(out, &a.routing_key);
            out.put_u8(pack_bits(&[a.nowait]));
            a.arguments.encode(out);
        }
        M::QueuePurge(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.queue);
            out.put_u8(pack_bits(&[a.nowait]));
        }
        M::QueuePurgeOk { message_count } | M::QueueDeleteOk { message_count } => {
            out.put_u32(*message_count);
        }
        M::QueueDelete(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.queue);
            out.put_u8(pack_bits(&[a.if_unused, a.if_empty, a.nowait]));
        }
        M::QueueUnbind(a) => {
            out.put_u16(0);
            put_shortstr(out, &a.queue);
            put_shortstr(out, &a.exchange);
            put_shortstr(out, &a.routing_key);
            a.arguments.encode(out);
        }

        M::ConfirmSelect { nowait } => out.put_u8(pack_bits(&[*nowait])),

        M::ConnectionCloseOk
        | M::ConnectionUnblocked
        | M::ConnectionUpdateSecretOk
        | M::ChannelCloseOk
        | M::ExchangeDeclareOk
        | M::ExchangeDeleteOk
        | M::ExchangeBindOk
        | M::ExchangeUnbindOk
        | M::QueueBindOk
        | M::QueueUnbindOk
        | M::BasicQosOk
        | M::BasicRecoverOk
        | M::ConfirmSelectOk
        | M::TxSelect
        | M::TxSelectOk
        | M::TxCommit
        | M::TxCommitOk
        | M::TxRollback
        | M::TxRollbackOk => {}
    }
}
