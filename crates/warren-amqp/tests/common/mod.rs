//! Test-only builders shared by the integration tests: one `Method` of every kind from a
//! handful of values, and helpers to read the captured RabbitMQ frames.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use warren_amqp::*;

/// The values every method's fields are drawn from, so that one generator (or one fixed
/// sample) yields every variant.
#[derive(Debug, Clone)]
pub struct Fields {
    pub s: [ShortStr; 4],
    pub bits: [bool; 5],
    pub octets: [u8; 2],
    pub shorts: [u16; 3],
    pub longs: [u32; 3],
    pub longlong: u64,
    pub bytes: [Bytes; 2],
    pub table: FieldTable,
}

impl Fields {
    pub fn sample() -> Fields {
        let mut table = FieldTable::new();
        table.insert("x-max-length", FieldValue::I64(10));
        table.insert("x-queue-type", FieldValue::string("classic"));
        Fields {
            s: [
                "orders".into(),
                "amq.topic".into(),
                "a.b.c".into(),
                "ctag-é".into(),
            ],
            bits: [true, false, true, true, false],
            octets: [0, 9],
            shorts: [2047, 131, 60],
            longs: [131072, 7, 0xdead_beef],
            longlong: u64::MAX - 1,
            bytes: [
                Bytes::from_static(b"\0guest\0guest"),
                Bytes::from_static(b"en_US"),
            ],
            table,
        }
    }
}

/// How many distinct methods [`method`] builds (indices `0..METHOD_COUNT`).
pub const METHOD_COUNT: usize = 66;

/// Method number `i` (mod [`METHOD_COUNT`]) with its fields taken from `f`.
pub fn method(i: usize, f: &Fields) -> Method {
    let [s0, s1, s2, s3] = f.s.clone();
    let [b0, b1, b2, b3, b4] = f.bits;
    let [sh0, sh1, sh2] = f.shorts;
    let [l0, l1, l2] = f.longs;
    let [y0, y1] = f.bytes.clone();
    let t = f.table.clone();
    match i % METHOD_COUNT {
        0 => Method::ConnectionStart(ConnectionStart {
            version_major: f.octets[0],
            version_minor: f.octets[1],
            server_properties: t,
            mechanisms: y0,
            locales: y1,
        }),
        1 => Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: t,
            mechanism: s0,
            response: y0,
            locale: s1,
        }),
        2 => Method::ConnectionSecure(ConnectionSecure { challenge: y0 }),
        3 => Method::ConnectionSecureOk(ConnectionSecureOk { response: y1 }),
        4 => Method::ConnectionTune(ConnectionTune {
            channel_max: sh0,
            frame_max: l0,
            heartbeat: sh1,
        }),
        5 => Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: sh0,
            frame_max: l0,
            heartbeat: sh1,
        }),
        6 => Method::ConnectionOpen(ConnectionOpen { virtual_host: s0 }),
        7 => Method::ConnectionOpenOk,
        8 => Method::ConnectionClose(ConnectionClose {
            reply_code: sh0,
            reply_text: s0,
            class_id: sh1,
            method_id: sh2,
        }),
        9 => Method::ConnectionCloseOk,
        10 => Method::ConnectionBlocked(ConnectionBlocked { reason: s0 }),
        11 => Method::ConnectionUnblocked,
        12 => Method::ConnectionUpdateSecret(ConnectionUpdateSecret {
            new_secret: y0,
            reason: s1,
        }),
        13 => Method::ConnectionUpdateSecretOk,
        14 => Method::ChannelOpen,
        15 => Method::ChannelOpenOk,
        16 => Method::ChannelFlow(ChannelFlow { active: b0 }),
        17 => Method::ChannelFlowOk(ChannelFlow { active: b1 }),
        18 => Method::ChannelClose(ChannelClose {
            reply_code: sh0,
            reply_text: s1,
            class_id: sh1,
            method_id: sh2,
        }),
        19 => Method::ChannelCloseOk,
        20 => Method::AccessRequest(AccessRequest {
            realm: s0,
            exclusive: b0,
            passive: b1,
            active: b2,
            write: b3,
            read: b4,
        }),
        21 => Method::AccessRequestOk,
        22 => Method::ExchangeDeclare(ExchangeDeclare {
            exchange: s0,
            kind: s1,
            passive: b0,
            durable: b1,
            auto_delete: b2,
            internal: b3,
            nowait: b4,
            arguments: t,
        }),
        23 => Method::ExchangeDeclareOk,
        24 => Method::ExchangeDelete(ExchangeDelete {
            exchange: s0,
            if_unused: b0,
            nowait: b1,
        }),
        25 => Method::ExchangeDeleteOk,
        26 => Method::ExchangeBind(ExchangeBind {
            destination: s0,
            source: s1,
            routing_key: s2,
            nowait: b0,
            arguments: t,
        }),
        27 => Method::ExchangeBindOk,
        28 => Method::ExchangeUnbind(ExchangeBind {
            destination: s1,
            source: s0,
            routing_key: s3,
            nowait: b1,
            arguments: t,
        }),
        29 => Method::ExchangeUnbindOk,
        30 => Method::QueueDeclare(QueueDeclare {
            queue: s0,
            passive: b0,
            durable: b1,
            exclusive: b2,
            auto_delete: b3,
            nowait: b4,
            arguments: t,
        }),
        31 => Method::QueueDeclareOk(QueueDeclareOk {
            queue: s0,
            message_count: l0,
            consumer_count: l1,
        }),
        32 => Method::QueueBind(QueueBind {
            queue: s0,
            exchange: s1,
            routing_key: s2,
            nowait: b0,
            arguments: t,
        }),
        33 => Method::QueueBindOk,
        34 => Method::QueuePurge(QueuePurge {
            queue: s0,
            nowait: b0,
        }),
        35 => Method::QueuePurgeOk { message_count: l2 },
        36 => Method::QueueDelete(QueueDelete {
            queue: s0,
            if_unused: b0,
            if_empty: b1,
            nowait: b2,
        }),
        37 => Method::QueueDeleteOk { message_count: l1 },
        38 => Method::QueueUnbind(QueueUnbind {
            queue: s0,
            exchange: s1,
            routing_key: s2,
            arguments: t,
        }),
        39 => Method::QueueUnbindOk,
        40 => Method::BasicQos(BasicQos {
            prefetch_size: l0,
            prefetch_count: sh0,
            global: b0,
        }),
        41 => Method::BasicQosOk,
        42 => Method::BasicConsume(BasicConsume {
            queue: s0,
            consumer_tag: s3,
            no_local: b0,
            no_ack: b1,
            exclusive: b2,
            nowait: b3,
            arguments: t,
        }),
        43 => Method::BasicConsumeOk { consumer_tag: s3 },
        44 => Method::BasicCancel(BasicCancel {
            consumer_tag: s3,
            nowait: b0,
        }),
        45 => Method::BasicCancelOk { consumer_tag: s3 },
        46 => Method::BasicPublish(BasicPublish {
            exchange: s1,
            routing_key: s2,
            mandatory: b0,
            immediate: b1,
        }),
        47 => Method::BasicReturn(BasicReturn {
            reply_code: sh0,
            reply_text: s0,
            exchange: s1,
            routing_key: s2,
        }),
        48 => Method::BasicDeliver(BasicDeliver {
            consumer_tag: s3,
            delivery_tag: f.longlong,
            redelivered: b0,
            exchange: s1,
            routing_key: s2,
        }),
        49 => Method::BasicGet(BasicGet {
            queue: s0,
            no_ack: b0,
        }),
        50 => Method::BasicGetOk(BasicGetOk {
            delivery_tag: f.longlong,
            redelivered: b0,
            exchange: s1,
            routing_key: s2,
            message_count: l0,
        }),
        51 => Method::BasicGetEmpty,
        52 => Method::BasicAck(BasicAck {
            delivery_tag: f.longlong,
            multiple: b0,
        }),
        53 => Method::BasicReject(BasicReject {
            delivery_tag: f.longlong,
            requeue: b1,
        }),
        54 => Method::BasicRecoverAsync { requeue: b0 },
        55 => Method::BasicRecover { requeue: b1 },
        56 => Method::BasicRecoverOk,
        57 => Method::BasicNack(BasicNack {
            delivery_tag: f.longlong,
            multiple: b0,
            requeue: b1,
        }),
        58 => Method::ConfirmSelect { nowait: b0 },
        59 => Method::ConfirmSelectOk,
        60 => Method::TxSelect,
        61 => Method::TxSelectOk,
        62 => Method::TxCommit,
        63 => Method::TxCommitOk,
        64 => Method::TxRollback,
        65 => Method::TxRollbackOk,
        _ => unreachable!("index is taken modulo METHOD_COUNT"),
    }
}

/// One method frame's bytes.
pub fn method_frame(channel: u16, m: &Method) -> BytesMut {
    let mut out = BytesMut::new();
    encode_method(channel, m, &mut out);
    out
}

/// The frames RabbitMQ 3.10 sent in a captured session: (label, whole frame).
pub fn rabbitmq_frames() -> Vec<(String, Vec<u8>)> {
    parse_capture(include_str!("../fixtures/rabbitmq-3.10-frames.txt"))
}

/// The frames pika 1.4 (Python) sent to RabbitMQ in a captured session.
pub fn pika_frames() -> Vec<(String, Vec<u8>)> {
    parse_capture(include_str!("../fixtures/pika-1.4-frames.txt"))
}

fn parse_capture(text: &str) -> Vec<(String, Vec<u8>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (label, hex) = l.split_once(' ').expect("label and hex");
            (label.to_string(), unhex(hex))
        })
        .collect()
}

pub fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}
