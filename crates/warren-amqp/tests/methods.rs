//! Method encoding and decoding: exact bytes for the layouts that are easy to get wrong (bit
//! packing, reserved fields), ids and names, and the errors for malformed payloads.

mod common;

use bytes::{Bytes, BytesMut};
use common::{method, Fields, METHOD_COUNT};
use std::collections::HashSet;
use warren_amqp::*;

fn payload(m: &Method) -> Vec<u8> {
    let mut out = BytesMut::new();
    m.encode_payload(&mut out);
    out.to_vec()
}

fn decode(bytes: &[u8]) -> Result<Method, Error> {
    Method::decode(Bytes::copy_from_slice(bytes))
}

#[test]
fn every_method_round_trips_and_has_a_distinct_id_and_name() {
    let f = Fields::sample();
    let mut ids = HashSet::new();
    for i in 0..METHOD_COUNT {
        let m = method(i, &f);
        let bytes = payload(&m);
        assert_eq!(decode(&bytes).unwrap(), m, "{}", m.name());
        assert!(ids.insert(m.id()), "{} built twice", m.name());
        assert_eq!(method_name(m.class_id(), m.method_id()), Some(m.name()));
    }
    // Every id the name table knows is built above, so the codec covers the whole protocol.
    let known = (0..=100u16)
        .flat_map(|c| (0..=200u16).map(move |m| (c, m)))
        .filter(|&(c, m)| method_name(c, m).is_some())
        .count();
    assert_eq!(known, METHOD_COUNT);
}

#[test]
fn names_follow_rabbitmq() {
    assert_eq!(method_name(10, 31), Some("connection.tune-ok"));
    assert_eq!(method_name(40, 51), Some("exchange.unbind-ok"));
    assert_eq!(method_name(40, 41), None);
    assert_eq!(method_name(60, 100), Some("basic.recover-async"));
    assert_eq!(method_name(60, 120), Some("basic.nack"));
    assert_eq!(method_name(85, 10), Some("confirm.select"));
    assert_eq!(method_name(10, 70), Some("connection.update-secret"));
    assert_eq!(Method::BasicGetEmpty.name(), "basic.get-empty");
    assert_eq!(Method::ExchangeUnbindOk.id(), (40, 51));
}

#[test]
fn only_publish_return_deliver_and_get_ok_carry_content() {
    let f = Fields::sample();
    let with_content: Vec<&str> = (0..METHOD_COUNT)
        .map(|i| method(i, &f))
        .filter(Method::has_content)
        .map(|m| m.name())
        .collect();
    assert_eq!(
        with_content,
        [
            "basic.publish",
            "basic.return",
            "basic.deliver",
            "basic.get-ok"
        ]
    );
}

#[test]
fn basic_publish_layout_has_zero_ticket_and_packed_bits() {
    let m = Method::BasicPublish(BasicPublish {
        exchange: "ex".into(),
        routing_key: "rk".into(),
        mandatory: false,
        immediate: true,
    });
    assert_eq!(payload(&m), b"\x00\x3c\x00\x28\x00\x00\x02ex\x02rk\x02");
}

#[test]
fn queue_declare_packs_five_bits_lowest_first() {
    let m = Method::QueueDeclare(QueueDeclare {
        queue: "q".into(),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: true,
        nowait: true,
        arguments: FieldTable::new(),
    });
    // durable = bit 1, auto-delete = bit 3, nowait = bit 4.
    assert_eq!(
        payload(&m),
        b"\x00\x32\x00\x0a\x00\x00\x01q\x1a\x00\x00\x00\x00"
    );
}

#[test]
fn bits_separated_by_other_fields_take_separate_octets() {
    // basic.deliver: consumer-tag, delivery-tag, redelivered (bit), exchange, routing-key.
    let m = Method::BasicDeliver(BasicDeliver {
        consumer_tag: "c".into(),
        delivery_tag: 5,
        redelivered: true,
        exchange: "".into(),
        routing_key: "k".into(),
    });
    assert_eq!(
        payload(&m),
        b"\x00\x3c\x00\x3c\x01c\x00\x00\x00\x00\x00\x00\x00\x05\x01\x00\x01k"
    );
}

#[test]
fn reserved_fields_are_written_empty_and_skipped_on_decode() {
    assert_eq!(
        payload(&Method::ConnectionOpen(ConnectionOpen {
            virtual_host: "/".into()
        })),
        b"\x00\x0a\x00\x28\x01/\x00\x00"
    );
    assert_eq!(
        payload(&Method::ChannelOpenOk),
        b"\x00\x14\x00\x0b\x00\x00\x00\x00"
    );
    assert_eq!(
        payload(&Method::AccessRequestOk),
        b"\x00\x1e\x00\x0b\x00\x00"
    );
    // Old clients send capabilities and insist; their content does not matter.
    let old = decode(b"\x00\x0a\x00\x28\x05vhost\x03abc\x01").unwrap();
    assert_eq!(
        old,
        Method::ConnectionOpen(ConnectionOpen {
            virtual_host: "vhost".into()
        })
    );
    // A non-UTF-8 reserved short string is not inspected.
    assert_eq!(
        decode(b"\x00\x14\x00\x0a\x01\xff").unwrap(),
        Method::ChannelOpen
    );
}

#[test]
fn unknown_class_or_method_is_unknown_method() {
    assert_eq!(
        decode(b"\x00\x3c\x00\x29").unwrap_err(),
        Error::UnknownMethod {
            class_id: 60,
            method_id: 41
        }
    );
    assert_eq!(
        decode(b"\x00\x63\x00\x0a\x00").unwrap_err(),
        Error::UnknownMethod {
            class_id: 99,
            method_id: 10
        }
    );
    assert_eq!(
        decode(b"\x00\x3c\x00\x29").unwrap_err().reply_code(),
        ReplyCode::CommandInvalid
    );
}

#[test]
fn truncated_arguments_are_syntax_errors_naming_method_and_field() {
    let err = decode(b"\x00\x3c\x00\x28\x00\x00\x02ex\x05rk").unwrap_err();
    assert_eq!(
        err,
        Error::Syntax(
            "basic.publish: truncated routing-key: needs 5 bytes at offset 10, only 2 left".into()
        )
    );
    assert_eq!(err.reply_code(), ReplyCode::SyntaxError);
    assert!(matches!(decode(b"\x00\x3c"), Err(Error::Syntax(t)) if t.contains("too short")));
    assert!(matches!(decode(b""), Err(Error::Syntax(_))));
}

#[test]
fn every_truncation_of_every_method_is_an_error() {
    let f = Fields::sample();
    for i in 0..METHOD_COUNT {
        let bytes = payload(&method(i, &f));
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "{} cut at {cut}",
                method(i, &f).name()
            );
        }
    }
}

#[test]
fn trailing_bytes_after_the_arguments_are_refused() {
    let err = decode(b"\x00\x3c\x00\x50\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00").unwrap_err();
    assert_eq!(
        err,
        Error::Syntax("basic.ack: 1 unexpected bytes after the last field of the arguments".into())
    );
}

#[test]
fn non_utf8_short_string_is_a_syntax_error() {
    let err = decode(b"\x00\x3c\x00\x28\x00\x00\x02\xc3\x28\x00\x00").unwrap_err();
    assert_eq!(
        err,
        Error::Syntax("basic.publish: exchange is not valid UTF-8".into())
    );
}

#[test]
fn decoded_strings_share_the_payload() {
    let bytes = Bytes::from(payload(&Method::BasicPublish(BasicPublish {
        exchange: "amq.topic".into(),
        routing_key: "a.b".into(),
        mandatory: false,
        immediate: false,
    })));
    let Method::BasicPublish(p) = Method::decode(bytes.clone()).unwrap() else {
        panic!()
    };
    let range = bytes.as_ptr_range();
    assert!(range.contains(&p.exchange.as_bytes().as_ptr()));
    assert!(range.contains(&p.routing_key.as_bytes().as_ptr()));
}

#[test]
fn rabbitmq_methods_decode_and_re_encode_to_the_same_bytes() {
    let mut seen = 0;
    for (label, frame) in common::rabbitmq_frames() {
        if label == "header" {
            continue;
        }
        let mut buf = BytesMut::from(&frame[..]);
        let Some(Frame::Method { channel, method }) =
            FrameDecoder::new(131072).decode(&mut buf).unwrap()
        else {
            panic!("{label}: not a method frame")
        };
        assert_eq!(method.name(), label);
        assert_eq!(
            common::method_frame(channel, &method)[..],
            frame[..],
            "{label}"
        );
        seen += 1;
    }
    assert!(seen > 30);
}

#[test]
fn rabbitmq_connection_start_reads_as_expected() {
    let (_, frame) = common::rabbitmq_frames()
        .into_iter()
        .find(|(l, _)| l == "connection.start")
        .unwrap();
    let mut buf = BytesMut::from(&frame[..]);
    let Some(Frame::Method {
        channel: 0,
        method: Method::ConnectionStart(start),
    }) = FrameDecoder::new(0).decode(&mut buf).unwrap()
    else {
        panic!()
    };
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    assert_eq!(&start.mechanisms[..], b"AMQPLAIN PLAIN");
    assert_eq!(&start.locales[..], b"en_US");
    let props = &start.server_properties;
    assert_eq!(
        props.get("product").and_then(FieldValue::as_str),
        Some("RabbitMQ")
    );
    let Some(FieldValue::Table(caps)) = props.get("capabilities") else {
        panic!()
    };
    for cap in [
        "publisher_confirms",
        "basic.nack",
        "exchange_exchange_bindings",
        "consumer_cancel_notify",
    ] {
        assert_eq!(caps.get(cap), Some(&FieldValue::Bool(true)), "{cap}");
    }
}
