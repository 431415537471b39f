//! Policy validation (texts as RabbitMQ 3.10.8 answers them, values shown as JSON), matching,
//! and the precedence between policy and arguments (checked against RabbitMQ 3.10.8 for the
//! cases `tests/python/test_policies.py` runs against it).

use super::*;
use crate::entity::QueueMeta;
use serde_json::json;
use warren_amqp::FieldValue;

fn policy(name: &str, pattern: &str, definition: Value, priority: i64, apply_to: &str) -> Policy {
    Policy::new(
        name,
        &json!(pattern),
        &definition,
        Some(&json!(priority)),
        Some(&json!(apply_to)),
    )
    .unwrap()
}

fn refusal(definition: Value) -> String {
    Policy::new("p", &json!(".*"), &definition, None, None)
        .unwrap_err()
        .0
}

/// A queue's declared settings and arguments.
fn queue(quorum: bool, args: &[(&str, FieldValue)]) -> (QueueArgs, FieldTable) {
    let mut arguments = FieldTable::new();
    if quorum {
        arguments.insert("x-queue-type", FieldValue::string("quorum"));
    }
    for (k, v) in args {
        arguments.insert(*k, v.clone());
    }
    let meta = QueueMeta {
        name: "q".into(),
        durable: true,
        exclusive_owner: None,
        auto_delete: false,
        arguments: arguments.clone(),
    };
    (QueueArgs::from_declaration(&meta, "/").unwrap(), arguments)
}

fn effective(quorum: bool, args: &[(&str, FieldValue)], definition: Value) -> QueueArgs {
    let (declared, arguments) = queue(quorum, args);
    let p = policy("p", ".*", definition, 0, "queues");
    effective_queue_args(&declared, &arguments, Some(&p))
}

fn int(n: i64) -> FieldValue {
    FieldValue::I64(n)
}

#[test]
fn unknown_keys_are_refused_all_named() {
    assert_eq!(
        refusal(json!({"max-length": 1, "foo": 1, "bar": 2})),
        r#"["bar","foo"] are not recognised policy settings"#
    );
    // Keys RabbitMQ 3.10 has no policy for either.
    assert_eq!(
        refusal(json!({"max-priority": 5})),
        r#"["max-priority"] are not recognised policy settings"#
    );
}

#[test]
fn bad_values_are_refused_with_rabbitmq_sentences() {
    for (definition, text) in [
        (
            json!({"max-length": -1}),
            "-1 is not a valid maximum length",
        ),
        (
            json!({"max-length": "3"}),
            "\"3\" is not a valid maximum length",
        ),
        (
            json!({"max-length": 3.5}),
            "3.5 is not a valid maximum length",
        ),
        (
            json!({"overflow": "bogus"}),
            "\"bogus\" is not a valid overflow value",
        ),
        (json!({"expires": 0}), "0 is not a valid queue expiry"),
        (json!({"message-ttl": -5}), "-5 is not a valid message TTL"),
        (
            json!({"dead-letter-exchange": 5}),
            "5 is not a valid dead letter exchange name",
        ),
        (
            json!({"delivery-limit": -1}),
            "-1 is not a valid delivery limit",
        ),
        (
            json!({"queue-mode": "eager"}),
            "\"eager\" is not a valid queue-mode value",
        ),
        (json!({}), "no policy provided"),
    ] {
        assert_eq!(refusal(definition), text);
    }
}

#[test]
fn priority_pattern_and_apply_to_are_checked_before_the_definition() {
    let err = |pattern: Value, priority: Value, apply_to: Value| {
        Policy::new("p", &pattern, &json!({}), Some(&priority), Some(&apply_to))
            .unwrap_err()
            .0
    };
    assert_eq!(
        err(json!("x"), json!("high"), json!("all")),
        "priority should be a number, actually was \"high\""
    );
    assert_eq!(
        err(json!(5), json!(0), json!("all")),
        "pattern should be a binary but was 5"
    );
    assert!(err(json!("("), json!(0), json!("all"))
        .starts_with("pattern should be regular expression but is invalid: "));
    assert_eq!(
        err(json!("x"), json!(0), json!("bogus")),
        "apply-to 'bogus' unrecognised; should be 'queues', 'exchanges' or 'all'"
    );
    assert_eq!(
        Policy::new("p", &json!("x"), &json!([1]), None, None)
            .unwrap_err()
            .0,
        "definition must be a dictionary: [1]"
    );
}

#[test]
fn mirroring_and_stream_keys_are_refused_as_unsupported() {
    assert!(refusal(json!({"ha-mode": "all"})).contains("'ha-mode' is not supported by Warren"));
    assert!(refusal(json!({"max-age": "1D"})).contains("streams are not implemented"));
}

#[test]
fn defaults_are_priority_zero_and_apply_to_all() {
    let p = Policy::new("p", &json!("^a"), &json!({"max-length": 1}), None, None).unwrap();
    assert_eq!(p.priority, Number::from(0));
    assert_eq!(p.apply_to, ApplyTo::All);
    assert!(p.matches_queue("abc", QueueType::Classic));
    assert!(p.matches_exchange("abc"));
    assert!(!p.matches_queue("bac", QueueType::Classic));
}

#[test]
fn pattern_is_an_unanchored_search() {
    let p = policy("p", "orders", json!({"max-length": 1}), 0, "all");
    assert!(p.matches_queue("eu.orders.v1", QueueType::Classic));
    assert!(!p.matches_queue("order", QueueType::Classic));
    let anchored = policy("p", "^orders$", json!({"max-length": 1}), 0, "all");
    assert!(!anchored.matches_queue("eu.orders", QueueType::Classic));
}

#[test]
fn apply_to_limits_the_kind_of_object() {
    let q = policy("q", ".*", json!({"max-length": 1}), 0, "queues");
    let x = policy(
        "x",
        ".*",
        json!({"alternate-exchange": "ae"}),
        0,
        "exchanges",
    );
    assert!(q.matches_queue("a", QueueType::Classic) && !q.matches_exchange("a"));
    assert!(x.matches_exchange("a") && !x.matches_queue("a", QueueType::Classic));
}

#[test]
fn highest_priority_matching_policy_applies_alone() {
    let mut set = PolicySet::new();
    set.put(policy("low", ".*", json!({"max-length": 1}), 1, "queues"));
    set.put(policy(
        "high",
        "^a",
        json!({"message-ttl": 5}),
        10,
        "queues",
    ));
    assert_eq!(
        set.for_queue("abc", QueueType::Classic).unwrap().name,
        "high"
    );
    assert_eq!(
        set.for_queue("xyz", QueueType::Classic).unwrap().name,
        "low"
    );
    // Replacing keeps one policy per name, re-sorted by the new priority.
    set.put(policy("low", ".*", json!({"max-length": 1}), 20, "queues"));
    assert_eq!(set.iter().count(), 2);
    assert_eq!(
        set.for_queue("abc", QueueType::Classic).unwrap().name,
        "low"
    );
    assert!(set.remove("low").is_some());
    assert_eq!(
        set.for_queue("xyz", QueueType::Classic).map(|p| &p.name),
        None
    );
}

#[test]
fn equal_priorities_choose_by_name() {
    let mut set = PolicySet::new();
    set.put(policy("b", ".*", json!({"max-length": 1}), 0, "all"));
    set.put(policy("a", ".*", json!({"max-length": 2}), 0, "all"));
    assert_eq!(set.for_queue("q", QueueType::Classic).unwrap().name, "a");
}

#[test]
fn policy_with_a_key_the_queue_type_lacks_does_not_apply_to_it() {
    // RabbitMQ 3.10.8: a policy with `delivery-limit` skips classic queues whole, so a
    // lower-priority policy applies instead; `queue-mode` does the same to quorum queues.
    let mut set = PolicySet::new();
    set.put(policy(
        "qq",
        ".*",
        json!({"max-length": 1, "delivery-limit": 3}),
        5,
        "queues",
    ));
    set.put(policy(
        "cq",
        ".*",
        json!({"max-length": 2, "queue-mode": "lazy"}),
        1,
        "queues",
    ));
    assert_eq!(set.for_queue("q", QueueType::Classic).unwrap().name, "cq");
    assert_eq!(set.for_queue("q", QueueType::Quorum).unwrap().name, "qq");
}

#[test]
fn without_a_policy_the_arguments_stand() {
    let (declared, arguments) = queue(false, &[("x-max-length", int(3))]);
    assert_eq!(effective_queue_args(&declared, &arguments, None), declared);
}

#[test]
fn lengths_and_ttl_take_the_smaller_value_for_both_types() {
    for quorum in [false, true] {
        let a = effective(
            quorum,
            &[("x-max-length", int(5)), ("x-message-ttl", int(100))],
            json!({"max-length": 3, "message-ttl": 1000, "max-length-bytes": 10}),
        );
        assert_eq!(a.max_length, Some(3));
        assert_eq!(a.message_ttl_ms, Some(100));
        assert_eq!(a.max_length_bytes, Some(10));
    }
}

#[test]
fn expires_is_the_smaller_for_classic_and_the_policy_for_quorum() {
    let args = [("x-expires", int(700))];
    let definition = json!({"expires": 100000});
    assert_eq!(
        effective(false, &args, definition.clone()).expires_ms,
        Some(700)
    );
    assert_eq!(effective(true, &args, definition).expires_ms, Some(100000));
}

#[test]
fn overflow_is_the_argument_for_classic_and_the_policy_for_quorum() {
    let args = [
        ("x-overflow", FieldValue::string("drop-head")),
        ("x-max-length", int(2)),
    ];
    let definition = json!({"overflow": "reject-publish"});
    assert_eq!(
        effective(false, &args, definition.clone()).overflow,
        Overflow::DropHead
    );
    assert_eq!(
        effective(true, &args, definition.clone()).overflow,
        Overflow::RejectPublish
    );
    // Without the argument the policy's mode applies to both.
    let only_len = [("x-max-length", int(2))];
    assert_eq!(
        effective(false, &only_len, definition).overflow,
        Overflow::RejectPublish
    );
}

#[test]
fn quorum_queue_runs_a_policy_reject_publish_dlx_as_drop_head() {
    let a = effective(
        true,
        &[],
        json!({"overflow": "reject-publish-dlx", "max-length": 1}),
    );
    assert_eq!(a.overflow, Overflow::DropHead);
    let c = effective(
        false,
        &[],
        json!({"overflow": "reject-publish-dlx", "max-length": 1}),
    );
    assert_eq!(c.overflow, Overflow::RejectPublishDlx);
}

#[test]
fn dead_letter_arguments_win_key_by_key() {
    let target = |a: &QueueArgs| {
        a.dead_letter.as_ref().map(|t| {
            (
                t.exchange.to_string(),
                t.routing_key.as_ref().map(|k| k.to_string()),
            )
        })
    };
    let dlx_b = json!({"dead-letter-exchange": "b", "dead-letter-routing-key": "kb"});
    for quorum in [false, true] {
        let both = effective(
            quorum,
            &[
                ("x-dead-letter-exchange", FieldValue::string("a")),
                ("x-dead-letter-routing-key", FieldValue::string("ka")),
            ],
            dlx_b.clone(),
        );
        assert_eq!(target(&both), Some(("a".into(), Some("ka".into()))));
        // The argument's exchange with the policy's routing key.
        let exchange_only = effective(
            quorum,
            &[("x-dead-letter-exchange", FieldValue::string("a"))],
            dlx_b.clone(),
        );
        assert_eq!(
            target(&exchange_only),
            Some(("a".into(), Some("kb".into())))
        );
        assert_eq!(
            target(&effective(quorum, &[], dlx_b.clone())),
            Some(("b".into(), Some("kb".into())))
        );
    }
    // A routing key alone dead-letters nothing.
    let key_only = effective(false, &[], json!({"dead-letter-routing-key": "k"}));
    assert_eq!(key_only.dead_letter, None);
}

#[test]
fn delivery_limit_takes_the_smaller_value_on_quorum_queues() {
    let a = effective(
        true,
        &[("x-delivery-limit", int(10))],
        json!({"delivery-limit": 3}),
    );
    assert_eq!(a.delivery_limit, Some(3));
    let b = effective(
        true,
        &[("x-delivery-limit", int(2))],
        json!({"delivery-limit": 3}),
    );
    assert_eq!(b.delivery_limit, Some(2));
}

#[test]
fn keys_a_policy_does_not_set_keep_the_arguments() {
    let a = effective(
        false,
        &[
            ("x-max-priority", int(5)),
            ("x-single-active-consumer", FieldValue::Bool(true)),
        ],
        json!({"max-length": 1}),
    );
    assert_eq!(a.max_priority, Some(5));
    assert!(a.single_active_consumer);
}

#[test]
fn exchange_policy_names_its_alternate_exchange() {
    let p = policy(
        "x",
        ".*",
        json!({"alternate-exchange": "ae"}),
        0,
        "exchanges",
    );
    assert_eq!(p.alternate_exchange().map(ShortStr::as_str), Some("ae"));
}
