//! Consuming: push consumers with manual acks, ack/nack/reject, prefetch, `basic.get`, requeue of
//! unacked deliveries when a channel closes, and cancellation of a consumer by the server.

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};

use crate::common::{
    assert_no_delivery, confirm_mode, declare_queue, next_delivery, open, publish_confirmed,
    ready_count, run, DELIVERY_TIMEOUT,
};

/// A queue holding `bodies`, published and confirmed on a channel of its own.
async fn queue_with(conn: &Connection, prefix: &str, bodies: &[&str]) -> String {
    let channel = conn.create_channel().await.unwrap();
    confirm_mode(&channel).await;
    let queue = declare_queue(&channel, prefix).await;
    for body in bodies {
        publish_confirmed(
            &channel,
            "",
            &queue,
            body.as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    queue
}

async fn consume(channel: &Channel, queue: &str) -> Consumer {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume")
}

fn body(delivery: &lapin::message::Delivery) -> &str {
    std::str::from_utf8(&delivery.data).expect("utf-8 body")
}

#[test]
fn manual_ack_consumer_receives_in_order_and_acked_messages_are_gone() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = queue_with(&conn, "ack", &["m1", "m2", "m3"]).await;
        let mut consumer = consume(&channel, &queue).await;
        assert!(
            consumer.tag().as_str().starts_with("amq.ctag-"),
            "tag: {}",
            consumer.tag()
        );
        for (expected_tag, expected_body) in [(1, "m1"), (2, "m2"), (3, "m3")] {
            let delivery = next_delivery(&mut consumer).await;
            assert_eq!(
                (delivery.delivery_tag, body(&delivery)),
                (expected_tag, expected_body)
            );
            assert!(!delivery.redelivered);
            assert_eq!(delivery.exchange.as_str(), "");
            assert_eq!(delivery.routing_key.as_str(), queue);
            delivery
                .ack(BasicAckOptions::default())
                .await
                .expect("basic.ack");
        }
        channel.close(200, "OK".into()).await.unwrap();
        assert_eq!(ready_count(&conn, &queue).await, 0, "nothing was requeued");
    });
}

#[test]
fn ack_multiple_acknowledges_every_delivery_up_to_its_tag() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = queue_with(&conn, "ack-multiple", &["m1", "m2", "m3", "m4"]).await;
        let mut consumer = consume(&channel, &queue).await;
        let mut deliveries = Vec::new();
        for _ in 0..4 {
            deliveries.push(next_delivery(&mut consumer).await);
        }
        deliveries[2]
            .ack(BasicAckOptions { multiple: true })
            .await
            .expect("basic.ack multiple");
        channel.close(200, "OK".into()).await.unwrap();

        assert_eq!(
            ready_count(&conn, &queue).await,
            1,
            "only the fourth was left unacked"
        );
        let other = conn.create_channel().await.unwrap();
        let left = other
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        let left = left.expect("the fourth message is back");
        assert_eq!(body(&left.delivery), "m4");
        assert!(left.delivery.redelivered);
    });
}

#[test]
fn nack_with_requeue_redelivers_the_message_flagged_redelivered() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = queue_with(&conn, "nack", &["retry me"]).await;
        let mut consumer = consume(&channel, &queue).await;
        let first = next_delivery(&mut consumer).await;
        assert!(!first.redelivered);
        first
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .expect("basic.nack");
        let second = next_delivery(&mut consumer).await;
        assert_eq!(body(&second), "retry me");
        assert!(
            second.redelivered,
            "a requeued message is flagged redelivered"
        );
        assert_eq!(second.delivery_tag, 2, "each delivery gets a new tag");
        second.ack(BasicAckOptions::default()).await.unwrap();
        channel.close(200, "OK".into()).await.unwrap();
        assert_eq!(ready_count(&conn, &queue).await, 0);
    });
}

#[test]
fn reject_or_nack_without_requeue_discards_the_message() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = queue_with(&conn, "reject", &["rejected", "nacked", "kept"]).await;
        let mut consumer = consume(&channel, &queue).await;
        let rejected = next_delivery(&mut consumer).await;
        rejected
            .reject(BasicRejectOptions { requeue: false })
            .await
            .expect("basic.reject");
        let nacked = next_delivery(&mut consumer).await;
        nacked
            .nack(BasicNackOptions {
                multiple: false,
                requeue: false,
            })
            .await
            .expect("basic.nack");
        let kept = next_delivery(&mut consumer).await;
        assert_eq!(body(&kept), "kept");
        assert_no_delivery(&mut consumer).await;
        channel.close(200, "OK".into()).await.unwrap();
        assert_eq!(
            ready_count(&conn, &queue).await,
            1,
            "only the unacked one comes back"
        );
    });
}

#[test]
fn prefetch_of_two_holds_back_further_deliveries_until_an_ack() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = queue_with(&conn, "prefetch", &["m1", "m2", "m3", "m4", "m5"]).await;
        channel
            .basic_qos(2, BasicQosOptions::default())
            .await
            .expect("basic.qos");
        let mut consumer = consume(&channel, &queue).await;

        let m1 = next_delivery(&mut consumer).await;
        let m2 = next_delivery(&mut consumer).await;
        assert_eq!((body(&m1), body(&m2)), ("m1", "m2"));
        assert_no_delivery(&mut consumer).await;

        m1.ack(BasicAckOptions::default()).await.unwrap();
        let m3 = next_delivery(&mut consumer).await;
        assert_eq!(body(&m3), "m3");
        assert_no_delivery(&mut consumer).await;

        m3.ack(BasicAckOptions { multiple: true }).await.unwrap();
        let m4 = next_delivery(&mut consumer).await;
        let m5 = next_delivery(&mut consumer).await;
        assert_eq!((body(&m4), body(&m5)), ("m4", "m5"));
    });
}

#[test]
fn unacked_deliveries_are_requeued_in_order_and_flagged_redelivered_when_the_channel_closes() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = queue_with(&conn, "requeue", &["m1", "m2", "m3"]).await;
        let mut consumer = consume(&channel, &queue).await;
        for expected in ["m1", "m2", "m3"] {
            assert_eq!(body(&next_delivery(&mut consumer).await), expected);
        }
        channel
            .close(200, "OK".into())
            .await
            .expect("channel.close");

        let other = conn.create_channel().await.unwrap();
        for (expected, left) in [("m1", 2), ("m2", 1), ("m3", 0)] {
            let message = other
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .unwrap()
                .expect("the message is back in the queue");
            assert_eq!(body(&message.delivery), expected);
            assert!(message.delivery.redelivered);
            assert_eq!(message.message_count, left, "messages left after this one");
            message
                .delivery
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
        }
        assert!(other
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .is_none());
    });
}

#[test]
fn no_ack_consumer_messages_are_gone_once_delivered() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = queue_with(&conn, "no-ack", &["m1", "m2"]).await;
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "auto-acking".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        assert_eq!(consumer.tag().as_str(), "auto-acking");
        assert_eq!(body(&next_delivery(&mut consumer).await), "m1");
        assert_eq!(body(&next_delivery(&mut consumer).await), "m2");
        channel.close(200, "OK".into()).await.unwrap();
        assert_eq!(ready_count(&conn, &queue).await, 0);
    });
}

#[test]
fn server_cancels_the_consumer_when_its_queue_is_deleted() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        let queue = queue_with(&conn, "cancelled", &[]).await;
        let mut consumer = consume(&channel, &queue).await;

        let deleter = conn.create_channel().await.unwrap();
        deleter
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("queue.delete");

        match tokio::time::timeout(
            DELIVERY_TIMEOUT,
            futures_lite::StreamExt::next(&mut consumer),
        )
        .await
        {
            Ok(None) => {}
            Ok(Some(item)) => panic!("expected the consumer to end, got {item:?}"),
            Err(_) => panic!("consumer did not see the server's basic.cancel"),
        }
        assert!(
            channel.status().connected(),
            "a server cancel leaves the channel open"
        );
        channel
            .basic_qos(1, BasicQosOptions::default())
            .await
            .expect("the channel still works");
    });
}
