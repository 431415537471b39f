//! Soft errors: what closes a channel, with which reply code and text, and that the connection
//! and its other channels carry on.

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

use crate::common::{
    amqp_error, confirm_mode, declare_queue, drain, next_delivery, open, publish_confirmed,
    ready_count, run, unique, vhost, DELIVERY_TIMEOUT,
};

#[test]
fn passive_declare_of_a_missing_queue_fails_with_404_and_closes_only_that_channel() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let bystander = conn.create_channel().await.unwrap();
        let queue = unique("missing");
        let error = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect_err("the queue does not exist");
        assert_eq!(
            amqp_error(&error),
            (
                404,
                format!("NOT_FOUND - no queue '{queue}' in vhost '{}'", vhost(&url))
            )
        );
        assert!(!channel.status().connected(), "the channel is closed");
        assert!(
            channel
                .queue_declare(
                    "".into(),
                    QueueDeclareOptions::default(),
                    FieldTable::default()
                )
                .await
                .is_err(),
            "a closed channel refuses further work"
        );

        assert!(
            conn.status().connected(),
            "the connection survives a channel error"
        );
        let own = declare_queue(&bystander, "bystander").await;
        assert!(
            drain(&bystander, &own).await.is_empty(),
            "other channels keep working"
        );
        let reopened = conn
            .create_channel()
            .await
            .expect("new channels can be opened");
        declare_queue(&reopened, "reopened").await;
    });
}

#[test]
fn passive_declare_of_a_missing_exchange_fails_with_404() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let exchange = unique("missing-ex");
        let error = channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect_err("the exchange does not exist");
        assert_eq!(
            amqp_error(&error),
            (
                404,
                format!(
                    "NOT_FOUND - no exchange '{exchange}' in vhost '{}'",
                    vhost(&url)
                )
            )
        );
    });
}

#[test]
fn exchange_redeclared_with_another_type_fails_with_406() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let exchange = unique("typed");
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let other = conn.create_channel().await.unwrap();
        let error = other
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Fanout,
                Default::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("the type differs");
        assert_eq!(
            amqp_error(&error),
            (
                406,
                format!(
                    "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{exchange}' in vhost \
                     '{}': received 'fanout' but current is 'direct'",
                    vhost(&url)
                )
            )
        );
        channel
            .exchange_delete(exchange.as_str().into(), Default::default())
            .await
            .unwrap();
    });
}

#[test]
fn declaring_an_exchange_with_the_reserved_amq_prefix_is_refused_with_403() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let exchange = unique("amq.mine");
        let error = channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Direct,
                Default::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("amq.* names are reserved");
        assert_eq!(
            amqp_error(&error),
            (
                403,
                format!(
                    "ACCESS_REFUSED - exchange name '{exchange}' contains reserved prefix 'amq.*'"
                )
            )
        );
    });
}

#[test]
fn second_consumer_on_an_exclusively_consumed_queue_is_refused_with_403() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = declare_queue(&channel, "exclusive-consumer").await;
        let _owner = channel
            .basic_consume(
                queue.as_str().into(),
                "owner".into(),
                BasicConsumeOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("exclusive basic.consume");
        let other = conn.create_channel().await.unwrap();
        let error = other
            .basic_consume(
                queue.as_str().into(),
                "intruder".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("the queue is consumed exclusively");
        assert_eq!(
            amqp_error(&error),
            (
                403,
                format!(
                    "ACCESS_REFUSED - queue '{queue}' in vhost '{}' in exclusive use",
                    vhost(&url)
                )
            )
        );
    });
}

#[test]
fn ack_of_an_unknown_delivery_tag_closes_the_channel_with_406_and_requeues_its_deliveries() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let queue = declare_queue(&channel, "unknown-tag").await;
        publish_confirmed(&channel, "", &queue, b"held", BasicProperties::default()).await;
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let held = next_delivery(&mut consumer).await;
        assert_eq!(held.delivery_tag, 1);

        channel
            .basic_ack(99, BasicAckOptions::default())
            .await
            .expect("basic.ack has no reply, so sending it succeeds");
        // basic.ack has no reply, so the broker's channel.close reaches the application as an
        // error on the channel's consumers.
        let error = match tokio::time::timeout(DELIVERY_TIMEOUT, consumer.next()).await {
            Ok(Some(Err(error))) => error,
            other => panic!("expected the consumer to see the channel error, got {other:?}"),
        };
        assert_eq!(
            amqp_error(&error),
            (
                406,
                "PRECONDITION_FAILED - unknown delivery tag 99".to_string()
            )
        );
        assert_eq!(
            ready_count(&conn, &queue).await,
            1,
            "the held delivery went back to the queue"
        );
    });
}
