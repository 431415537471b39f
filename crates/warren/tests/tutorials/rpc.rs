//! Tutorial six, "RPC": `rpc_server.rs` answers Fibonacci requests from the durable quorum queue
//! `rpc_queue` (prefetch 1, manual acks), replying to each request's `reply_to` with its
//! `correlation_id`; `rpc_client.rs` sends requests and waits on an exclusive, server-named
//! callback queue for the reply carrying its correlation id.

use std::collections::hash_map::RandomState;
use std::fmt::Display;
use std::hash::{BuildHasher, Hasher};

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, Queue};

use crate::common::run;
use crate::support::{forget_queues, TutorialResult};

#[derive(Debug)]
enum Error {
    CannotDecodeArg,
    MissingReplyTo,
    MissingCorrelationId,
    CannotDecodeReply,
    NoReply,
}

impl std::error::Error for Error {}

impl Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Error::CannotDecodeArg => "the request is not a number",
            Error::MissingReplyTo => "the request has no reply_to",
            Error::MissingCorrelationId => "the request has no correlation_id",
            Error::CannotDecodeReply => "the reply is not a number",
            Error::NoReply => "no reply arrived",
        })
    }
}

fn fib(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

/// `rpc_server.rs` up to its consume loop, so the test can send requests once it listens.
async fn start_rpc_server(addr: &str) -> TutorialResult<(Connection, Channel, Consumer)> {
    let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            "rpc_queue".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;

    channel.basic_qos(1, BasicQosOptions::default()).await?;

    let consumer = channel
        .basic_consume(
            "rpc_queue".into(),
            "rpc_server".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((conn, channel, consumer))
}

/// `rpc_server.rs`'s loop: decode n, reply fib(n) as text, then ack the request.
async fn serve_rpc(
    (_conn, channel, mut consumer): (Connection, Channel, Consumer),
) -> TutorialResult {
    while let Some(delivery) = consumer.next().await {
        if let Ok(delivery) = delivery {
            let n: u64 = std::str::from_utf8(&delivery.data)
                .map_err(|_| Error::CannotDecodeArg)?
                .trim()
                .parse()
                .map_err(|_| Error::CannotDecodeArg)?;
            let payload = fib(n).to_string();

            let routing_key = delivery
                .properties
                .reply_to()
                .as_ref()
                .ok_or(Error::MissingReplyTo)?
                .as_str();
            let correlation_id = delivery
                .properties
                .correlation_id()
                .clone()
                .ok_or(Error::MissingCorrelationId)?;

            channel
                .basic_publish(
                    "".into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    payload.as_bytes(),
                    BasicProperties::default().with_correlation_id(correlation_id),
                )
                .await?;
            channel
                .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                .await?;
        }
    }
    Ok(())
}

/// `rpc_client.rs`'s client.
struct FibonacciRpcClient {
    conn: Connection,
    channel: Channel,
    callback_queue: Queue,
    consumer: Consumer,
    correlation_id: ShortString,
}

impl FibonacciRpcClient {
    async fn new(addr: &str) -> Result<Self, lapin::Error> {
        let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        let callback_queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;

        let consumer = channel
            .basic_consume(
                callback_queue.name().as_str().into(),
                "rpc_client".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;

        let correlation_id = random_uuid().into();
        Ok(Self {
            conn,
            channel,
            callback_queue,
            consumer,
            correlation_id,
        })
    }

    async fn call(&mut self, n: u64) -> TutorialResult<u64> {
        let body = n.to_string();
        self.channel
            .basic_publish(
                "".into(),
                "rpc_queue".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default()
                    .with_reply_to(self.callback_queue.name().clone())
                    .with_correlation_id(self.correlation_id.clone()),
            )
            .await?
            .await?;

        while let Some(delivery) = self.consumer.next().await {
            if let Ok(delivery) = delivery {
                if delivery.properties.correlation_id().as_ref() == Some(&self.correlation_id) {
                    return Ok(std::str::from_utf8(&delivery.data)
                        .map_err(|_| Error::CannotDecodeReply)?
                        .trim()
                        .parse()
                        .map_err(|_| Error::CannotDecodeReply)?);
                }
            }
        }
        Err(Box::new(Error::NoReply))
    }

    async fn close(&self) -> Result<(), lapin::Error> {
        self.conn.close(0, "".into()).await
    }
}

/// A random version-4 UUID in its usual text form, standing in for the tutorial's
/// `uuid::Uuid::new_v4()` without taking a dependency for it.
fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    for half in bytes.chunks_mut(8) {
        half.copy_from_slice(&RandomState::new().build_hasher().finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[test]
fn rpc_clients_get_each_fibonacci_reply_matched_by_correlation_id() {
    run(|url| async move {
        forget_queues(&url, &["rpc_queue"]).await;
        let server = tokio::spawn(serve_rpc(start_rpc_server(&url).await.expect("rpc_server")));

        // Two clients at once: each reply must reach the client that asked, via its own
        // callback queue, while the server handles one request at a time (prefetch 1).
        let ask = |questions: Vec<u64>| {
            let url = url.clone();
            async move {
                let mut client = FibonacciRpcClient::new(&url).await.expect("rpc_client");
                let mut answers = Vec::new();
                for n in questions {
                    answers.push(client.call(n).await.expect("call"));
                }
                client.close().await.expect("close");
                answers
            }
        };
        let (first, second) = tokio::join!(ask(vec![30, 0, 1, 2]), ask(vec![10, 20, 50, 90]));
        assert_eq!(first, [832_040, 0, 1, 1]);
        assert_eq!(
            second,
            [55, 6_765, 12_586_269_025, 2_880_067_194_370_816_120]
        );

        if server.is_finished() {
            panic!("the rpc server stopped: {:?}", server.await);
        }
        server.abort();
        forget_queues(&url, &["rpc_queue"]).await;
    });
}
