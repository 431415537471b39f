//! The integration-test harness: gives each test a broker to talk to and a deadline.
//!
//! Contract:
//! - A broker per test ([`Broker`], from `broker.rs`): the one `WARREN_TEST_URL` names, or a
//!   fresh `warren serve` process. `WARREN_TEST_URL` is how the suite is checked against real
//!   RabbitMQ, so that the behaviour it pins is RabbitMQ's and not our guess of it. Tests
//!   sharing that broker run in parallel, so they use unique queue and exchange names
//!   ([`unique`]).
//! - Every test body runs under a 30 s timeout ([`run`]), so a hung broker fails the test
//!   instead of hanging CI.
//!
//! This module must never assume which broker it talks to: no test may depend on state left by
//! another test.

#![allow(dead_code)] // each test binary uses a different subset of the helpers

mod broker;

use std::future::Future;
use std::time::Duration;

pub use broker::Broker;

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicGetOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ErrorKind};

/// How long a whole test may take before it is declared hung.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test waits for a delivery it expects.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test watches for a delivery it expects *not* to arrive. A negative check can only
/// miss a bug by being short, never fail a correct broker.
pub const QUIET_PERIOD: Duration = Duration::from_millis(300);

/// A name no other test (nor an earlier run against a shared broker) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", broker::unique_suffix())
}

/// Runs one test: starts a broker, then runs `body(url)` on a tokio runtime under
/// [`TEST_TIMEOUT`]. The broker is stopped when the test ends, whether it passed or panicked.
pub fn run<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build the tokio runtime");
    let url = broker.url().to_owned();
    // The timeout must be created inside the runtime: it needs the runtime's timer.
    let outcome = runtime.block_on(async { tokio::time::timeout(TEST_TIMEOUT, body(url)).await });
    runtime.shutdown_timeout(Duration::from_secs(1));
    if outcome.is_err() {
        panic!("test did not finish within {TEST_TIMEOUT:?}; is the broker hung?");
    }
    drop(broker);
}

/// Opens a connection the way applications do.
pub async fn connect(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("cannot connect to the broker")
}

/// A connection and one open channel on it.
pub async fn open(url: &str) -> (Connection, Channel) {
    let conn = connect(url).await;
    let channel = conn.create_channel().await.expect("cannot open a channel");
    (conn, channel)
}

/// The vhost named by the URL, as the broker spells it in its error texts.
pub fn vhost(url: &str) -> String {
    url.parse::<lapin::uri::AMQPUri>()
        .expect("bad AMQP URL")
        .vhost
}

/// The AMQP reply code and text carried by an error that closed a channel or connection.
pub fn amqp_error(error: &lapin::Error) -> (u16, String) {
    match error.kind() {
        ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP protocol error, got {other:?}"),
    }
}

/// Declares an exclusive queue with a unique name and returns that name. Exclusive, so that it
/// goes away with the test's connection even on a shared broker.
pub async fn declare_queue(channel: &Channel, prefix: &str) -> String {
    let name = unique(prefix);
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await
        .expect("queue.declare");
    name
}

/// Puts `channel` in confirm mode.
pub async fn confirm_mode(channel: &Channel) {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
}

/// Publishes on a channel in confirm mode and waits for the broker's ack, so that a later
/// `basic.get` sees the message if it was routed, and sees nothing if it was not.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) {
    let confirmation = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            Default::default(),
            body,
            properties,
        )
        .await
        .expect("basic.publish")
        .await
        .expect("publisher confirm");
    assert!(
        confirmation.is_ack(),
        "publish to {exchange:?}/{routing_key:?} was nacked"
    );
}

/// Takes every ready message of `queue` with `basic.get` (auto-ack) and returns the bodies.
pub async fn drain(channel: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        bodies.push(String::from_utf8(message.delivery.data).expect("utf-8 body"));
    }
    bodies
}

/// The next delivery of `consumer`, failing the test if none comes in [`DELIVERY_TIMEOUT`].
pub async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    match tokio::time::timeout(DELIVERY_TIMEOUT, consumer.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(Some(Err(e))) => panic!("consumer failed: {e}"),
        Ok(None) => panic!("consumer ended while a delivery was expected"),
        Err(_) => panic!("no delivery within {DELIVERY_TIMEOUT:?}"),
    }
}

/// Fails the test if `consumer` receives anything during [`QUIET_PERIOD`].
pub async fn assert_no_delivery(consumer: &mut Consumer) {
    if let Ok(Some(item)) = tokio::time::timeout(QUIET_PERIOD, consumer.next()).await {
        match item {
            Ok(delivery) => panic!(
                "unexpected delivery: {:?}",
                String::from_utf8_lossy(&delivery.data)
            ),
            Err(e) => panic!("consumer failed: {e}"),
        }
    }
}

/// How many ready messages `queue` holds, by a passive declare on a throw-away channel.
pub async fn ready_count(conn: &Connection, queue: &str) -> u32 {
    let channel = conn.create_channel().await.expect("channel.open");
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive queue.declare");
    let _ = channel.close(200, "OK".into()).await;
    declared.message_count()
}
