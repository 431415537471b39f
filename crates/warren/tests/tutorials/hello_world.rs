//! Tutorial one, "Hello World!": `send.rs` puts one message on the `hello` queue (a durable
//! quorum queue) and `receive.rs` consumes it with manual acks.

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::common::run;
use crate::support::{forget_queues, TutorialResult, RECEIVE_TIMEOUT};

/// `send.rs`.
async fn send(addr: &str) -> TutorialResult {
    let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            "hello".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;

    let payload = "Hello world!".as_bytes();
    channel
        .basic_publish(
            "".into(),
            "hello".into(),
            BasicPublishOptions::default(),
            payload,
            BasicProperties::default(),
        )
        .await?;
    conn.close(0, "".into()).await?;
    Ok(())
}

/// `receive.rs`, stopping after `stop_after` messages instead of running forever.
async fn receive(addr: String, stop_after: usize) -> TutorialResult<Vec<String>> {
    let conn = Connection::connect(&addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            "hello".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;

    let mut consumer = channel
        .basic_consume(
            "hello".into(),
            "consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic_consume");

    let mut received = Vec::new();
    while let Some(delivery) = consumer.next().await {
        if let Ok(delivery) = delivery {
            received.push(std::str::from_utf8(&delivery.data)?.to_string());
            delivery
                .ack(BasicAckOptions::default())
                .await
                .expect("basic_ack");
        }
        if received.len() == stop_after {
            break;
        }
    }
    Ok(received)
}

/// One test, not two: the tutorial's fixed queue name would make two tests running in parallel
/// on a shared broker steal each other's messages.
#[test]
fn hello_world_receiver_gets_what_the_sender_sent_whichever_starts_first() {
    run(|url| async move {
        forget_queues(&url, &["hello"]).await;

        // Sender first: the messages wait in the queue.
        send(&url).await.expect("send");
        send(&url).await.expect("send again");
        let received = tokio::time::timeout(RECEIVE_TIMEOUT, receive(url.clone(), 2))
            .await
            .expect("the receiver got nothing")
            .expect("receive");
        assert_eq!(received, ["Hello world!", "Hello world!"]);

        // Receiver first: the message is pushed to it.
        let receiver = tokio::spawn(receive(url.clone(), 1));
        send(&url).await.expect("send");
        let received = tokio::time::timeout(RECEIVE_TIMEOUT, receiver)
            .await
            .expect("the receiver got nothing")
            .unwrap()
            .expect("receive");
        assert_eq!(received, ["Hello world!"]);
        forget_queues(&url, &["hello"]).await;
    });
}
