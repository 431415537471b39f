//! Dead-letter effects of the queue and the `x-death` headers, pinned against what
//! RabbitMQ 3.10.8 writes (see tests/python/test_dead_letter.py for the live checks).

use super::*;
use crate::args::{DeadLetterTarget, QueueArgs, QueueType};
use warren_amqp::{FieldTable, FieldValue};

fn published(
    exchange: &str,
    routing_key: &str,
    headers: Option<FieldTable>,
    expiration: Option<&str>,
) -> Message {
    let mut properties = BasicProperties {
        headers,
        ..BasicProperties::default()
    };
    properties.expiration = expiration.map(ShortStr::from);
    properties.priority = Some(3);
    Message {
        exchange: ShortStr::from(exchange),
        routing_key: ShortStr::from(routing_key),
        properties,
        properties_raw: Bytes::new(),
        body: Bytes::from_static(b"m"),
    }
}

fn to(exchange: &str, routing_key: Option<&str>) -> DeadLetterTarget {
    DeadLetterTarget {
        exchange: exchange.into(),
        routing_key: routing_key.map(ShortStr::from),
    }
}

fn keys(t: &FieldTable) -> Vec<&str> {
    t.iter().map(|(k, _)| k.as_str()).collect()
}

fn deaths(m: &Message) -> Vec<FieldTable> {
    match m.properties.headers.as_ref().and_then(|h| h.get("x-death")) {
        Some(FieldValue::Array(a)) => a
            .iter()
            .map(|d| match d {
                FieldValue::Table(t) => t.clone(),
                other => panic!("x-death entry {other:?}"),
            })
            .collect(),
        other => panic!("x-death {other:?}"),
    }
}

fn s(v: &str) -> FieldValue {
    FieldValue::string(v)
}

#[test]
fn first_death_writes_x_death_and_first_death_headers_as_rabbitmq() {
    let mut headers = FieldTable::new();
    headers.insert("a", FieldValue::I32(1));
    headers.insert("CC", FieldValue::Array(vec![s("other")]));
    let m = published("", "src", Some(headers), Some("60000"));
    let dead = dead_letter_message(
        &m,
        DeathReason::Rejected,
        "src",
        &to("dlx", None),
        1_700_000_000,
    );
    assert_eq!(
        (dead.exchange.as_str(), dead.routing_key.as_str()),
        ("dlx", "src")
    );
    assert_eq!(dead.properties.expiration, None);
    assert_eq!(
        dead.properties.priority,
        Some(3),
        "other properties are kept"
    );
    let h = dead.properties.headers.as_ref().unwrap();
    assert_eq!(
        keys(h),
        vec![
            "CC",
            "a",
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason"
        ]
    );
    assert_eq!(h.get("x-first-death-reason"), Some(&s("rejected")));
    assert_eq!(h.get("x-first-death-queue"), Some(&s("src")));
    assert_eq!(h.get("x-first-death-exchange"), Some(&s("")));
    let d = &deaths(&dead)[0];
    assert_eq!(
        keys(d),
        vec![
            "count",
            "reason",
            "queue",
            "time",
            "exchange",
            "routing-keys",
            "original-expiration"
        ]
    );
    assert_eq!(d.get("count"), Some(&FieldValue::I64(1)));
    assert_eq!(d.get("time"), Some(&FieldValue::Timestamp(1_700_000_000)));
    assert_eq!(
        d.get("routing-keys"),
        Some(&FieldValue::Array(vec![s("src"), s("other")]))
    );
    assert_eq!(d.get("original-expiration"), Some(&s("60000")));
    // The re-encoded properties are what consumers receive.
    assert_eq!(
        BasicProperties::decode(&dead.properties_raw).unwrap(),
        dead.properties
    );
}

#[test]
fn dead_letter_routing_key_replaces_the_key_and_drops_cc() {
    let mut headers = FieldTable::new();
    headers.insert("CC", FieldValue::Array(vec![s("cc1")]));
    let m = published("ex", "orig", Some(headers), None);
    let dead = dead_letter_message(&m, DeathReason::Expired, "q", &to("dlx", Some("new")), 1);
    assert_eq!(dead.routing_key.as_str(), "new");
    let h = dead.properties.headers.as_ref().unwrap();
    assert!(h.get("CC").is_none());
    let d = &deaths(&dead)[0];
    assert_eq!(
        d.get("routing-keys"),
        Some(&FieldValue::Array(vec![s("orig"), s("cc1")]))
    );
    assert!(d.get("original-expiration").is_none());
    assert_eq!(d.get("exchange"), Some(&s("ex")));
}

#[test]
fn dying_again_in_the_same_queue_for_the_same_reason_counts_up_and_keeps_the_first_time() {
    let m = published("", "q1", None, None);
    let once = dead_letter_message(&m, DeathReason::Rejected, "q1", &to("x1", None), 100);
    let twice = dead_letter_message(&once, DeathReason::Rejected, "q2", &to("x2", None), 200);
    let d = deaths(&twice);
    // The new entry has its keys sorted; the old one keeps its order.
    assert_eq!(
        keys(&d[0]),
        vec![
            "count",
            "exchange",
            "queue",
            "reason",
            "routing-keys",
            "time"
        ]
    );
    assert_eq!(
        keys(&d[1]),
        vec![
            "count",
            "reason",
            "queue",
            "time",
            "exchange",
            "routing-keys"
        ]
    );
    let thrice = dead_letter_message(&twice, DeathReason::Rejected, "q1", &to("x1", None), 300);
    let d = deaths(&thrice);
    assert_eq!(d[0].get("queue"), Some(&s("q1")));
    assert_eq!(d[0].get("count"), Some(&FieldValue::I64(2)));
    assert_eq!(d[0].get("time"), Some(&FieldValue::Timestamp(100)));
    assert_eq!(d[1].get("queue"), Some(&s("q2")));
    let h = thrice.properties.headers.as_ref().unwrap();
    assert_eq!(h.get("x-first-death-queue"), Some(&s("q1")));
    assert_eq!(h.get("x-first-death-exchange"), Some(&s("")));
}

#[test]
fn older_entries_are_reversed_at_each_death_as_rabbitmq_3_10_does() {
    // RabbitMQ 3.10.8, a message rejected along c0 -> c1 -> c2 -> c3 -> c4.
    let mut m = published("", "c0", None, None);
    let mut seen = Vec::new();
    for i in 0..4 {
        m = dead_letter_message(
            &m,
            DeathReason::Rejected,
            &format!("c{i}"),
            &to(&format!("cx{i}"), None),
            1,
        );
        let queues: Vec<String> = deaths(&m)
            .iter()
            .map(|d| d.get("queue").unwrap().as_str().unwrap().to_string())
            .collect();
        seen.push(queues.join(","));
    }
    assert_eq!(seen, vec!["c0", "c1,c0", "c2,c0,c1", "c3,c1,c0,c2"]);
}

#[test]
fn x_death_of_the_wrong_type_is_replaced_without_first_death_headers() {
    let mut headers = FieldTable::new();
    headers.insert("x-death", s("garbage"));
    let dead = dead_letter_message(
        &published("", "q", Some(headers), None),
        DeathReason::Maxlen,
        "q",
        &to("d", None),
        1,
    );
    assert_eq!(deaths(&dead).len(), 1);
    assert!(dead
        .properties
        .headers
        .as_ref()
        .unwrap()
        .get("x-first-death-reason")
        .is_none());
}

#[test]
fn automatic_dead_letter_cycles_are_detected_but_not_through_a_rejection() {
    let m = published("", "q", None, None);
    let expired = dead_letter_message(&m, DeathReason::Expired, "q", &to("", None), 1);
    assert!(is_death_cycle(&expired, "q"));
    assert!(!is_death_cycle(&expired, "other"));
    let rejected_then_expired = dead_letter_message(
        &dead_letter_message(&m, DeathReason::Rejected, "q", &to("", None), 1),
        DeathReason::Expired,
        "r",
        &to("", None),
        2,
    );
    assert!(
        !is_death_cycle(&rejected_then_expired, "q"),
        "a rejection in the cycle breaks it"
    );
    assert!(is_death_cycle(&rejected_then_expired, "r"));
}

#[test]
fn delivery_count_header_is_added_with_headers_sorted() {
    let mut headers = FieldTable::new();
    headers.insert("z", FieldValue::I32(1));
    headers.insert("a", FieldValue::I32(2));
    let m = with_delivery_count(&published("", "q", Some(headers), None), 2);
    let h = m.properties.headers.as_ref().unwrap();
    assert_eq!(keys(h), vec!["a", "x-delivery-count", "z"]);
    assert_eq!(h.get("x-delivery-count"), Some(&FieldValue::I64(2)));
}

#[test]
fn nack_without_requeue_dead_letters_with_reason_rejected() {
    let mut q: QueueState = QueueState::new();
    q.publish(msg(7), 0);
    let (d, _) = q.get(CH1, false).unwrap();
    q.discard(&[d.seq]);
    let dead = q.take_dead();
    assert_eq!(dead_bodies(&dead), vec![(7, DeathReason::Rejected)]);
    assert_eq!(dead[0].seq, Some(d.seq));
    assert_eq!(q.unacked_count(), 0);
}

fn quorum(limit: Option<i64>) -> QueueState {
    queue_with(QueueArgs {
        queue_type: QueueType::Quorum,
        delivery_limit: limit,
        ..QueueArgs::default()
    })
}

fn delivery_count(d: &Delivery) -> Option<i64> {
    d.message
        .properties
        .headers
        .as_ref()
        .and_then(|h| h.get("x-delivery-count"))
        .and_then(FieldValue::as_i64)
}

#[test]
fn quorum_redeliveries_carry_x_delivery_count_and_get_always_does() {
    let mut q = quorum(None);
    q.publish(msg(0), 0);
    q.add_consumer(consumer(1, CH1, 0, false), "q").unwrap();
    let first = drain(&mut q);
    assert_eq!(
        delivery_count(&first[0].1),
        None,
        "a first delivery to a consumer is untouched"
    );
    q.requeue(&[first[0].1.seq]);
    let second = drain(&mut q);
    assert_eq!(delivery_count(&second[0].1), Some(1));
    q.cancel_consumer(ConsumerId(1));
    q.publish(msg(1), 0);
    q.requeue(&[second[0].1.seq]);
    let (got, _) = q.get(CH1, true).unwrap();
    assert_eq!((body_of(&got), delivery_count(&got)), (0, Some(2)));
    let (fresh, _) = q.get(CH1, true).unwrap();
    assert_eq!(
        delivery_count(&fresh),
        Some(0),
        "basic.get on a quorum queue always says"
    );
}

#[test]
fn a_message_returned_more_often_than_the_delivery_limit_dies_with_reason_delivery_limit() {
    // RabbitMQ 3.10: limit 2 means three deliveries (counts 0, 1, 2), then dead-lettering.
    let mut q = quorum(Some(2));
    q.publish(msg(0), 0);
    for expected in 0..3 {
        let (d, _) = q.get(CH1, false).unwrap();
        assert_eq!(delivery_count(&d), Some(expected));
        q.requeue(&[d.seq]);
    }
    assert_eq!(q.message_count(), 0);
    assert_eq!(
        dead_bodies(&q.take_dead()),
        vec![(0, DeathReason::DeliveryLimit)]
    );
}

#[test]
fn classic_queues_count_returns_without_a_header() {
    let mut q: QueueState = QueueState::new();
    q.publish(msg(0), 0);
    let (d, _) = q.get(CH1, false).unwrap();
    q.requeue(&[d.seq]);
    let (d, _) = q.get(CH1, false).unwrap();
    assert_eq!(delivery_count(&d), None);
    assert!(d.redelivered);
}
