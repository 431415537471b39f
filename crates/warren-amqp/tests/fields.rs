//! Field tables and basic properties: the exact encoding of every field type and property,
//! and the errors for hostile or damaged input.

use bytes::{Bytes, BytesMut};
use warren_amqp::*;

fn encode(t: &FieldTable) -> Vec<u8> {
    let mut out = BytesMut::new();
    t.encode(&mut out);
    out.to_vec()
}

fn table(entries: Vec<(&str, FieldValue)>) -> FieldTable {
    FieldTable(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// A one-entry table with key "k" and the given tag + value bytes.
fn one_entry(tag_and_value: &[u8]) -> Vec<u8> {
    let mut body = vec![1, b'k'];
    body.extend_from_slice(tag_and_value);
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn decode(bytes: &[u8]) -> Result<FieldTable, Error> {
    FieldTable::decode(&Bytes::copy_from_slice(bytes))
}

#[test]
fn every_field_type_has_rabbitmqs_tag_and_layout() {
    let cases: Vec<(FieldValue, &[u8])> = vec![
        (FieldValue::Bool(true), b"t\x01"),
        (FieldValue::I8(-2), b"b\xfe"),
        (FieldValue::U8(200), b"B\xc8"),
        (FieldValue::I16(-2), b"s\xff\xfe"),
        (FieldValue::U16(513), b"u\x02\x01"),
        (FieldValue::I32(-2), b"I\xff\xff\xff\xfe"),
        (FieldValue::U32(0x01020304), b"i\x01\x02\x03\x04"),
        (FieldValue::I64(-2), b"l\xff\xff\xff\xff\xff\xff\xff\xfe"),
        (FieldValue::F32(1.0), b"f\x3f\x80\x00\x00"),
        (FieldValue::F64(-2.0), b"d\xc0\x00\x00\x00\x00\x00\x00\x00"),
        (
            FieldValue::Decimal(Decimal { scale: 2, value: 5 }),
            b"D\x02\x00\x00\x00\x05",
        ),
        (FieldValue::string("hé"), b"S\x00\x00\x00\x03h\xc3\xa9"),
        (
            FieldValue::Array(vec![FieldValue::U8(1), FieldValue::Void]),
            b"A\x00\x00\x00\x03B\x01V",
        ),
        (
            FieldValue::Timestamp(1),
            b"T\x00\x00\x00\x00\x00\x00\x00\x01",
        ),
        (
            FieldValue::Table(table(vec![("a", FieldValue::Bool(false))])),
            b"F\x00\x00\x00\x04\x01at\x00",
        ),
        (FieldValue::Void, b"V"),
        (
            FieldValue::ByteArray(Bytes::from_static(b"\x00\xff")),
            b"x\x00\x00\x00\x02\x00\xff",
        ),
    ];
    for (value, wire) in cases {
        let t = table(vec![("k", value.clone())]);
        assert_eq!(encode(&t), one_entry(wire), "{value:?}");
        assert_eq!(decode(&one_entry(wire)).unwrap(), t, "{value:?}");
    }
}

#[test]
fn capital_l_reads_as_a_signed_long_like_rabbitmq() {
    let t = decode(&one_entry(b"L\xff\xff\xff\xff\xff\xff\xff\xff")).unwrap();
    assert_eq!(t.get("k"), Some(&FieldValue::I64(-1)));
}

#[test]
fn any_nonzero_octet_is_true() {
    assert_eq!(
        decode(&one_entry(b"t\x07")).unwrap().get("k"),
        Some(&FieldValue::Bool(true))
    );
}

#[test]
fn entries_keep_wire_order_and_duplicates() {
    let bytes = encode(&table(vec![
        ("b", FieldValue::U8(1)),
        ("a", FieldValue::U8(2)),
        ("b", FieldValue::U8(3)),
    ]));
    let t = decode(&bytes).unwrap();
    let keys: Vec<&str> = t.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["b", "a", "b"]);
    assert_eq!(t.get("b"), Some(&FieldValue::U8(1)));
}

#[test]
fn unknown_tag_is_a_syntax_error_naming_tag_and_key() {
    assert_eq!(
        decode(&one_entry(b"Q\x00")).unwrap_err(),
        Error::Syntax("unknown field type tag 'Q' (0x51) in field 'k'".into())
    );
}

#[test]
fn truncated_value_is_a_syntax_error() {
    let err = decode(&one_entry(b"I\x00\x00")).unwrap_err();
    assert!(
        matches!(&err, Error::Syntax(t) if t.contains("signed int field") && t.contains("'k'")),
        "{err}"
    );
}

#[test]
fn declared_length_overrunning_the_input_is_a_syntax_error() {
    let mut bytes = one_entry(b"V");
    bytes[3] += 1;
    assert!(matches!(decode(&bytes), Err(Error::Syntax(_))));
    // An inner long string claiming more than its table holds.
    assert!(matches!(
        decode(&one_entry(b"S\x00\x00\x00\x09abc")),
        Err(Error::Syntax(_))
    ));
    assert!(matches!(
        decode(&one_entry(b"S\xff\xff\xff\xff")),
        Err(Error::Syntax(_))
    ));
}

#[test]
fn non_utf8_key_is_a_syntax_error() {
    let bytes = b"\x00\x00\x00\x03\x01\xffV";
    assert!(matches!(decode(bytes), Err(Error::Syntax(t)) if t.contains("UTF-8")));
}

#[test]
fn every_truncation_of_a_table_is_an_error() {
    let mut nested = FieldTable::new();
    nested.insert(
        "x",
        FieldValue::Array(vec![FieldValue::string("deep"), FieldValue::I64(1)]),
    );
    let bytes = encode(&table(vec![
        ("a", FieldValue::Table(nested)),
        ("b", FieldValue::F64(0.5)),
    ]));
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // Dropping bytes from the end of the body but fixing up the length leaves a
    // truncated last value inside a well-formed table.
    for cut in 5..bytes.len() {
        let mut b = bytes[..cut].to_vec();
        b[..4].copy_from_slice(&((cut - 4) as u32).to_be_bytes());
        let _ = decode(&b); // may succeed when the cut falls between entries; must not panic
    }
}

/// Nests `depth` arrays inside one another.
fn nested_arrays(depth: usize) -> FieldValue {
    (0..depth).fold(FieldValue::Void, |inner, _| FieldValue::Array(vec![inner]))
}

#[test]
fn nesting_up_to_the_limit_is_accepted_and_beyond_it_refused() {
    let ok = table(vec![("a", nested_arrays(MAX_NESTING_DEPTH - 1))]);
    assert_eq!(decode(&encode(&ok)).unwrap(), ok);
    let too_deep = table(vec![("a", nested_arrays(MAX_NESTING_DEPTH))]);
    assert!(matches!(decode(&encode(&too_deep)), Err(Error::Syntax(t)) if t.contains("nested")));
}

#[test]
fn hostile_deep_nesting_does_not_overflow_the_stack() {
    // 100_000 nested 'A' headers: each claims the rest of the input.
    let depth = 100_000;
    let mut bytes = Vec::with_capacity(depth * 5 + 8);
    let total = 2 + depth * 5;
    bytes.extend_from_slice(&(total as u32).to_be_bytes());
    bytes.extend_from_slice(b"\x01k");
    for i in 0..depth {
        bytes.push(b'A');
        let rest = (depth - i - 1) * 5;
        bytes.extend_from_slice(&(rest as u32).to_be_bytes());
    }
    assert!(matches!(decode(&bytes), Err(Error::Syntax(_))));
}

#[test]
fn decoded_strings_share_the_input_buffer() {
    let bytes = Bytes::from(encode(&table(vec![("key", FieldValue::string("value"))])));
    let t = FieldTable::decode(&bytes).unwrap();
    let range = bytes.as_ptr_range();
    let (k, v) = t.iter().next().unwrap();
    assert!(range.contains(&k.as_bytes().as_ptr()));
    let FieldValue::LongString(s) = v else {
        panic!()
    };
    assert!(range.contains(&s.as_ptr()));
}

fn full_props() -> BasicProperties {
    BasicProperties {
        content_type: Some("a".into()),
        content_encoding: Some("b".into()),
        headers: Some(table(vec![("h", FieldValue::U8(1))])),
        delivery_mode: Some(2),
        priority: Some(9),
        correlation_id: Some("c".into()),
        reply_to: Some("d".into()),
        expiration: Some("60000".into()),
        message_id: Some("e".into()),
        timestamp: Some(0x0102030405060708),
        kind: Some("f".into()),
        user_id: Some("g".into()),
        app_id: Some("h".into()),
        cluster_id: Some("i".into()),
    }
}

fn encode_props(p: &BasicProperties) -> Vec<u8> {
    let mut out = BytesMut::new();
    p.encode(&mut out);
    out.to_vec()
}

fn decode_props(b: &[u8]) -> Result<BasicProperties, Error> {
    BasicProperties::decode(&Bytes::copy_from_slice(b))
}

#[test]
fn all_properties_encode_in_flag_order() {
    let bytes = encode_props(&full_props());
    let mut expected = vec![0xff, 0xfc, 1, b'a', 1, b'b'];
    expected.extend_from_slice(b"\x00\x00\x00\x04\x01hB\x01");
    expected.extend_from_slice(b"\x02\x09\x01c\x01d\x0560000\x01e");
    expected.extend_from_slice(&0x0102030405060708u64.to_be_bytes());
    expected.extend_from_slice(b"\x01f\x01g\x01h\x01i");
    assert_eq!(bytes, expected);
    assert_eq!(decode_props(&bytes).unwrap(), full_props());
}

#[test]
fn each_property_alone_sets_its_own_flag_bit() {
    let full = full_props();
    let singles: Vec<(u16, BasicProperties)> = vec![
        (
            15,
            BasicProperties {
                content_type: full.content_type.clone(),
                ..Default::default()
            },
        ),
        (
            14,
            BasicProperties {
                content_encoding: full.content_encoding.clone(),
                ..Default::default()
            },
        ),
        (
            13,
            BasicProperties {
                headers: full.headers.clone(),
                ..Default::default()
            },
        ),
        (
            12,
            BasicProperties {
                delivery_mode: full.delivery_mode,
                ..Default::default()
            },
        ),
        (
            11,
            BasicProperties {
                priority: full.priority,
                ..Default::default()
            },
        ),
        (
            10,
            BasicProperties {
                correlation_id: full.correlation_id.clone(),
                ..Default::default()
            },
        ),
        (
            9,
            BasicProperties {
                reply_to: full.reply_to.clone(),
                ..Default::default()
            },
        ),
        (
            8,
            BasicProperties {
                expiration: full.expiration.clone(),
                ..Default::default()
            },
        ),
        (
            7,
            BasicProperties {
                message_id: full.message_id.clone(),
                ..Default::default()
            },
        ),
        (
            6,
            BasicProperties {
                timestamp: full.timestamp,
                ..Default::default()
            },
        ),
        (
            5,
            BasicProperties {
                kind: full.kind.clone(),
                ..Default::default()
            },
        ),
        (
            4,
            BasicProperties {
                user_id: full.user_id.clone(),
                ..Default::default()
            },
        ),
        (
            3,
            BasicProperties {
                app_id: full.app_id.clone(),
                ..Default::default()
            },
        ),
        (
            2,
            BasicProperties {
                cluster_id: full.cluster_id.clone(),
                ..Default::default()
            },
        ),
    ];
    for (bit, p) in singles {
        let bytes = encode_props(&p);
        assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]), 1 << bit, "{p:?}");
        assert_eq!(p.flags(), 1 << bit);
        assert_eq!(decode_props(&bytes).unwrap(), p);
    }
}

#[test]
fn no_properties_is_one_zero_flag_word() {
    assert_eq!(encode_props(&BasicProperties::default()), [0, 0]);
    assert_eq!(decode_props(&[0, 0]).unwrap(), BasicProperties::default());
}

#[test]
fn flag_continuation_words_are_read_past() {
    // delivery-mode set, continuation bit set, then an empty continuation word.
    let p = decode_props(&[0x10, 0x01, 0x00, 0x00, 0x02]).unwrap();
    assert_eq!(p.delivery_mode, Some(2));
    // Two continuation words.
    let p = decode_props(&[0x10, 0x01, 0x00, 0x01, 0x00, 0x00, 0x01]).unwrap();
    assert_eq!(p.delivery_mode, Some(1));
}

#[test]
fn continuation_word_with_property_bits_is_refused() {
    assert!(
        matches!(decode_props(&[0x00, 0x01, 0x80, 0x00]), Err(Error::Syntax(t)) if t.contains("continuation"))
    );
}

#[test]
fn missing_continuation_word_is_refused() {
    assert!(matches!(decode_props(&[0x00, 0x01]), Err(Error::Syntax(_))));
}

#[test]
fn unused_bit_one_is_ignored() {
    assert_eq!(
        decode_props(&[0x00, 0x02]).unwrap(),
        BasicProperties::default()
    );
}

#[test]
fn property_bytes_beyond_the_flagged_properties_are_refused() {
    assert!(matches!(
        decode_props(&[0x10, 0x00, 0x02, 0x00]),
        Err(Error::Syntax(_))
    ));
}

#[test]
fn every_truncation_of_properties_is_an_error() {
    let bytes = encode_props(&full_props());
    for cut in 0..bytes.len() {
        assert!(decode_props(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}
