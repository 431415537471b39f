//! Queue arguments through lapin: dead-lettering with `x-death`, TTL, reject-publish nacks,
//! priorities and argument validation. Pinned against RabbitMQ 3.10 first (run with
//! `WARREN_TEST_URL`), like the rest of the lapin suite.

mod common;

use lapin::options::{
    BasicGetOptions, BasicNackOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::time::Duration;

use common::{
    amqp_error, confirm_mode, open, publish_confirmed, run, unique, vhost, DELIVERY_TIMEOUT,
};

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// An exclusive queue with these arguments.
async fn queue_with(channel: &Channel, prefix: &str, arguments: FieldTable) -> String {
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

/// A fanout dead-letter exchange and the queue bound to it.
async fn dead_letter_target(channel: &Channel) -> (String, String) {
    let exchange = unique("dlx");
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exchange.declare");
    let queue = queue_with(channel, "dlq", FieldTable::default()).await;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue.bind");
    (exchange, queue)
}

/// Polls `basic.get` (auto-ack) until a message comes.
async fn get_eventually(channel: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    loop {
        if let Some(m) = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing arrived in {queue}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn death(message: &lapin::message::BasicGetMessage) -> FieldTable {
    let headers = message
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    let deaths = headers
        .inner()
        .get("x-death")
        .and_then(AMQPValue::as_array)
        .expect("x-death array")
        .clone();
    assert_eq!(deaths.as_slice().len(), 1);
    deaths.as_slice()[0]
        .as_field_table()
        .expect("x-death entry")
        .clone()
}

#[test]
fn nacked_message_is_dead_lettered_with_an_x_death_entry() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let (dlx, dlq) = dead_letter_target(&channel).await;
        let queue = queue_with(
            &channel,
            "src",
            args(&[("x-dead-letter-exchange", text(&dlx))]),
        )
        .await;
        confirm_mode(&channel).await;
        let props = BasicProperties::default().with_expiration("60000".into());
        publish_confirmed(&channel, "", &queue, b"body", props).await;
        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("message");
        channel
            .basic_nack(
                got.delivery.delivery_tag,
                BasicNackOptions {
                    requeue: false,
                    multiple: false,
                },
            )
            .await
            .unwrap();

        let dead = get_eventually(&channel, &dlq).await;
        assert_eq!(dead.delivery.exchange.as_str(), dlx);
        assert_eq!(dead.delivery.routing_key.as_str(), queue);
        assert_eq!(dead.delivery.properties.expiration(), &None);
        let entry = death(&dead);
        let get = |k: &str| {
            entry
                .inner()
                .get(k)
                .cloned()
                .unwrap_or_else(|| panic!("no {k}"))
        };
        assert_eq!(get("count"), AMQPValue::LongLongInt(1));
        assert_eq!(get("reason"), text("rejected"));
        assert_eq!(get("queue"), text(&queue));
        assert_eq!(get("exchange"), text(""));
        assert_eq!(get("original-expiration"), text("60000"));
        assert!(matches!(get("time"), AMQPValue::Timestamp(t) if t > 1_600_000_000));
        let headers = dead.delivery.properties.headers().clone().unwrap();
        assert_eq!(
            headers.inner().get("x-first-death-reason"),
            Some(&text("rejected"))
        );
    });
}

#[test]
fn expired_message_is_dead_lettered_without_a_consumer() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let (dlx, dlq) = dead_letter_target(&channel).await;
        let queue = queue_with(
            &channel,
            "ttl",
            args(&[
                ("x-dead-letter-exchange", text(&dlx)),
                ("x-message-ttl", AMQPValue::LongInt(100)),
            ]),
        )
        .await;
        confirm_mode(&channel).await;
        publish_confirmed(&channel, "", &queue, b"late", BasicProperties::default()).await;
        let dead = get_eventually(&channel, &dlq).await;
        assert_eq!(dead.delivery.data, b"late");
        assert_eq!(death(&dead).inner().get("reason"), Some(&text("expired")));
    });
}

#[test]
fn reject_publish_queue_nacks_the_publisher() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let queue = queue_with(
            &channel,
            "full",
            args(&[
                ("x-max-length", AMQPValue::LongInt(1)),
                ("x-overflow", text("reject-publish")),
            ]),
        )
        .await;
        confirm_mode(&channel).await;
        publish_confirmed(&channel, "", &queue, b"fits", BasicProperties::default()).await;
        let confirmation = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                Default::default(),
                b"refused",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirmation.is_nack(), "the second message is refused");
    });
}

#[test]
fn priority_queue_delivers_higher_priorities_first() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let queue = queue_with(
            &channel,
            "prio",
            args(&[("x-max-priority", AMQPValue::ShortShortUInt(10))]),
        )
        .await;
        confirm_mode(&channel).await;
        for (body, priority) in [("low", 1), ("high", 9), ("mid", 5), ("high2", 9)] {
            publish_confirmed(
                &channel,
                "",
                &queue,
                body.as_bytes(),
                BasicProperties::default().with_priority(priority),
            )
            .await;
        }
        assert_eq!(
            common::drain(&channel, &queue).await,
            vec!["high", "high2", "mid", "low"]
        );
    });
}

#[test]
fn negative_max_length_is_refused_with_rabbitmqs_text() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let name = unique("bad");
        let error = channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::exclusive(),
                args(&[("x-max-length", AMQPValue::LongInt(-1))]),
            )
            .await
            .expect_err("refused");
        assert_eq!(
            amqp_error(&error),
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue '{name}' in vhost '{}': {{value_negative,-1}}",
                    vhost(&url)
                )
            )
        );
    });
}
