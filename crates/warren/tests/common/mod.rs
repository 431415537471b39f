//! The integration-test harness: gives each test a broker to talk to and a deadline.
//!
//! Contract:
//! - If `WARREN_TEST_URL` is set (e.g. `amqp://guest:guest@127.0.0.1:5672/%2F`), tests use that
//!   already-running broker. This is how the suite is checked against real RabbitMQ, so that the
//!   behaviour it pins is RabbitMQ's and not our guess of it. Tests sharing that broker run in
//!   parallel, so they use unique queue and exchange names ([`unique`]).
//! - Otherwise every test spawns its own `warren serve --listen 127.0.0.1:0 --data-dir <fresh
//!   temp dir>`, reads the broker's stderr until a line containing `listening on 127.0.0.1:PORT`
//!   (20 s at most), keeps draining stderr in a thread (and shows its tail if the test fails),
//!   and on drop sends SIGTERM, waits up to 5 s, then kills it and removes the data dir.
//! - Every test body runs under a 30 s timeout ([`run`]), so a hung broker fails the test
//!   instead of hanging CI.
//!
//! This module must never assume which broker it talks to: no test may depend on state left by
//! another test.

#![allow(dead_code)] // each test binary uses a different subset of the helpers

use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicGetOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ErrorKind};

/// How long a whole test may take before it is declared hung.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a freshly spawned broker may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a broker gets to exit after SIGTERM before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a test waits for a delivery it expects.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test watches for a delivery it expects *not* to arrive. A negative check can only
/// miss a bug by being short, never fail a correct broker.
pub const QUIET_PERIOD: Duration = Duration::from_millis(300);
/// Broker log lines kept to show when a test fails.
const LOG_TAIL_LINES: usize = 200;

/// A broker for one test: either the external one named by `WARREN_TEST_URL` or a `warren`
/// process owned by this guard.
pub struct Broker {
    url: String,
    process: Option<Process>,
}

struct Process {
    child: Child,
    data_dir: PathBuf,
    log_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Broker {
    /// Uses `WARREN_TEST_URL` if set, else spawns a fresh `warren serve`.
    pub fn start() -> Broker {
        match std::env::var("WARREN_TEST_URL") {
            Ok(url) if !url.is_empty() => Broker { url, process: None },
            _ => Broker::spawn(),
        }
    }

    /// The AMQP URL of this broker, vhost included.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn spawn() -> Broker {
        let data_dir = fresh_data_dir();
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--management-listen")
            .arg("off")
            .arg("--data-dir")
            .arg(&data_dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot spawn the warren binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let tail = Arc::clone(&log_tail);
        // The broker must never block on a full stderr pipe, so a thread drains it for the
        // broker's whole life, keeping a tail for diagnostics.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                {
                    let mut tail = tail.lock().unwrap();
                    if tail.len() == LOG_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                }
                let _ = lines_tx.send(line);
            }
        });
        let mut process = Process {
            child,
            data_dir,
            log_tail,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = listening_port(&line) {
                        break port;
                    }
                }
                Err(why) => {
                    let log = process.log_text();
                    let _ = process.child.kill();
                    let _ = process.child.wait();
                    panic!(
                        "warren did not print `listening on 127.0.0.1:PORT` ({why:?}); its stderr:\n{log}"
                    );
                }
            }
        };
        Broker {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2F"),
            process: Some(process),
        }
    }
}

impl Process {
    fn log_text(&self) -> String {
        let tail = self.log_tail.lock().unwrap();
        tail.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn stop(&mut self) {
        #[cfg(unix)]
        {
            // SIGTERM first, so a broker's graceful shutdown path is exercised too.
            let pid = self.child.id() as libc::pid_t;
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
            if std::thread::panicking() {
                eprintln!("--- warren stderr (tail) ---\n{}", process.log_text());
            }
            let _ = std::fs::remove_dir_all(&process.data_dir);
        }
    }
}

/// Extracts PORT from a log line containing `listening on 127.0.0.1:PORT`.
fn listening_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("listening on 127.0.0.1:")? + "listening on 127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Removes terminal colour sequences, in case the broker's log formatter emits them anyway.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn fresh_data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-test-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).expect("cannot create the broker's data dir");
    dir
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

/// A name no other test (nor an earlier run against a shared broker) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", unique_suffix())
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
