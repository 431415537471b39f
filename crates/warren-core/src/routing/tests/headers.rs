//! Headers exchange rules; every expectation here agrees with RabbitMQ 3.10.

use super::*;
use crate::routing::validate_binding_arguments;
use bytes::Bytes;
use warren_amqp::Decimal;

fn s(v: &str) -> FieldValue {
    FieldValue::string(v)
}

/// Whether a headers binding with `args` routes a message with `headers`.
fn matches(args: &[(&str, FieldValue)], headers: Option<&[(&str, FieldValue)]>) -> bool {
    let mut router = Router::new(ExchangeKind::Headers);
    router.bind(&key(""), &table(args), "q");
    let headers = headers.map(table);
    !route(&router, "ignored", headers.as_ref()).is_empty()
}

#[test]
fn binding_without_arguments_matches_every_message() {
    assert!(matches(&[], None));
    assert!(matches(&[], Some(&[("z", s("1"))])));
}

#[test]
fn all_needs_every_key_present_with_an_equal_value() {
    let args = [("a", s("1")), ("b", s("2"))];
    assert!(matches(
        &args,
        Some(&[("a", s("1")), ("b", s("2")), ("c", s("3"))])
    ));
    assert!(!matches(&args, Some(&[("a", s("1"))])));
    assert!(!matches(&args, Some(&[("a", s("1")), ("b", s("3"))])));
    assert!(!matches(&args, None));
    let explicit = [("x-match", s("all")), ("a", s("1"))];
    assert!(matches(&explicit, Some(&[("a", s("1"))])));
}

#[test]
fn any_needs_one_key_present_with_an_equal_value() {
    let args = [("x-match", s("any")), ("a", s("1")), ("b", s("2"))];
    assert!(matches(&args, Some(&[("b", s("2"))])));
    assert!(!matches(&args, Some(&[("b", s("3"))])));
    assert!(!matches(&args, None));
}

#[test]
fn any_with_nothing_to_compare_matches_nothing() {
    assert!(!matches(&[("x-match", s("any"))], Some(&[("b", s("3"))])));
    assert!(!matches(
        &[("x-match", s("any")), ("x-a", s("1"))],
        Some(&[("x-a", s("1"))])
    ));
}

#[test]
fn x_prefixed_binding_keys_are_ignored_by_all_and_any() {
    assert!(matches(
        &[("x-a", s("1")), ("b", s("2"))],
        Some(&[("b", s("2"))])
    ));
    assert!(matches(
        &[("x-match", s("all")), ("x-a", s("1")), ("b", s("2"))],
        Some(&[("b", s("2"))])
    ));
}

#[test]
fn x_prefix_is_case_sensitive() {
    assert!(!matches(&[("X-a", s("1"))], Some(&[("b", s("2"))])));
}

#[test]
fn with_x_modes_compare_x_prefixed_keys_but_never_x_match() {
    let all_with_x = [("x-match", s("all-with-x")), ("x-a", s("1")), ("b", s("2"))];
    assert!(!matches(&all_with_x, Some(&[("b", s("2"))])));
    assert!(matches(
        &all_with_x,
        Some(&[("b", s("2")), ("x-a", s("1"))])
    ));
    assert!(matches(&[("x-match", s("all-with-x"))], None));
    assert!(matches(
        &[("x-match", s("all-with-x"))],
        Some(&[("q", s("1"))])
    ));
    assert!(matches(
        &[("x-match", s("any-with-x")), ("x-a", s("1"))],
        Some(&[("x-a", s("1"))])
    ));
}

#[test]
fn x_match_in_message_headers_is_an_ordinary_header() {
    assert!(matches(
        &[("a", s("1"))],
        Some(&[("a", s("1")), ("x-match", s("any"))])
    ));
}

#[test]
fn void_binding_value_matches_presence_of_the_key() {
    assert!(matches(
        &[("a", FieldValue::Void)],
        Some(&[("a", s("whatever"))])
    ));
    assert!(matches(
        &[("a", FieldValue::Void)],
        Some(&[("a", FieldValue::Void)])
    ));
    assert!(!matches(
        &[("a", FieldValue::Void)],
        Some(&[("b", s("whatever"))])
    ));
    assert!(!matches(&[("a", s("x"))], Some(&[("a", FieldValue::Void)])));
    assert!(matches(
        &[
            ("x-match", s("any")),
            ("a", FieldValue::Void),
            ("b", s("1"))
        ],
        Some(&[("a", s("zz"))])
    ));
    assert!(matches(
        &[("x-match", s("any-with-x")), ("x-q", FieldValue::Void)],
        Some(&[("x-q", s("zz"))])
    ));
}

#[test]
fn integers_match_across_wire_types_by_value() {
    let one = [("a", FieldValue::I32(1))];
    for header in [
        FieldValue::I64(1),
        FieldValue::I8(1),
        FieldValue::U8(1),
        FieldValue::I16(1),
        FieldValue::U16(1),
    ] {
        assert!(matches(&one, Some(&[("a", header.clone())])), "{header:?}");
    }
    assert!(matches(
        &[("a", FieldValue::I32(7))],
        Some(&[("a", FieldValue::U32(7))])
    ));
    assert!(matches(
        &[("a", FieldValue::I64(4_000_000_000))],
        Some(&[("a", FieldValue::U32(4_000_000_000))])
    ));
    assert!(matches(
        &[("a", FieldValue::I32(5))],
        Some(&[("a", FieldValue::Timestamp(5))])
    ));
    assert!(!matches(&one, Some(&[("a", FieldValue::I64(2))])));
}

#[test]
fn integers_equal_floats_of_the_same_value() {
    assert!(matches(
        &[("a", FieldValue::I32(1))],
        Some(&[("a", FieldValue::F64(1.0))])
    ));
    assert!(!matches(
        &[("a", FieldValue::F64(1.5))],
        Some(&[("a", FieldValue::I32(1))])
    ));
}

#[test]
fn float_is_widened_to_double_before_comparing() {
    assert!(matches(
        &[("a", FieldValue::F32(0.5))],
        Some(&[("a", FieldValue::F64(0.5))])
    ));
    assert!(!matches(
        &[("a", FieldValue::F32(0.1))],
        Some(&[("a", FieldValue::F64(0.1))])
    ));
}

#[test]
fn long_string_equals_byte_array_with_the_same_bytes() {
    let bytes = FieldValue::ByteArray(Bytes::from_static(b"abc"));
    assert!(matches(&[("a", s("abc"))], Some(&[("a", bytes)])));
    assert!(!matches(&[("a", s("abc"))], Some(&[("a", s("abd"))])));
}

#[test]
fn values_of_unrelated_types_never_match() {
    assert!(!matches(
        &[("a", FieldValue::I32(1))],
        Some(&[("a", s("1"))])
    ));
    assert!(!matches(
        &[("a", FieldValue::Bool(true))],
        Some(&[("a", FieldValue::I32(1))])
    ));
    assert!(matches(
        &[("a", FieldValue::Bool(true))],
        Some(&[("a", FieldValue::Bool(true))])
    ));
    let five = FieldValue::Decimal(Decimal { scale: 0, value: 5 });
    assert!(!matches(
        &[("a", five.clone())],
        Some(&[("a", FieldValue::I32(5))])
    ));
}

#[test]
fn decimals_match_only_with_the_same_scale_and_value() {
    let d = |scale, value| FieldValue::Decimal(Decimal { scale, value });
    assert!(matches(&[("a", d(1, 5))], Some(&[("a", d(1, 5))])));
    assert!(!matches(&[("a", d(1, 5))], Some(&[("a", d(2, 50))])));
}

#[test]
fn arrays_and_tables_must_match_types_inside() {
    let arr = |v| FieldValue::Array(vec![v]);
    assert!(matches(
        &[("a", arr(FieldValue::I32(1)))],
        Some(&[("a", arr(FieldValue::I32(1)))])
    ));
    assert!(!matches(
        &[("a", arr(FieldValue::I32(1)))],
        Some(&[("a", arr(FieldValue::I64(1)))])
    ));
    let tab = |entries: &[(&str, FieldValue)]| FieldValue::Table(table(entries));
    let same = tab(&[("k", FieldValue::I32(1)), ("j", s("s"))]);
    assert!(matches(&[("a", same.clone())], Some(&[("a", same)])));
    assert!(!matches(
        &[("a", tab(&[("k", FieldValue::I32(1))]))],
        Some(&[("a", tab(&[("k", FieldValue::I64(1))]))])
    ));
}

#[test]
fn nested_tables_compare_in_order() {
    let tab = |entries: &[(&str, FieldValue)]| FieldValue::Table(table(entries));
    let kj = tab(&[("k", FieldValue::I32(1)), ("j", s("s"))]);
    let jk = tab(&[("j", s("s")), ("k", FieldValue::I32(1))]);
    assert!(!matches(&[("a", kj)], Some(&[("a", jk)])));
}

#[test]
fn repeated_keys_pair_up_by_occurrence() {
    assert!(!matches(
        &[("a", s("1"))],
        Some(&[("a", s("2")), ("a", s("1"))])
    ));
    assert!(matches(
        &[("a", s("1"))],
        Some(&[("a", s("1")), ("a", s("2"))])
    ));
    let twice = [("a", s("1")), ("a", s("2"))];
    assert!(matches(&twice, Some(&[("a", s("1")), ("a", s("2"))])));
    assert!(!matches(&twice, Some(&[("a", s("1"))])));
    let any_twice = [("x-match", s("any")), ("a", s("1")), ("a", s("2"))];
    assert!(matches(&any_twice, Some(&[("a", s("9")), ("a", s("2"))])));
}

#[test]
fn headers_exchange_ignores_the_routing_key() {
    let mut router = Router::new(ExchangeKind::Headers);
    router.bind(&key("only-this"), &table(&[("a", s("1"))]), "q");
    let headers = table(&[("a", s("1"))]);
    assert_eq!(route(&router, "something-else", Some(&headers)), vec!["q"]);
}

#[test]
fn destination_matched_by_several_headers_bindings_is_routed_once() {
    let mut router = Router::new(ExchangeKind::Headers);
    router.bind(&key(""), &table(&[("a", s("1"))]), "q1");
    router.bind(&key("other"), &table(&[("a", s("1"))]), "q1");
    router.bind(&key(""), &table(&[("b", s("2"))]), "q1");
    router.bind(&key(""), &table(&[("a", s("1"))]), "q2");
    router.bind(&key(""), &table(&[("a", s("2"))]), "q3");
    let headers = table(&[("a", s("1")), ("b", s("2"))]);
    assert_eq!(route(&router, "", Some(&headers)), vec!["q1", "q2"]);
}

#[test]
fn invalid_x_match_value_is_refused_with_rabbitmq_text() {
    let err = validate_binding_arguments(ExchangeKind::Headers, &table(&[("x-match", s("foo"))]))
        .unwrap_err();
    assert_eq!(
        err,
        "Invalid x-match field value <<\"foo\">>; expected all, any, all-with-x, or any-with-x"
    );
    let err = validate_binding_arguments(ExchangeKind::Headers, &table(&[("x-match", s(""))]))
        .unwrap_err();
    assert_eq!(
        err,
        "Invalid x-match field value <<>>; expected all, any, all-with-x, or any-with-x"
    );
    assert!(
        validate_binding_arguments(ExchangeKind::Headers, &table(&[("x-match", s("ALL"))]))
            .is_err()
    );
}

#[test]
fn x_match_of_another_type_is_refused_with_rabbitmq_text() {
    let cases = [
        (
            FieldValue::I32(1),
            "Invalid x-match field type signedint (value 1); expected longstr",
        ),
        (
            FieldValue::ByteArray(Bytes::from_static(b"any")),
            "Invalid x-match field type binary (value <<\"any\">>); expected longstr",
        ),
        (
            FieldValue::Bool(true),
            "Invalid x-match field type bool (value true); expected longstr",
        ),
        (
            FieldValue::Void,
            "Invalid x-match field type void (value undefined); expected longstr",
        ),
        (
            FieldValue::F64(1.5),
            "Invalid x-match field type double (value 1.5); expected longstr",
        ),
    ];
    for (value, text) in cases {
        let err = validate_binding_arguments(ExchangeKind::Headers, &table(&[("x-match", value)]))
            .unwrap_err();
        assert_eq!(err, text);
    }
}

#[test]
fn valid_x_match_values_and_other_exchange_types_pass_validation() {
    for mode in ["all", "any", "all-with-x", "any-with-x"] {
        assert_eq!(
            validate_binding_arguments(ExchangeKind::Headers, &table(&[("x-match", s(mode))])),
            Ok(())
        );
    }
    assert_eq!(
        validate_binding_arguments(ExchangeKind::Headers, &no_args()),
        Ok(())
    );
    let bad = table(&[("x-match", s("foo"))]);
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
    ] {
        assert_eq!(validate_binding_arguments(kind, &bad), Ok(()));
    }
}

#[test]
fn unvalidated_bad_x_match_behaves_as_all() {
    let args = [
        ("x-match", FieldValue::I32(1)),
        ("a", s("1")),
        ("b", s("2")),
    ];
    assert!(matches(&args, Some(&[("a", s("1")), ("b", s("2"))])));
    assert!(!matches(&args, Some(&[("a", s("1"))])));
}
