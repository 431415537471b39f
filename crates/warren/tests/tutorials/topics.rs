//! Tutorial five, "Topics": `emit_log_topic.rs` publishes to the topic exchange `topic_logs`
//! with a `<facility>.<severity>` routing key; each `receive_logs_topic.rs` binds its exclusive
//! queue with the patterns it was given.

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio::task::JoinSet;

use crate::common::run;
use crate::support::{args, assert_nothing_more, TutorialResult, RECEIVE_TIMEOUT};

/// `emit_log_topic.rs`; `args` is its command line: routing key, then the message.
async fn emit_log_topic(addr: &str, args: Vec<String>) -> TutorialResult {
    let routing_key = args.first().map(String::as_str).unwrap_or("anonymous.info");
    let message = match args.len() {
        x if x < 2 => "Hello, world!".to_string(),
        _ => args[1..].join(" "),
    };

    let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    channel
        .exchange_declare(
            "topic_logs".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;

    channel
        .basic_publish(
            "topic_logs".into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            message.as_bytes(),
            BasicProperties::default(),
        )
        .await?;
    conn.close(0, "".into()).await?;
    Ok(())
}

/// `receive_logs_topic.rs` up to its consume loop; `binding_keys` is its command line.
/// As in tutorial four, the binds run at once (tasks here, `join_all` there) and are checked.
async fn start_receive_logs_topic(
    addr: &str,
    binding_keys: Vec<String>,
) -> TutorialResult<(Connection, Consumer)> {
    let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    channel
        .exchange_declare(
            "topic_logs".into(),
            ExchangeKind::Topic,
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

    let mut binds = JoinSet::new();
    for binding_key in binding_keys {
        let (channel, queue) = (channel.clone(), queue.name().clone());
        binds.spawn(async move {
            channel
                .queue_bind(
                    queue,
                    "topic_logs".into(),
                    binding_key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
        });
    }
    while let Some(bound) = binds.join_next().await {
        bound??;
    }

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

/// `receive_logs_topic.rs`'s loop, stopping after `stop_after` logs, each as `key:message`.
async fn receive_logs_topic(
    consumer: &mut Consumer,
    stop_after: usize,
) -> TutorialResult<Vec<String>> {
    let mut received = Vec::new();
    while let Some(delivery) = consumer.next().await {
        if let Ok(delivery) = delivery {
            received.push(format!(
                "{}:{}",
                delivery.routing_key,
                std::str::from_utf8(&delivery.data)?
            ));
        }
        if received.len() == stop_after {
            break;
        }
    }
    Ok(received)
}

#[test]
fn topics_each_receiver_gets_the_logs_its_patterns_match() {
    run(|url| async move {
        // The receivers the tutorial's text runs.
        let all = start_receive_logs_topic(&url, args(&["#"]))
            .await
            .expect("receiver");
        let kern = start_receive_logs_topic(&url, args(&["kern.*"]))
            .await
            .expect("receiver");
        let critical = start_receive_logs_topic(&url, args(&["*.critical"]))
            .await
            .expect("receiver");
        let both = start_receive_logs_topic(&url, args(&["kern.*", "*.critical"]))
            .await
            .expect("receiver");

        emit_log_topic(
            &url,
            args(&["kern.critical", "A", "critical", "kernel", "error"]),
        )
        .await
        .expect("emit");
        emit_log_topic(&url, args(&["kern.info", "kernel", "booted"]))
            .await
            .expect("emit");
        emit_log_topic(&url, args(&["cron.critical", "cron", "died"]))
            .await
            .expect("emit");
        emit_log_topic(&url, args(&["cron.info", "job", "ran"]))
            .await
            .expect("emit");
        emit_log_topic(&url, args(&[])).await.expect("emit");

        let cases = [
            (
                "#",
                all,
                vec![
                    "anonymous.info:Hello, world!",
                    "cron.critical:cron died",
                    "cron.info:job ran",
                    "kern.critical:A critical kernel error",
                    "kern.info:kernel booted",
                ],
            ),
            (
                "kern.*",
                kern,
                vec![
                    "kern.critical:A critical kernel error",
                    "kern.info:kernel booted",
                ],
            ),
            (
                "*.critical",
                critical,
                vec![
                    "cron.critical:cron died",
                    "kern.critical:A critical kernel error",
                ],
            ),
            (
                // kern.critical matches both patterns and still arrives once
                "kern.* *.critical",
                both,
                vec![
                    "cron.critical:cron died",
                    "kern.critical:A critical kernel error",
                    "kern.info:kernel booted",
                ],
            ),
        ];
        for (who, (_conn, mut consumer), expected) in cases {
            let mut received = tokio::time::timeout(
                RECEIVE_TIMEOUT,
                receive_logs_topic(&mut consumer, expected.len()),
            )
            .await
            .unwrap_or_else(|_| panic!("receiver for {who} did not get its logs"))
            .expect("receive_logs_topic");
            received.sort();
            assert_eq!(received, expected, "receiver for {who}");
            assert_nothing_more(&mut consumer, who).await;
        }
    });
}
