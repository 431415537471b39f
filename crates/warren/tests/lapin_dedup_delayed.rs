//! Deduplication (`x-message-deduplication` queues and exchanges) and delayed messages
//! (`x-delayed-message` exchanges) through lapin. These are plugin features the reference
//! RabbitMQ lacks, so the tests are skipped when `WARREN_TEST_URL` names another broker; the
//! pika suite (`tests/python/test_dedup.py`, `test_delayed.py`) covers every case.

mod common;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::time::Duration;

use common::{confirm_mode, drain, open, publish_confirmed, run, unique, DELIVERY_TIMEOUT};

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn with_headers(pairs: &[(&str, AMQPValue)]) -> BasicProperties {
    BasicProperties::default().with_headers(table(pairs))
}

/// Plugin behaviour: skipped against a broker other than a Warren the harness started.
fn warren_only() -> bool {
    std::env::var("WARREN_TEST_URL").map_or(true, |u| u.is_empty())
}

async fn exchange(channel: &Channel, prefix: &str, kind: &str, arguments: FieldTable) -> String {
    let name = unique(prefix);
    channel
        .exchange_declare(
            name.as_str().into(),
            ExchangeKind::Custom(kind.to_string()),
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .expect("exchange.declare");
    name
}

async fn queue(channel: &Channel, prefix: &str, arguments: FieldTable) -> String {
    let name = unique(prefix);
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::exclusive(),
            arguments,
        )
        .await
        .expect("queue.declare");
    name
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, routing_key: &str) {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.bind");
}

#[test]
fn a_deduplicating_queue_drops_a_repeated_key_and_still_acks_its_publisher() {
    if !warren_only() {
        return;
    }
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let q = queue(
            &channel,
            "dedup",
            table(&[("x-message-deduplication", AMQPValue::Boolean(true))]),
        )
        .await;
        confirm_mode(&channel).await;
        for body in [&b"first"[..], b"repeat", b"repeat again"] {
            let props = with_headers(&[("x-deduplication-header", text("order-7"))]);
            // Asserts a basic.ack.
            publish_confirmed(&channel, "", &q, body, props).await;
        }
        publish_confirmed(&channel, "", &q, b"no key", BasicProperties::default()).await;
        assert_eq!(drain(&channel, &q).await, ["first", "no key"]);
        let props = with_headers(&[("x-deduplication-header", text("order-7"))]);
        publish_confirmed(&channel, "", &q, b"after it left", props).await;
        assert_eq!(drain(&channel, &q).await, ["after it left"]);
    });
}

#[test]
fn a_deduplication_exchange_routes_each_key_once_to_every_binding() {
    if !warren_only() {
        return;
    }
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let x = exchange(
            &channel,
            "dedup-x",
            "x-message-deduplication",
            table(&[("x-cache-size", AMQPValue::LongInt(100))]),
        )
        .await;
        let a = queue(&channel, "a", FieldTable::default()).await;
        let b = queue(&channel, "b", FieldTable::default()).await;
        bind(&channel, &a, &x, "a").await;
        bind(&channel, &b, &x, "b").await;
        confirm_mode(&channel).await;
        for body in [&b"first"[..], b"repeat"] {
            let props = with_headers(&[("x-deduplication-header", AMQPValue::LongInt(42))]);
            publish_confirmed(&channel, &x, "unrelated", body, props).await;
        }
        assert_eq!(drain(&channel, &a).await, ["first"]);
        assert_eq!(drain(&channel, &b).await, ["first"]);
    });
}

#[test]
fn a_delayed_message_arrives_after_its_delay_with_x_delay_negated() {
    if !warren_only() {
        return;
    }
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let x = exchange(
            &channel,
            "delayed",
            "x-delayed-message",
            table(&[("x-delayed-type", text("topic"))]),
        )
        .await;
        let q = queue(&channel, "delayed-q", FieldTable::default()).await;
        bind(&channel, &q, &x, "orders.#").await;
        confirm_mode(&channel).await;
        let props = with_headers(&[("x-delay", AMQPValue::LongInt(300))]);
        publish_confirmed(&channel, &x, "orders.created", b"later", props).await;
        assert!(drain(&channel, &q).await.is_empty(), "held, not routed yet");
        let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
        let got = loop {
            if let Some(m) = channel
                .basic_get(
                    q.as_str().into(),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await
                .expect("basic.get")
            {
                break m;
            }
            assert!(tokio::time::Instant::now() < deadline, "never delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(got.delivery.data, b"later");
        let headers = got.delivery.properties.headers().clone().expect("headers");
        assert_eq!(
            headers.inner().get("x-delay"),
            Some(&AMQPValue::LongInt(-300))
        );
    });
}
