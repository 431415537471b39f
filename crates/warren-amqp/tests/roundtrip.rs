//! Property tests: arbitrary values survive encode -> decode unchanged, and arbitrary or
//! mangled bytes never panic the decoder.

mod common;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use warren_amqp::*;

fn shortstr() -> impl Strategy<Value = ShortStr> {
    // Up to 60 arbitrary printable characters: at most 240 bytes of UTF-8.
    "\\PC{0,60}".prop_map(ShortStr::from)
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Floats compare by value, and NaN != NaN; the codec keeps the bits, but equality cannot
/// show it, so NaNs are left out here (their bits are checked in `nan_bits_survive`).
fn f32_not_nan() -> impl Strategy<Value = f32> {
    any::<u32>()
        .prop_map(f32::from_bits)
        .prop_filter("not NaN", |f| !f.is_nan())
}

fn f64_not_nan() -> impl Strategy<Value = f64> {
    any::<u64>()
        .prop_map(f64::from_bits)
        .prop_filter("not NaN", |f| !f.is_nan())
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        f32_not_nan().prop_map(FieldValue::F32),
        f64_not_nan().prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| FieldValue::Decimal(Decimal { scale, value })),
        bytes(40).prop_map(FieldValue::LongString),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
        bytes(40).prop_map(FieldValue::ByteArray),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
            proptest::collection::vec((shortstr(), inner), 0..6)
                .prop_map(|entries| FieldValue::Table(FieldTable(entries))),
        ]
    })
}

fn field_table() -> impl Strategy<Value = FieldTable> {
    proptest::collection::vec((shortstr(), field_value()), 0..8).prop_map(FieldTable)
}

fn properties() -> impl Strategy<Value = BasicProperties> {
    let s = || proptest::option::of(shortstr());
    (
        (
            s(),
            s(),
            proptest::option::of(field_table()),
            any::<Option<u8>>(),
            any::<Option<u8>>(),
        ),
        (s(), s(), s(), s(), any::<Option<u64>>()),
        (s(), s(), s(), s()),
    )
        .prop_map(|(a, b, c)| BasicProperties {
            content_type: a.0,
            content_encoding: a.1,
            headers: a.2,
            delivery_mode: a.3,
            priority: a.4,
            correlation_id: b.0,
            reply_to: b.1,
            expiration: b.2,
            message_id: b.3,
            timestamp: b.4,
            kind: c.0,
            user_id: c.1,
            app_id: c.2,
            cluster_id: c.3,
        })
}

fn fields() -> impl Strategy<Value = common::Fields> {
    (
        proptest::array::uniform4(shortstr()),
        any::<[bool; 5]>(),
        any::<[u8; 2]>(),
        any::<[u16; 3]>(),
        any::<[u32; 3]>(),
        any::<u64>(),
        proptest::array::uniform2(bytes(64)),
        field_table(),
    )
        .prop_map(
            |(s, bits, octets, shorts, longs, longlong, bytes, table)| common::Fields {
                s,
                bits,
                octets,
                shorts,
                longs,
                longlong,
                bytes,
                table,
            },
        )
}

fn method() -> impl Strategy<Value = Method> {
    (0..common::METHOD_COUNT, fields()).prop_map(|(i, f)| common::method(i, &f))
}

fn frame_max() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 4096u32..70_000]
}

fn decode_all(dec: &mut FrameDecoder, buf: &mut BytesMut) -> Result<Vec<Frame>, Error> {
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(buf)? {
        frames.push(f);
    }
    Ok(frames)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn field_tables_round_trip(t in field_table()) {
        let mut out = BytesMut::new();
        t.encode(&mut out);
        prop_assert_eq!(FieldTable::decode(&out.freeze()).unwrap(), t);
    }

    #[test]
    fn properties_round_trip(p in properties()) {
        let mut out = BytesMut::new();
        p.encode(&mut out);
        prop_assert_eq!(BasicProperties::decode(&out.freeze()).unwrap(), p);
    }

    #[test]
    fn methods_round_trip_through_frames(m in method(), channel in any::<u16>()) {
        let mut buf = BytesMut::new();
        encode_method(channel, &m, &mut buf);
        let frames = decode_all(&mut FrameDecoder::new(0), &mut buf).unwrap();
        prop_assert_eq!(frames, vec![Frame::Method { channel, method: m }]);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn messages_round_trip_at_any_frame_max(
        p in properties(),
        body in proptest::collection::vec(any::<u8>(), 0..20_000),
        frame_max in frame_max(),
        channel in 1u16..,
    ) {
        let deliver = Method::BasicDeliver(BasicDeliver {
            consumer_tag: "c".into(),
            delivery_tag: 1,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
        });
        let mut raw = BytesMut::new();
        p.encode(&mut raw);
        let mut buf = BytesMut::new();
        encode_method_with_content(channel, &deliver, &raw, &body, frame_max, &mut buf);
        let frames = decode_all(&mut FrameDecoder::new(frame_max), &mut buf).unwrap();
        prop_assert_eq!(&frames[0], &Frame::Method { channel, method: deliver });
        let Frame::Header { header, .. } = &frames[1] else { panic!("{:?}", frames[1]) };
        prop_assert_eq!(&header.properties, &p);
        prop_assert_eq!(header.body_size, body.len() as u64);
        let mut joined = Vec::new();
        for f in &frames[2..] {
            let Frame::Body { payload, .. } = f else { panic!("{f:?}") };
            prop_assert!(frame_max == 0 || payload.len() + 8 <= frame_max as usize);
            joined.extend_from_slice(payload);
        }
        prop_assert_eq!(joined, body);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_frame_decoder(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        frame_max in prop_oneof![Just(0u32), 0u32..1000],
    ) {
        let mut buf = BytesMut::from(&data[..]);
        let _ = decode_all(&mut FrameDecoder::new(frame_max), &mut buf);
    }

    #[test]
    fn arbitrary_method_payloads_never_panic(
        class_method in prop::sample::select(vec![
            (10u16, 10u16), (10, 11), (10, 40), (10, 50), (10, 70), (20, 10), (20, 11), (30, 10),
            (40, 10), (40, 30), (50, 10), (50, 20), (50, 50), (60, 20), (60, 40), (60, 60), (60, 71),
        ]),
        args in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut payload = Vec::new();
        payload.extend_from_slice(&class_method.0.to_be_bytes());
        payload.extend_from_slice(&class_method.1.to_be_bytes());
        payload.extend_from_slice(&args);
        let _ = Method::decode(Bytes::from(payload));
        let _ = BasicProperties::decode(&Bytes::from(args.clone()));
        let _ = FieldTable::decode(&Bytes::from(args));
    }

    #[test]
    fn mangled_valid_frames_never_panic(
        m in method(),
        p in properties(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = BytesMut::new();
        encode_method(1, &m, &mut buf);
        encode_basic_header(1, 3, &p, &mut buf);
        encode_body_frames(1, b"abc", 4096, &mut buf);
        for (at, byte) in edits {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        let keep = cut.index(buf.len() + 1);
        buf.truncate(keep);
        let _ = decode_all(&mut FrameDecoder::new(4096), &mut buf);
    }
}

#[test]
fn nan_bits_survive() {
    let nan32 = f32::from_bits(0x7fc0_1234);
    let nan64 = f64::from_bits(0x7ff8_0000_dead_beef);
    let t = FieldTable(vec![
        ("a".into(), FieldValue::F32(nan32)),
        ("b".into(), FieldValue::F64(nan64)),
    ]);
    let mut out = BytesMut::new();
    t.encode(&mut out);
    let back = FieldTable::decode(&out.freeze()).unwrap();
    assert!(matches!(back.get("a"), Some(FieldValue::F32(f)) if f.to_bits() == nan32.to_bits()));
    assert!(matches!(back.get("b"), Some(FieldValue::F64(f)) if f.to_bits() == nan64.to_bits()));
}
