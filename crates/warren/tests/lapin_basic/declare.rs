//! Declaring, inspecting and deleting exchanges and queues, and the queue flags
//! (server-named, durable, exclusive, auto-delete).

use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

use crate::common::{
    amqp_error, confirm_mode, open, publish_confirmed, ready_count, run, unique, vhost,
};

#[test]
fn exchange_of_every_builtin_type_can_be_declared_redeclared_checked_and_deleted() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        for (label, kind) in [
            ("direct", ExchangeKind::Direct),
            ("fanout", ExchangeKind::Fanout),
            ("topic", ExchangeKind::Topic),
            ("headers", ExchangeKind::Headers),
        ] {
            let name = unique(&format!("ex-{label}"));
            for _ in 0..2 {
                channel
                    .exchange_declare(
                        name.as_str().into(),
                        kind.clone(),
                        ExchangeDeclareOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .expect("declaring (and re-declaring identically) succeeds");
            }
            channel
                .exchange_declare(
                    name.as_str().into(),
                    kind.clone(),
                    ExchangeDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("passive declare finds the exchange");
            channel
                .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .expect("exchange.delete");
        }
    });
}

#[test]
fn predeclared_exchanges_exist_in_every_vhost() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        for (name, kind) in [
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            channel
                .exchange_declare(
                    name.into(),
                    kind,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap_or_else(|e| panic!("{name} is missing: {e}"));
        }
    });
}

#[test]
fn queue_declared_with_empty_name_gets_a_server_generated_amq_gen_name() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        let first = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("queue.declare");
        let second = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("queue.declare");
        assert!(
            first.name().as_str().starts_with("amq.gen-"),
            "name: {}",
            first.name()
        );
        assert_ne!(first.name(), second.name());
        assert_eq!((first.message_count(), first.consumer_count()), (0, 0));
    });
}

#[test]
fn durable_queue_redeclared_as_transient_fails_with_inequivalent_arg_406() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = unique("durable");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .expect("durable queue.declare");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .expect("an identical re-declare is fine");

        let other = conn.create_channel().await.unwrap();
        let error = other
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect_err("re-declaring as transient must fail");
        let vhost = vhost(&url);
        assert_eq!(
            amqp_error(&error),
            (
                406,
                format!(
                    "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{queue}' in vhost \
                     '{vhost}': received 'false' but current is 'true'"
                )
            )
        );
        assert!(!other.status().connected(), "the failing channel is closed");

        let deleted = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("the first channel is unaffected");
        assert_eq!(deleted, 0);
    });
}

#[test]
fn exclusive_queue_is_locked_to_its_connection_and_deleted_when_it_closes() {
    run(|url| async move {
        let (owner, owner_channel) = open(&url).await;
        let queue = owner_channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await
            .expect("exclusive queue.declare");
        let queue = queue.name().to_string();

        let (_other, other_channel) = open(&url).await;
        let error = other_channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect_err("another connection may not use an exclusive queue");
        let (code, text) = amqp_error(&error);
        assert_eq!(code, 405, "{text}");
        assert!(
            text.starts_with(&format!(
                "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' in vhost '{}'",
                vhost(&url)
            )),
            "{text}"
        );

        owner
            .close(200, "OK".into())
            .await
            .expect("connection.close");
        let (_checker, checker_channel) = open(&url).await;
        let error = checker_channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect_err("the exclusive queue is gone with its connection");
        assert_eq!(amqp_error(&error).0, 404);
    });
}

#[test]
fn auto_delete_queue_is_deleted_when_its_last_consumer_cancels() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = unique("auto-delete");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default().auto_delete(),
                FieldTable::default(),
            )
            .await
            .expect("auto-delete queue.declare");
        assert_eq!(
            ready_count(&conn, &queue).await,
            0,
            "it exists before any consumer"
        );
        // Kept alive: lapin cancels a consumer when its handle is dropped.
        let mut consumers = Vec::new();
        for tag in ["first", "second"] {
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    tag.into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("basic.consume");
            consumers.push(consumer);
        }
        channel
            .basic_cancel("first".into(), BasicCancelOptions::default())
            .await
            .unwrap();
        assert_eq!(ready_count(&conn, &queue).await, 0, "one consumer remains");
        channel
            .basic_cancel("second".into(), BasicCancelOptions::default())
            .await
            .unwrap();

        drop(consumers);
        let checker = conn.create_channel().await.unwrap();
        let error = checker
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect_err("the queue went away with its last consumer");
        assert_eq!(amqp_error(&error).0, 404);
    });
}

#[test]
fn purge_and_delete_report_how_many_messages_they_removed() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let queue = unique("counts");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        for body in ["a", "b", "c"] {
            publish_confirmed(
                &channel,
                "",
                &queue,
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await;
        }
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            (declared.message_count(), declared.consumer_count()),
            (3, 0)
        );

        let purged = channel
            .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
            .await
            .expect("queue.purge");
        assert_eq!(purged, 3);
        assert_eq!(ready_count(&conn, &queue).await, 0);

        for body in ["d", "e"] {
            publish_confirmed(
                &channel,
                "",
                &queue,
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await;
        }
        let deleted = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("queue.delete");
        assert_eq!(deleted, 2);
    });
}

#[test]
fn queue_delete_if_empty_refuses_a_queue_with_messages() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let queue = unique("if-empty");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        publish_confirmed(&channel, "", &queue, b"x", BasicProperties::default()).await;
        let error = channel
            .queue_delete(
                queue.as_str().into(),
                QueueDeleteOptions {
                    if_empty: true,
                    ..Default::default()
                },
            )
            .await
            .expect_err("the queue is not empty");
        assert_eq!(
            amqp_error(&error),
            (
                406,
                format!(
                    "PRECONDITION_FAILED - queue '{queue}' in vhost '{}' not empty",
                    vhost(&url)
                )
            )
        );
        let other = conn.create_channel().await.unwrap();
        assert_eq!(
            other
                .queue_delete(queue.as_str().into(), Default::default())
                .await
                .unwrap(),
            1
        );
    });
}
