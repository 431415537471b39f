//! Publishing: publisher confirms, mandatory returns, transactions, large bodies.

use lapin::message::{BasicReturnMessage, Delivery};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation};

use crate::common::{
    amqp_error, confirm_mode, declare_queue, drain, next_delivery, open, publish_confirmed,
    ready_count, run, unique, vhost,
};

#[test]
fn publisher_confirms_ack_every_routed_and_unrouted_publish() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        assert!(channel.status().confirm());
        let queue = declare_queue(&channel, "confirms").await;
        let mut pending = Vec::new();
        for n in 0..20 {
            let key = if n % 2 == 0 {
                queue.as_str()
            } else {
                "nowhere"
            };
            let confirm = channel
                .basic_publish(
                    "".into(),
                    key.into(),
                    BasicPublishOptions::default(),
                    format!("{n}").as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish");
            pending.push(confirm);
        }
        for confirm in pending {
            assert_eq!(confirm.await.expect("confirm"), Confirmation::Ack(None));
        }
        assert!(channel
            .wait_for_confirms()
            .await
            .expect("wait_for_confirms")
            .is_empty());
        assert_eq!(drain(&channel, &queue).await.len(), 10);
    });
}

#[test]
fn mandatory_unroutable_publish_is_returned_with_312_no_route_before_its_ack() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let key = unique("unroutable");
        let properties = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_priority(3);
        let confirmation = channel
            .basic_publish(
                "amq.direct".into(),
                key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                b"nobody wants me",
                properties.clone(),
            )
            .await
            .expect("basic.publish")
            .await
            .expect("confirm");
        assert!(
            confirmation.is_ack(),
            "an unroutable message is still acked"
        );
        let returned = confirmation
            .take_message()
            .expect("the message is returned");
        let acker = returned.delivery.acker.clone();
        assert_eq!(
            returned,
            BasicReturnMessage {
                delivery: Delivery {
                    delivery_tag: 0,
                    exchange: "amq.direct".into(),
                    routing_key: key.as_str().into(),
                    redelivered: false,
                    properties,
                    data: b"nobody wants me".to_vec(),
                    acker,
                },
                reply_code: 312,
                reply_text: "NO_ROUTE".into(),
            }
        );
        assert_eq!(
            returned.error().expect("a return carries an error").kind(),
            &AMQPErrorKind::Soft(AMQPSoftError::NOROUTE)
        );

        let queue = declare_queue(&channel, "routable").await;
        let confirmation = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                b"routable",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(
            confirmation,
            Confirmation::Ack(None),
            "a routed mandatory publish is not returned"
        );
    });
}

#[test]
fn publish_to_a_missing_exchange_closes_the_channel_with_404() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let exchange = unique("missing-exchange");
        let outcome = channel
            .basic_publish(
                exchange.as_str().into(),
                "k".into(),
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default(),
            )
            .await;
        let error = match outcome {
            Ok(confirm) => confirm.await.expect_err("the publish cannot be confirmed"),
            Err(error) => error,
        };
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
        assert!(!channel.status().connected());
        assert!(
            conn.status().connected(),
            "a channel error leaves the connection open"
        );
    });
}

#[test]
fn transaction_commit_publishes_and_acks_while_rollback_discards_them() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = declare_queue(&channel, "tx").await;
        channel.tx_select().await.expect("tx.select");

        for body in ["t1", "t2"] {
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .unwrap();
        }
        assert_eq!(
            ready_count(&conn, &queue).await,
            0,
            "nothing is visible before commit"
        );
        channel.tx_commit().await.expect("tx.commit");
        assert_eq!(ready_count(&conn, &queue).await, 2);

        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                b"rolled back",
                BasicProperties::default(),
            )
            .await
            .unwrap();
        channel.tx_rollback().await.expect("tx.rollback");
        channel.tx_commit().await.expect("an empty commit");
        assert_eq!(
            ready_count(&conn, &queue).await,
            2,
            "the rolled-back publish never arrives"
        );

        // Acks are transactional too: a rolled-back ack leaves the message unacked.
        let first = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("t1");
        assert_eq!(first.delivery.data, b"t1");
        first
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        channel.tx_rollback().await.expect("tx.rollback");
        let second = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .expect("t2");
        second
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        channel.tx_commit().await.expect("tx.commit");
        channel.close(200, "OK".into()).await.unwrap();
        // t2's ack was committed; t1's was rolled back, so closing the channel requeued it.
        let checker = conn.create_channel().await.unwrap();
        let bodies = drain(&checker, &queue).await;
        assert_eq!(bodies, ["t1"]);
    });
}

#[test]
fn one_mebibyte_body_round_trips_intact() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let queue = declare_queue(&channel, "large").await;
        let body: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        publish_confirmed(&channel, "", &queue, &body, BasicProperties::default()).await;
        publish_confirmed(
            &channel,
            "",
            &queue,
            b"small after large",
            BasicProperties::default(),
        )
        .await;

        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let large = next_delivery(&mut consumer).await;
        assert_eq!(large.data.len(), body.len());
        assert!(large.data == body, "the body came back altered");
        let small = next_delivery(&mut consumer).await;
        assert_eq!(small.data, b"small after large");
    });
}
