//! Frame splitting and frame encoding: partial input, limits, damaged frames, zero-copy
//! bodies, and body splitting by frame-max.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use warren_amqp::*;

fn publish() -> Method {
    Method::BasicPublish(BasicPublish {
        exchange: "amq.direct".into(),
        routing_key: "orders".into(),
        mandatory: true,
        immediate: false,
    })
}

fn props() -> BasicProperties {
    BasicProperties {
        content_type: Some("text/plain".into()),
        delivery_mode: Some(2),
        ..Default::default()
    }
}

/// publish + header + one body frame on channel 3.
fn message_frames(body: &[u8]) -> BytesMut {
    let mut raw = BytesMut::new();
    props().encode(&mut raw);
    let mut out = BytesMut::new();
    encode_method_with_content(3, &publish(), &raw, body, 131072, &mut out);
    out
}

fn decode_all(dec: &mut FrameDecoder, buf: &mut BytesMut) -> Result<Vec<Frame>, Error> {
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(buf)? {
        frames.push(f);
    }
    Ok(frames)
}

#[test]
fn decodes_method_header_and_body_in_order() {
    let mut buf = message_frames(b"hello");
    let frames = decode_all(&mut FrameDecoder::new(131072), &mut buf).unwrap();
    assert!(buf.is_empty());
    assert_eq!(frames.len(), 3);
    assert_eq!(
        frames[0],
        Frame::Method {
            channel: 3,
            method: publish()
        }
    );
    let Frame::Header { channel: 3, header } = &frames[1] else {
        panic!("{:?}", frames[1])
    };
    assert_eq!((header.class_id, header.body_size), (60, 5));
    assert_eq!(header.properties, props());
    let mut raw = BytesMut::new();
    props().encode(&mut raw);
    assert_eq!(header.properties_raw[..], raw[..]);
    assert_eq!(
        frames[2],
        Frame::Body {
            channel: 3,
            payload: Bytes::from_static(b"hello")
        }
    );
}

#[test]
fn every_prefix_of_valid_frames_waits_for_more_and_never_fails() {
    let whole = message_frames(b"0123456789");
    let mut expected_frames = 0;
    for cut in 0..=whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        let frames = decode_all(&mut FrameDecoder::new(4096), &mut buf).unwrap();
        assert!(
            frames.len() >= expected_frames,
            "frames never disappear as input grows"
        );
        expected_frames = frames.len();
    }
    assert_eq!(expected_frames, 3);
}

#[test]
fn bytes_fed_one_at_a_time_give_the_same_frames() {
    let whole = message_frames(b"abc");
    let mut dec = FrameDecoder::new(4096);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for &b in whole.iter() {
        buf.put_u8(b);
        frames.extend(decode_all(&mut dec, &mut buf).unwrap());
    }
    assert_eq!(frames, decode_all(&mut dec, &mut whole.clone()).unwrap());
}

#[test]
fn body_payload_is_a_slice_of_the_read_buffer() {
    let mut buf = message_frames(&[7u8; 1000]);
    let range = buf.as_ptr_range();
    let frames = decode_all(&mut FrameDecoder::new(4096), &mut buf).unwrap();
    let Frame::Body { payload, .. } = &frames[2] else {
        panic!()
    };
    assert!(range.contains(&payload.as_ptr()));
    let Frame::Header { header, .. } = &frames[1] else {
        panic!()
    };
    assert!(range.contains(&header.properties_raw.as_ptr()));
}

#[test]
fn oversized_frame_is_refused_as_soon_as_its_header_arrives() {
    let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x10, 0x00][..]); // body of 4096 bytes
    let err = FrameDecoder::new(4096).decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        Error::Frame("frame size 4104 exceeds frame-max 4096".into())
    );
    assert_eq!(err.reply_code(), ReplyCode::FrameError);
}

#[test]
fn frame_of_exactly_frame_max_is_accepted() {
    let mut buf = BytesMut::new();
    encode_body_frames(1, &[1u8; 4088], 4096, &mut buf);
    assert_eq!(buf.len(), 4096);
    let frame = FrameDecoder::new(4096).decode(&mut buf).unwrap().unwrap();
    assert!(matches!(frame, Frame::Body { payload, .. } if payload.len() == 4088));
}

#[test]
fn frame_max_zero_means_no_limit() {
    let mut buf = BytesMut::new();
    encode_body_frames(1, &vec![0u8; 300_000], 0, &mut buf);
    let frames = decode_all(&mut FrameDecoder::new(0), &mut buf).unwrap();
    assert_eq!(frames.len(), 1);
}

#[test]
fn lowering_frame_max_applies_to_the_next_frame() {
    let mut buf = BytesMut::new();
    encode_body_frames(1, &[0u8; 5000], 0, &mut buf);
    let mut dec = FrameDecoder::new(0);
    dec.set_max_frame_size(4096);
    assert!(matches!(dec.decode(&mut buf), Err(Error::Frame(_))));
}

#[test]
fn bad_frame_end_is_a_frame_error() {
    let mut buf = common::method_frame(1, &Method::ChannelOpen);
    let last = buf.len() - 1;
    buf[last] = 0xCD;
    let err = FrameDecoder::new(4096).decode(&mut buf).unwrap_err();
    assert!(
        matches!(&err, Error::Frame(t) if t.starts_with("bad frame-end octet 0xcd")),
        "{err}"
    );
}

#[test]
fn unknown_frame_type_is_refused_from_its_first_byte() {
    assert_eq!(
        FrameDecoder::new(4096)
            .decode(&mut BytesMut::from(&[4u8][..]))
            .unwrap_err(),
        Error::Frame("unknown frame type 4".into())
    );
    // A client speaking another protocol version sends "AMQP..." where a frame belongs.
    let mut buf = BytesMut::from(&PROTOCOL_HEADER[..]);
    assert!(matches!(
        FrameDecoder::new(4096).decode(&mut buf),
        Err(Error::Frame(_))
    ));
}

#[test]
fn heartbeat_on_any_channel_is_returned_for_the_broker_to_judge() {
    let mut buf = BytesMut::new();
    encode_heartbeat(&mut buf);
    assert_eq!(&buf[..], &[8, 0, 0, 0, 0, 0, 0, 0xCE]);
    buf.extend_from_slice(&[8, 0, 5, 0, 0, 0, 0, 0xCE]);
    let frames = decode_all(&mut FrameDecoder::new(4096), &mut buf).unwrap();
    assert_eq!(
        frames,
        [
            Frame::Heartbeat { channel: 0 },
            Frame::Heartbeat { channel: 5 }
        ]
    );
}

#[test]
fn heartbeat_with_a_payload_is_a_frame_error() {
    let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 1, 0, 0xCE][..]);
    assert!(matches!(
        FrameDecoder::new(4096).decode(&mut buf),
        Err(Error::Frame(_))
    ));
}

#[test]
fn malformed_method_payload_is_a_syntax_error_and_unknown_method_is_reported() {
    let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 0, 0, 2, 0, 10, 0xCE][..]);
    assert!(matches!(
        FrameDecoder::new(4096).decode(&mut buf),
        Err(Error::Syntax(_))
    ));
    let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 0, 0, 4, 0, 60, 0, 41, 0xCE][..]);
    assert_eq!(
        FrameDecoder::new(4096).decode(&mut buf).unwrap_err(),
        Error::UnknownMethod {
            class_id: 60,
            method_id: 41
        }
    );
}

#[test]
fn content_header_shorter_than_its_fixed_part_is_a_syntax_error() {
    let mut buf = BytesMut::new();
    encode_content_header(1, 60, 5, &[], &mut buf);
    // Cut the payload to 11 bytes (class, weight and 7 of the 8 body-size bytes).
    let mut short = BytesMut::from(&[2u8, 0, 1, 0, 0, 0, 11][..]);
    short.extend_from_slice(&buf[7..18]);
    short.put_u8(0xCE);
    assert!(matches!(
        FrameDecoder::new(4096).decode(&mut short),
        Err(Error::Syntax(_))
    ));
}

#[test]
fn content_header_of_another_class_keeps_raw_properties_undecoded() {
    let mut buf = BytesMut::new();
    encode_content_header(1, 50, 0, &[0xff, 0xff], &mut buf);
    let Some(Frame::Header { header, .. }) = FrameDecoder::new(4096).decode(&mut buf).unwrap()
    else {
        panic!()
    };
    assert_eq!(header.class_id, 50);
    assert_eq!(header.properties, BasicProperties::default());
    assert_eq!(&header.properties_raw[..], &[0xff, 0xff]);
}

#[test]
fn body_is_split_into_frames_of_frame_max_minus_eight() {
    let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let mut buf = BytesMut::new();
    encode_body_frames(9, &body, 4096, &mut buf);
    let frames = decode_all(&mut FrameDecoder::new(4096), &mut buf).unwrap();
    let sizes: Vec<usize> = frames
        .iter()
        .map(|f| match f {
            Frame::Body {
                channel: 9,
                payload,
            } => payload.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, [4088, 4088, 1824]);
    let joined: Vec<u8> = frames
        .iter()
        .flat_map(|f| match f {
            Frame::Body { payload, .. } => payload.to_vec(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(joined, body);
}

#[test]
fn empty_body_encodes_no_frames() {
    let mut buf = BytesMut::new();
    encode_body_frames(1, b"", 4096, &mut buf);
    assert!(buf.is_empty());
}

#[test]
fn encoders_append_after_existing_bytes() {
    let mut buf = BytesMut::from(&b"xyz"[..]);
    encode_method(0, &Method::ConnectionCloseOk, &mut buf);
    assert_eq!(
        &buf[..],
        b"xyz\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x33\xce"
    );
}

#[test]
fn basic_header_encoder_matches_raw_header_encoder() {
    let mut raw = BytesMut::new();
    props().encode(&mut raw);
    let mut a = BytesMut::new();
    encode_content_header(2, 60, 42, &raw, &mut a);
    let mut b = BytesMut::new();
    encode_basic_header(2, 42, &props(), &mut b);
    assert_eq!(a, b);
}

#[test]
fn rabbitmq_content_headers_decode_and_re_encode_to_the_same_bytes() {
    let headers: Vec<Vec<u8>> = common::rabbitmq_frames()
        .into_iter()
        .filter(|(l, _)| l == "header")
        .map(|(_, f)| f)
        .collect();
    assert!(headers.len() >= 3);
    for frame in headers {
        let mut buf = BytesMut::from(&frame[..]);
        let Some(Frame::Header { channel, header }) =
            FrameDecoder::new(4096).decode(&mut buf).unwrap()
        else {
            panic!()
        };
        let mut out = BytesMut::new();
        encode_basic_header(channel, header.body_size, &header.properties, &mut out);
        assert_eq!(out[..], frame[..]);
    }
}

#[test]
fn rabbitmq_dead_lettered_header_carries_x_death() {
    let (_, frame) = common::rabbitmq_frames()
        .into_iter()
        .find(|(l, f)| l == "header" && f.len() > 100)
        .unwrap();
    let mut buf = BytesMut::from(&frame[..]);
    let Some(Frame::Header { header, .. }) = FrameDecoder::new(4096).decode(&mut buf).unwrap()
    else {
        panic!()
    };
    let headers = header.properties.headers.unwrap();
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
        panic!("{headers:?}")
    };
    let FieldValue::Table(death) = &deaths[0] else {
        panic!()
    };
    assert_eq!(
        death.get("reason").and_then(FieldValue::as_str),
        Some("expired")
    );
    assert_eq!(
        death.get("queue").and_then(FieldValue::as_str),
        Some("warren-probe-src")
    );
    assert_eq!(death.get("count"), Some(&FieldValue::I64(1)));
    assert!(matches!(death.get("time"), Some(FieldValue::Timestamp(_))));
    assert_eq!(
        headers.get("D"),
        Some(&FieldValue::Decimal(Decimal {
            scale: 2,
            value: 12345
        }))
    );
    assert_eq!(header.body_size, 10_000);
}

#[test]
fn pika_client_frames_decode_and_re_encode_to_the_same_bytes() {
    let frames = common::pika_frames();
    assert!(frames.len() > 25);
    for (label, frame) in frames {
        let mut buf = BytesMut::from(&frame[..]);
        let decoded = FrameDecoder::new(4096).decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        let mut out = BytesMut::new();
        match decoded {
            Frame::Method { channel, method } => {
                assert_eq!(method.name(), label);
                if let Method::ConnectionOpen(open) = &method {
                    // pika sets the reserved insist bit, which is dropped on decode.
                    assert_eq!(open.virtual_host, "/");
                    continue;
                }
                encode_method(channel, &method, &mut out);
            }
            Frame::Header { channel, header } => {
                assert_eq!(label, "header");
                encode_basic_header(channel, header.body_size, &header.properties, &mut out);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out[..], frame[..], "{label}");
    }
}

#[test]
fn pika_headers_carry_every_type_python_maps_to() {
    let (_, frame) = common::pika_frames()
        .into_iter()
        .find(|(l, f)| l == "header" && f.len() > 100)
        .unwrap();
    let mut buf = BytesMut::from(&frame[..]);
    let Some(Frame::Header { header, .. }) = FrameDecoder::new(4096).decode(&mut buf).unwrap()
    else {
        panic!()
    };
    let h = header.properties.headers.unwrap();
    assert_eq!(h.get("n"), Some(&FieldValue::I32(1)));
    assert_eq!(h.get("big"), Some(&FieldValue::I64(1 << 40)));
    assert_eq!(h.get("none"), Some(&FieldValue::Void));
    assert_eq!(
        h.get("dec"),
        Some(&FieldValue::Decimal(Decimal {
            scale: 2,
            value: 125
        }))
    );
    assert!(matches!(h.get("list"), Some(FieldValue::Array(items)) if items.len() == 3));
    assert_eq!(header.properties.expiration.as_deref(), Some("10000"));
    assert_eq!(header.body_size, 9000);
}
