//! Routing: bindings and unbindings on direct, fanout, topic and headers exchanges, the default
//! exchange, and exchange-to-exchange bindings. Every publish is confirmed before the queues are
//! read, so "not routed" is observed as an empty queue rather than guessed from a timeout.

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeUnbindOptions, QueueBindOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

use crate::common::{confirm_mode, declare_queue, drain, open, publish_confirmed, run, unique};

async fn declare_exchange(channel: &Channel, prefix: &str, kind: ExchangeKind) -> String {
    let name = unique(prefix);
    channel
        .exchange_declare(
            name.as_str().into(),
            kind,
            ExchangeDeclareOptions {
                auto_delete: false,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exchange.declare");
    name
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            args,
        )
        .await
        .expect("queue.bind");
}

fn headers(pairs: &[(&str, &str)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert((*key).into(), AMQPValue::LongString((*value).into()));
    }
    table
}

#[test]
fn default_exchange_routes_to_the_queue_named_by_the_routing_key() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let queue = declare_queue(&channel, "default-ex").await;
        publish_confirmed(
            &channel,
            "",
            &queue,
            b"direct to queue",
            BasicProperties::default(),
        )
        .await;
        publish_confirmed(
            &channel,
            "",
            "no-such-queue-here",
            b"lost",
            BasicProperties::default(),
        )
        .await;
        assert_eq!(drain(&channel, &queue).await, ["direct to queue"]);
    });
}

#[test]
fn direct_binding_routes_until_unbound() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let exchange = declare_exchange(&channel, "direct", ExchangeKind::Direct).await;
        let queue = declare_queue(&channel, "direct-q").await;
        bind(&channel, &queue, &exchange, "orders", FieldTable::default()).await;

        publish_confirmed(
            &channel,
            &exchange,
            "orders",
            b"bound",
            BasicProperties::default(),
        )
        .await;
        publish_confirmed(
            &channel,
            &exchange,
            "other",
            b"other key",
            BasicProperties::default(),
        )
        .await;
        assert_eq!(drain(&channel, &queue).await, ["bound"]);

        channel
            .queue_unbind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "orders".into(),
                FieldTable::default(),
            )
            .await
            .expect("queue.unbind");
        publish_confirmed(
            &channel,
            &exchange,
            "orders",
            b"after unbind",
            BasicProperties::default(),
        )
        .await;
        assert!(drain(&channel, &queue).await.is_empty());
    });
}

#[test]
fn fanout_copies_each_message_to_every_bound_queue_whatever_the_key() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let exchange = declare_exchange(&channel, "fanout", ExchangeKind::Fanout).await;
        let first = declare_queue(&channel, "fanout-a").await;
        let second = declare_queue(&channel, "fanout-b").await;
        bind(&channel, &first, &exchange, "", FieldTable::default()).await;
        bind(
            &channel,
            &second,
            &exchange,
            "ignored",
            FieldTable::default(),
        )
        .await;
        publish_confirmed(
            &channel,
            &exchange,
            "any.key",
            b"one",
            BasicProperties::default(),
        )
        .await;
        publish_confirmed(&channel, &exchange, "", b"two", BasicProperties::default()).await;
        assert_eq!(drain(&channel, &first).await, ["one", "two"]);
        assert_eq!(drain(&channel, &second).await, ["one", "two"]);
    });
}

#[test]
fn topic_star_matches_one_word_and_hash_matches_zero_or_more() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let exchange = declare_exchange(&channel, "topic", ExchangeKind::Topic).await;
        let orange = declare_queue(&channel, "orange").await;
        let lazy = declare_queue(&channel, "lazy").await;
        let everything = declare_queue(&channel, "everything").await;
        bind(
            &channel,
            &orange,
            &exchange,
            "*.orange.*",
            FieldTable::default(),
        )
        .await;
        bind(
            &channel,
            &lazy,
            &exchange,
            "*.*.rabbit",
            FieldTable::default(),
        )
        .await;
        bind(&channel, &lazy, &exchange, "lazy.#", FieldTable::default()).await;
        bind(&channel, &everything, &exchange, "#", FieldTable::default()).await;

        let keys = [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox",
            "lazy.brown.fox",
            "lazy.pink.rabbit",
            "quick.brown.fox",
            "orange",
            "quick.orange.male.rabbit",
            "lazy.orange.male.rabbit",
            "lazy",
            "",
        ];
        for key in keys {
            publish_confirmed(
                &channel,
                &exchange,
                key,
                key.as_bytes(),
                BasicProperties::default(),
            )
            .await;
        }
        assert_eq!(
            drain(&channel, &orange).await,
            [
                "quick.orange.rabbit",
                "lazy.orange.elephant",
                "quick.orange.fox"
            ]
        );
        assert_eq!(
            drain(&channel, &lazy).await,
            [
                "quick.orange.rabbit",
                "lazy.orange.elephant",
                "lazy.brown.fox",
                // matched by both bindings, delivered once
                "lazy.pink.rabbit",
                "lazy.orange.male.rabbit",
                // `#` also matches zero words
                "lazy",
            ]
        );
        assert_eq!(drain(&channel, &everything).await, keys);
    });
}

#[test]
fn headers_exchange_matches_all_or_any_of_the_binding_headers() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let exchange = declare_exchange(&channel, "headers", ExchangeKind::Headers).await;
        let all = declare_queue(&channel, "match-all").await;
        let any = declare_queue(&channel, "match-any").await;
        let default_all = declare_queue(&channel, "match-default").await;
        bind(
            &channel,
            &all,
            &exchange,
            "",
            headers(&[("x-match", "all"), ("format", "pdf"), ("type", "report")]),
        )
        .await;
        bind(
            &channel,
            &any,
            &exchange,
            "",
            headers(&[("x-match", "any"), ("format", "pdf"), ("type", "log")]),
        )
        .await;
        // Without x-match, "all" applies; arguments starting with "x-" take no part in matching.
        bind(
            &channel,
            &default_all,
            &exchange,
            "",
            headers(&[("format", "pdf"), ("x-note", "ignored")]),
        )
        .await;

        let messages: [(&str, &[(&str, &str)]); 6] = [
            ("pdf report", &[("format", "pdf"), ("type", "report")]),
            ("pdf log", &[("format", "pdf"), ("type", "log")]),
            ("zip log", &[("format", "zip"), ("type", "log")]),
            ("zip report", &[("format", "zip"), ("type", "report")]),
            ("pdf only", &[("format", "pdf")]),
            ("no headers", &[]),
        ];
        for (body, pairs) in messages {
            let properties = if pairs.is_empty() {
                BasicProperties::default()
            } else {
                BasicProperties::default().with_headers(headers(pairs))
            };
            // The routing key plays no part in a headers exchange.
            publish_confirmed(&channel, &exchange, "some.key", body.as_bytes(), properties).await;
        }
        assert_eq!(drain(&channel, &all).await, ["pdf report"]);
        assert_eq!(
            drain(&channel, &any).await,
            ["pdf report", "pdf log", "zip log", "pdf only"]
        );
        assert_eq!(
            drain(&channel, &default_all).await,
            ["pdf report", "pdf log", "pdf only"]
        );
    });
}

#[test]
fn exchange_to_exchange_binding_forwards_matching_messages_until_unbound() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let source = declare_exchange(&channel, "e2e-src", ExchangeKind::Topic).await;
        let destination = declare_exchange(&channel, "e2e-dst", ExchangeKind::Fanout).await;
        let queue = declare_queue(&channel, "e2e-q").await;
        bind(&channel, &queue, &destination, "", FieldTable::default()).await;
        channel
            .exchange_bind(
                destination.as_str().into(),
                source.as_str().into(),
                "audit.#".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("exchange.bind");

        publish_confirmed(
            &channel,
            &source,
            "audit.login",
            b"forwarded",
            BasicProperties::default(),
        )
        .await;
        publish_confirmed(
            &channel,
            &source,
            "metrics.cpu",
            b"not forwarded",
            BasicProperties::default(),
        )
        .await;
        publish_confirmed(
            &channel,
            &destination,
            "x",
            b"straight in",
            BasicProperties::default(),
        )
        .await;
        assert_eq!(drain(&channel, &queue).await, ["forwarded", "straight in"]);

        channel
            .exchange_unbind(
                destination.as_str().into(),
                source.as_str().into(),
                "audit.#".into(),
                ExchangeUnbindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("exchange.unbind");
        publish_confirmed(
            &channel,
            &source,
            "audit.logout",
            b"after unbind",
            BasicProperties::default(),
        )
        .await;
        assert!(drain(&channel, &queue).await.is_empty());
    });
}
