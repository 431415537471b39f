//! Tutorial three, "Publish/Subscribe": `emit_log.rs` publishes to the fanout exchange `logs`;
//! every running `receive_logs.rs` binds its own exclusive, server-named queue to it and gets a
//! copy of each log.

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, Consumer, ExchangeKind};

use crate::common::run;
use crate::support::{args, assert_nothing_more, TutorialResult, RECEIVE_TIMEOUT};

/// `emit_log.rs`; `args` is its command line.
async fn emit_log(addr: &str, args: Vec<String>) -> TutorialResult {
    let message = match args.len() {
        0 => "hello".to_string(),
        _ => args.join(" "),
    };

    let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    channel
        .exchange_declare(
            "logs".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;

    channel
        .basic_publish(
            "logs".into(),
            "".into(),
            BasicPublishOptions::default(),
            message.as_bytes(),
            BasicProperties::default(),
        )
        .await?;
    conn.close(0, "".into()).await?;
    Ok(())
}

/// `receive_logs.rs` up to its consume loop, so the test knows the queue is bound before it
/// emits anything (a fanout exchange drops what no queue is bound to receive).
async fn start_receive_logs(addr: &str) -> TutorialResult<(Connection, Consumer)> {
    let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    channel
        .exchange_declare(
            "logs".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;

    channel
        .queue_bind(
            queue.name().as_str().into(),
            "logs".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let consumer = channel
        .basic_consume(
            queue.name().as_str().into(),
            "consumer".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((conn, consumer))
}

/// `receive_logs.rs`'s loop, stopping after `stop_after` logs.
async fn receive_logs(consumer: &mut Consumer, stop_after: usize) -> TutorialResult<Vec<String>> {
    let mut received = Vec::new();
    while let Some(delivery) = consumer.next().await {
        if let Ok(delivery) = delivery {
            received.push(std::str::from_utf8(&delivery.data)?.to_string());
        }
        if received.len() == stop_after {
            break;
        }
    }
    Ok(received)
}

#[test]
fn publish_subscribe_every_receiver_gets_every_log() {
    run(|url| async move {
        let (_first_conn, mut first) = start_receive_logs(&url).await.expect("receiver 1");
        let (_second_conn, mut second) = start_receive_logs(&url).await.expect("receiver 2");

        emit_log(&url, args(&[])).await.expect("emit_log");
        emit_log(&url, args(&["info:", "disk", "is", "70%", "full"]))
            .await
            .expect("emit_log");
        emit_log(&url, args(&["warning:", "disk", "is", "95%", "full"]))
            .await
            .expect("emit_log");

        let expected = [
            "hello",
            "info: disk is 70% full",
            "warning: disk is 95% full",
        ];
        for (who, consumer) in [("receiver 1", &mut first), ("receiver 2", &mut second)] {
            let mut received =
                tokio::time::timeout(RECEIVE_TIMEOUT, receive_logs(consumer, expected.len()))
                    .await
                    .unwrap_or_else(|_| panic!("{who} did not get every log"))
                    .expect("receive_logs");
            received.sort();
            assert_eq!(received, expected, "{who}");
            assert_nothing_more(consumer, who).await;
        }
    });
}
