//! Tutorial four, "Routing": `emit_log_direct.rs` publishes to the direct exchange
//! `direct_logs` with the severity as routing key; each `receive_logs_direct.rs` binds its
//! exclusive queue once per severity it asked for.

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

/// `emit_log_direct.rs`; `args` is its command line: severity, then the message.
async fn emit_log_direct(addr: &str, args: Vec<String>) -> TutorialResult {
    let severity = args.first().map(String::as_str).unwrap_or("info");
    let message = match args.len() {
        x if x < 2 => "Hello, world!".to_string(),
        _ => args[1..].join(" "),
    };

    let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    channel
        .exchange_declare(
            "direct_logs".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;

    channel
        .basic_publish(
            "direct_logs".into(),
            severity.into(),
            BasicPublishOptions::default(),
            message.as_bytes(),
            BasicProperties::default(),
        )
        .await?;
    conn.close(0, "".into()).await?;
    Ok(())
}

/// `receive_logs_direct.rs` up to its consume loop; `severities` is its command line.
///
/// The tutorial binds all severities at once with `futures::future::join_all` and ignores the
/// results; here the binds run at once as tasks on clones of the channel, and are checked.
async fn start_receive_logs_direct(
    addr: &str,
    severities: Vec<String>,
) -> TutorialResult<(Connection, Consumer)> {
    let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    channel
        .exchange_declare(
            "direct_logs".into(),
            ExchangeKind::Direct,
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
    for severity in severities {
        let (channel, queue) = (channel.clone(), queue.name().clone());
        binds.spawn(async move {
            channel
                .queue_bind(
                    queue,
                    "direct_logs".into(),
                    severity.into(),
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

/// `receive_logs_direct.rs`'s loop, stopping after `stop_after` logs, each as `severity:message`.
async fn receive_logs_direct(
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
fn routing_each_receiver_gets_only_the_severities_it_bound() {
    run(|url| async move {
        let problems = start_receive_logs_direct(&url, args(&["warning", "error"]))
            .await
            .expect("receiver");
        let everything = start_receive_logs_direct(&url, args(&["info", "warning", "error"]))
            .await
            .expect("receiver");

        // Nobody listens to "debug": the exchange drops it.
        emit_log_direct(&url, args(&["debug", "Nobody", "reads", "this"]))
            .await
            .expect("emit");
        emit_log_direct(&url, args(&[])).await.expect("emit");
        emit_log_direct(&url, args(&["warning", "Disk", "almost", "full"]))
            .await
            .expect("emit");
        emit_log_direct(
            &url,
            args(&["error", "Run.", "Run.", "Or", "it", "will", "explode."]),
        )
        .await
        .expect("emit");

        let cases = [
            (
                "warning+error receiver",
                problems,
                vec![
                    "error:Run. Run. Or it will explode.",
                    "warning:Disk almost full",
                ],
            ),
            (
                "info+warning+error receiver",
                everything,
                vec![
                    "error:Run. Run. Or it will explode.",
                    "info:Hello, world!",
                    "warning:Disk almost full",
                ],
            ),
        ];
        for (who, (_conn, mut consumer), expected) in cases {
            let mut received = tokio::time::timeout(
                RECEIVE_TIMEOUT,
                receive_logs_direct(&mut consumer, expected.len()),
            )
            .await
            .unwrap_or_else(|_| panic!("{who} did not get its logs"))
            .expect("receive_logs_direct");
            received.sort();
            assert_eq!(received, expected, "{who}");
            assert_nothing_more(&mut consumer, who).await;
        }
    });
}
