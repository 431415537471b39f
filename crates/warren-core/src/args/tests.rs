//! Argument validation, with the texts RabbitMQ 3.10.8 answers (captured from it).

use super::*;

fn meta(
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    args: &[(&str, FieldValue)],
) -> QueueMeta {
    let mut arguments = FieldTable::new();
    for (k, v) in args {
        arguments.insert(*k, v.clone());
    }
    QueueMeta {
        name: "q".into(),
        durable,
        exclusive_owner: exclusive.then_some(1),
        auto_delete,
        arguments,
    }
}

fn refusal(args: &[(&str, FieldValue)]) -> String {
    QueueArgs::from_declaration(&meta(false, false, false, args), "/")
        .unwrap_err()
        .reply_text()
}

fn s(v: &str) -> FieldValue {
    FieldValue::string(v)
}

#[test]
fn negative_max_length_is_refused_with_value_negative() {
    assert_eq!(
        refusal(&[("x-max-length", FieldValue::I32(-1))]),
        "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}"
    );
}

#[test]
fn integer_arguments_of_another_type_name_the_type_received() {
    assert_eq!(
        refusal(&[("x-message-ttl", s("1000"))]),
        "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\""
    );
    assert!(refusal(&[("x-max-length", FieldValue::Bool(true))])
        .ends_with("\"expected integer, got bool\""));
    assert!(
        refusal(&[("x-max-length", FieldValue::Void)]).ends_with("\"expected integer, got void\"")
    );
}

#[test]
fn ttl_and_expires_ranges_follow_rabbitmq() {
    assert!(
        refusal(&[("x-message-ttl", FieldValue::I64(315_360_000_001))])
            .ends_with("{value_too_large,315360000001}")
    );
    assert!(refusal(&[("x-expires", FieldValue::I32(0))])
        .ends_with("invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}"));
    assert!(refusal(&[("x-expires", FieldValue::I32(-1))]).ends_with("{value_negative,-1}"));
    let ok = QueueArgs::from_declaration(
        &meta(
            false,
            false,
            false,
            &[("x-message-ttl", FieldValue::I32(0))],
        ),
        "/",
    )
    .unwrap();
    assert_eq!(ok.message_ttl_ms, Some(0));
}

#[test]
fn max_priority_above_255_is_refused_and_0_is_a_single_level() {
    assert!(
        refusal(&[("x-max-priority", FieldValue::I32(256))]).ends_with("{max_value_exceeded,256}")
    );
    assert!(refusal(&[("x-max-priority", FieldValue::I32(-1))]).ends_with("{value_negative,-1}"));
    let ok = QueueArgs::from_declaration(
        &meta(
            false,
            false,
            false,
            &[("x-max-priority", FieldValue::U8(0))],
        ),
        "/",
    )
    .unwrap();
    assert_eq!(ok.max_priority, Some(0));
}

#[test]
fn unknown_overflow_mode_and_wrong_types_are_refused() {
    assert!(refusal(&[("x-overflow", s("bogus"))])
        .ends_with("invalid arg 'x-overflow' for queue 'q' in vhost '/': invalid_overflow"));
    assert!(
        refusal(&[("x-overflow", FieldValue::I32(1))]).ends_with("{unacceptable_type,signedint}")
    );
    assert!(
        refusal(&[("x-single-active-consumer", s("yes"))]).ends_with("{unacceptable_type,longstr}")
    );
    assert!(
        refusal(&[("x-queue-mode", s("weird"))]).ends_with("\"unsupported queue mode 'weird'\"")
    );
    assert!(
        refusal(&[("x-queue-type", s("bogus"))]).ends_with("\"unsupported queue type 'bogus'\"")
    );
}

#[test]
fn dead_letter_exchange_of_wrong_type_and_routing_key_without_exchange_are_refused() {
    assert_eq!(
        refusal(&[("x-dead-letter-exchange", FieldValue::I32(5))]),
        "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"
    );
    assert!(refusal(&[("x-dead-letter-routing-key", s("rk"))])
        .ends_with("routing_key_but_no_dlx_defined"));
    let ok = QueueArgs::from_declaration(
        &meta(
            false,
            false,
            false,
            &[
                ("x-dead-letter-exchange", s("dlx")),
                ("x-dead-letter-routing-key", s("rk")),
            ],
        ),
        "/",
    )
    .unwrap();
    assert_eq!(
        ok.dead_letter,
        Some(DeadLetterTarget {
            exchange: "dlx".into(),
            routing_key: Some("rk".into())
        })
    );
}

#[test]
fn the_first_failing_argument_in_rabbitmq_order_is_reported() {
    // x-expires is checked before x-max-length, whatever the table order.
    let text = refusal(&[
        ("x-max-length", FieldValue::I32(-1)),
        ("x-expires", FieldValue::I32(0)),
    ]);
    assert!(text.contains("'x-expires'"), "{text}");
}

#[test]
fn quorum_queues_must_be_durable_not_exclusive_not_auto_delete() {
    let quorum = [("x-queue-type", s("quorum"))];
    let text = |d, e, a| {
        QueueArgs::from_declaration(&meta(d, e, a, &quorum), "/")
            .unwrap_err()
            .reply_text()
    };
    assert_eq!(
        text(false, false, false),
        "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'q' in vhost '/'"
    );
    assert!(text(true, true, false)
        .ends_with("invalid property 'exclusive-owner' for queue 'q' in vhost '/'"));
    assert!(text(false, true, true)
        .ends_with("invalid property 'auto-delete' for queue 'q' in vhost '/'"));
    let ok = QueueArgs::from_declaration(&meta(true, false, false, &quorum), "/").unwrap();
    assert_eq!(ok.queue_type, QueueType::Quorum);
}

#[test]
fn arguments_of_another_queue_type_are_refused_by_name() {
    assert_eq!(
        refusal(&[("x-delivery-limit", FieldValue::I32(3))]),
        "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue 'q' in vhost '/' of queue type rabbit_classic_queue"
    );
    let m = meta(
        false,
        false,
        false,
        &[
            ("x-queue-type", s("quorum")),
            ("x-max-priority", FieldValue::I32(5)),
        ],
    );
    // Checked before the durability rule, as RabbitMQ does.
    assert!(QueueArgs::from_declaration(&m, "/")
        .unwrap_err()
        .reply_text()
        .ends_with("of queue type rabbit_quorum_queue"));
}

#[test]
fn quorum_delivery_limit_is_read_leniently_as_rabbitmq_does() {
    let m = |v| {
        meta(
            true,
            false,
            false,
            &[("x-queue-type", s("quorum")), ("x-delivery-limit", v)],
        )
    };
    assert_eq!(
        QueueArgs::from_declaration(&m(FieldValue::I32(2)), "/")
            .unwrap()
            .delivery_limit,
        Some(2)
    );
    assert_eq!(
        QueueArgs::from_declaration(&m(s("a")), "/")
            .unwrap()
            .delivery_limit,
        None
    );
}

#[test]
fn streams_are_refused_until_warren_has_them() {
    let text = QueueArgs::from_declaration(
        &meta(true, false, false, &[("x-queue-type", s("stream"))]),
        "/",
    )
    .unwrap_err();
    assert_eq!(text.reply_code(), warren_amqp::ReplyCode::PreconditionFailed);
    assert!(
        text.reply_text().ends_with("\"unsupported queue type 'stream'\""),
        "{}",
        text.reply_text()
    );
}

#[test]
fn unknown_arguments_are_ignored() {
    assert_eq!(
        QueueArgs::from_declaration(
            &meta(false, false, false, &[("x-foo", FieldValue::I32(1))]),
            "/"
        )
        .unwrap(),
        QueueArgs::default()
    );
}

#[test]
fn only_reject_modes_with_a_limit_may_refuse_publishes() {
    let args = |a: &[(&str, FieldValue)]| {
        QueueArgs::from_declaration(&meta(false, false, false, a), "/").unwrap()
    };
    assert!(!args(&[("x-max-length", FieldValue::I32(1))]).may_refuse_publishes());
    assert!(!args(&[("x-overflow", s("reject-publish"))]).may_refuse_publishes());
    assert!(args(&[
        ("x-max-length", FieldValue::I32(1)),
        ("x-overflow", s("reject-publish"))
    ])
    .may_refuse_publishes());
    assert!(args(&[
        ("x-max-length-bytes", FieldValue::I32(1)),
        ("x-overflow", s("reject-publish-dlx"))
    ])
    .may_refuse_publishes());
}

#[test]
fn consumer_priority_must_be_an_integer() {
    let mut t = FieldTable::new();
    assert_eq!(consumer_priority(&t, "queue 'q' in vhost '/'"), Ok(0));
    t.insert("x-priority", FieldValue::I32(-5));
    assert_eq!(consumer_priority(&t, "queue 'q' in vhost '/'"), Ok(-5));
    t.insert("x-priority", s("a"));
    assert_eq!(
        consumer_priority(&t, "queue 'q' in vhost '/'").unwrap_err().reply_text(),
        "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'q' in vhost '/': \"expected integer, got longstr\""
    );
}

#[test]
fn expiration_property_is_parsed_as_rabbitmq_does() {
    assert_eq!(parse_expiration("0"), Ok(0));
    assert_eq!(parse_expiration("315360000000"), Ok(315_360_000_000));
    let text = |e| parse_expiration(e).unwrap_err().reply_text();
    assert_eq!(
        text("abc"),
        "PRECONDITION_FAILED - invalid expiration 'abc': no_integer"
    );
    assert_eq!(
        text(" 5"),
        "PRECONDITION_FAILED - invalid expiration ' 5': no_integer"
    );
    assert_eq!(
        text("1.5"),
        "PRECONDITION_FAILED - invalid expiration '1.5': {leftover_string,\".5\"}"
    );
    assert_eq!(
        text("-1"),
        "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}"
    );
    assert_eq!(
        text("315360000001"),
        "PRECONDITION_FAILED - invalid expiration '315360000001': {value_too_large,315360000001}"
    );
}

#[test]
fn message_deduplication_is_a_boolean_argument() {
    let on = QueueArgs::from_declaration(
        &meta(
            false,
            false,
            false,
            &[("x-message-deduplication", FieldValue::Bool(true))],
        ),
        "/",
    )
    .unwrap();
    assert!(on.deduplication);
    assert!(
        !QueueArgs::from_declaration(&meta(false, false, false, &[]), "/")
            .unwrap()
            .deduplication
    );
    assert_eq!(
        refusal(&[("x-message-deduplication", s("true"))]),
        "PRECONDITION_FAILED - invalid arg 'x-message-deduplication' for queue 'q' in vhost '/': {unacceptable_type,longstr}"
    );
}
