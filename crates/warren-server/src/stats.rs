//! What the broker counts and who is connected: the numbers behind the management API and
//! Prometheus metrics.
//!
//! - [`Counters`]: message counters (published, confirmed, delivered, acked, …) as relaxed
//!   atomics. Each connection has its own set, written only by its own task, so counting is
//!   an uncontended add on the publish path, with no lock. Broker-wide totals are the sum
//!   of the live connections' counters plus those of connections already closed
//!   ([`Registry::totals`]); they only grow.
//! - [`Registry`]: the live connections ([`ConnectionEntry`]: peer, user, vhost, client
//!   properties, channel count, byte counters) and a way to ask a connection for its channels
//!   and consumers or to close it with a reason ([`ConnectionControl`]). The registry's lock
//!   is taken when a connection opens or closes and when it is listed, never per message.
//! - Queues count their own messages in their task (plain integers, see
//!   `queue_task::QueueStats`) and answer `QueueHandle::stats` on demand.
//! - [`Rates`]: per-second rates from two samples of a counter set taken some seconds apart,
//!   as RabbitMQ's `*_details.rate`.
//!
//! This module never decides anything about messages; it only counts and lists.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use warren_amqp::FieldTable;

/// One message counter, named as RabbitMQ's `message_stats` fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Messages published (`publish`).
    Publish,
    /// Publisher confirms sent (`confirm`).
    Confirm,
    /// Mandatory publishes returned for want of a route (`return_unroutable`).
    ReturnUnroutable,
    /// Publishes routed nowhere and dropped (`drop_unroutable`).
    DropUnroutable,
    /// Deliveries to consumers that ack (`deliver`).
    Deliver,
    /// Deliveries to no-ack consumers (`deliver_no_ack`).
    DeliverNoAck,
    /// `basic.get` answered with a message, to be acked (`get`).
    Get,
    /// `basic.get` with no-ack answered with a message (`get_no_ack`).
    GetNoAck,
    /// `basic.get` answered empty (`get_empty`).
    GetEmpty,
    /// Deliveries and gets flagged redelivered (`redeliver`).
    Redeliver,
    /// Messages acknowledged by clients (`ack`).
    Ack,
}

/// How many counters there are.
pub const COUNTERS: usize = 11;

impl Counter {
    pub const ALL: [Counter; COUNTERS] = [
        Counter::Publish,
        Counter::Confirm,
        Counter::ReturnUnroutable,
        Counter::DropUnroutable,
        Counter::Deliver,
        Counter::DeliverNoAck,
        Counter::Get,
        Counter::GetNoAck,
        Counter::GetEmpty,
        Counter::Redeliver,
        Counter::Ack,
    ];

    /// RabbitMQ's field name in `message_stats`.
    pub fn field(self) -> &'static str {
        match self {
            Counter::Publish => "publish",
            Counter::Confirm => "confirm",
            Counter::ReturnUnroutable => "return_unroutable",
            Counter::DropUnroutable => "drop_unroutable",
            Counter::Deliver => "deliver",
            Counter::DeliverNoAck => "deliver_no_ack",
            Counter::Get => "get",
            Counter::GetNoAck => "get_no_ack",
            Counter::GetEmpty => "get_empty",
            Counter::Redeliver => "redeliver",
            Counter::Ack => "ack",
        }
    }
}

/// A set of counters that one task writes and anyone reads.
#[derive(Debug, Default)]
pub struct Counters([AtomicU64; COUNTERS]);

impl Counters {
    pub fn add(&self, counter: Counter, n: u64) {
        self.0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize].load(Ordering::Relaxed)
    }

    pub fn values(&self) -> CounterValues {
        CounterValues(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }

    fn add_values(&self, v: &CounterValues) {
        for (i, n) in v.0.iter().enumerate() {
            self.0[i].fetch_add(*n, Ordering::Relaxed);
        }
    }
}

/// The counters' values at one moment (or counted by a single task, as a queue's are).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterValues(pub [u64; COUNTERS]);

impl CounterValues {
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    pub fn add(&mut self, counter: Counter, n: u64) {
        self.0[counter as usize] += n;
    }

    pub fn sum(&mut self, other: &CounterValues) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    /// Every delivery and get with a message (RabbitMQ's `deliver_get`).
    pub fn deliver_get(&self) -> u64 {
        self.get(Counter::Deliver)
            + self.get(Counter::DeliverNoAck)
            + self.get(Counter::Get)
            + self.get(Counter::GetNoAck)
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|n| *n == 0)
    }
}

/// A queue's numbers at one moment, as its task answers `QueueHandle::stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueSnapshot {
    pub messages_ready: usize,
    pub messages_unacknowledged: usize,
    pub consumers: usize,
    /// Body bytes of the ready messages.
    pub message_bytes_ready: usize,
    /// Memory held by ready messages kept in RAM (bodies and properties).
    pub message_bytes_ram: usize,
    /// What the queue counted since it started (publish, deliver, get, redeliver, ack).
    pub counters: CounterValues,
}

impl QueueSnapshot {
    pub fn messages(&self) -> usize {
        self.messages_ready + self.messages_unacknowledged
    }

    /// An estimate of the memory the queue uses: its messages in RAM plus a fixed cost per
    /// message and per queue.
    pub fn memory_bytes(&self) -> usize {
        const PER_QUEUE: usize = 4 * 1024;
        const PER_MESSAGE: usize = 96;
        PER_QUEUE + self.message_bytes_ram + PER_MESSAGE * self.messages()
    }
}

/// What the management API may ask of a connection's task.
#[derive(Debug)]
pub enum ConnectionControl {
    /// Its channels and their consumers, now.
    Describe(oneshot::Sender<Vec<ChannelInfo>>),
    /// Close it: `connection.close` 320 CONNECTION_FORCED with this reason, as RabbitMQ's
    /// management API does (`CONNECTION_FORCED - <reason>`).
    Close(String),
}

/// One channel as its connection describes it.
#[derive(Clone, Debug)]
pub struct ChannelInfo {
    pub number: u16,
    /// `running`, or `closing` once the broker sent `channel.close`.
    pub state: &'static str,
    pub prefetch_count: u16,
    pub global_prefetch_count: u32,
    pub confirm: bool,
    pub transactional: bool,
    pub messages_unacknowledged: usize,
    pub consumers: Vec<ConsumerInfo>,
}

/// One consumer of a channel.
#[derive(Clone, Debug)]
pub struct ConsumerInfo {
    pub tag: String,
    pub queue: String,
    pub ack_required: bool,
    pub exclusive: bool,
    pub prefetch_count: u16,
    pub arguments: FieldTable,
}

/// What is known of a connection from its handshake.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: String,
    pub vhost: String,
    pub client_properties: FieldTable,
    pub auth_mechanism: String,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat_secs: u16,
    /// Wall clock, milliseconds since the epoch.
    pub connected_at_ms: u64,
}

impl ConnectionInfo {
    /// RabbitMQ's connection name: `peer -> local`.
    pub fn name(&self) -> String {
        format!("{} -> {}", addr(&self.peer), addr(&self.local))
    }

    /// The client's `connection_name` property, if it gave one.
    pub fn client_provided_name(&self) -> Option<&str> {
        self.client_properties
            .get("connection_name")
            .and_then(|v| v.as_str())
    }
}

/// An address as RabbitMQ prints it (IPv4-mapped IPv6 shown as IPv4).
pub fn addr(a: &SocketAddr) -> String {
    SocketAddr::new(a.ip().to_canonical(), a.port()).to_string()
}

/// A live connection in the registry.
#[derive(Debug)]
pub struct ConnectionEntry {
    pub id: u64,
    pub info: ConnectionInfo,
    pub counters: Counters,
    pub recv_oct: AtomicU64,
    pub send_oct: AtomicU64,
    pub recv_cnt: AtomicU64,
    pub send_cnt: AtomicU64,
    pub channels: AtomicU32,
    control: mpsc::UnboundedSender<ConnectionControl>,
}

impl ConnectionEntry {
    pub fn name(&self) -> String {
        self.info.name()
    }

    /// Counts one read of `bytes` bytes.
    pub fn received(&self, bytes: usize) {
        self.recv_oct.fetch_add(bytes as u64, Ordering::Relaxed);
        self.recv_cnt.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one write of `bytes` bytes.
    pub fn sent(&self, bytes: usize) {
        self.send_oct.fetch_add(bytes as u64, Ordering::Relaxed);
        self.send_cnt.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the connection for its channels; `None` if it is gone.
    pub async fn describe(&self) -> Option<Vec<ChannelInfo>> {
        let (tx, rx) = oneshot::channel();
        self.control.send(ConnectionControl::Describe(tx)).ok()?;
        rx.await.ok()
    }

    /// Asks the connection to close with `reason`; false if it is already gone.
    pub fn close(&self, reason: String) -> bool {
        self.control.send(ConnectionControl::Close(reason)).is_ok()
    }
}

/// The live connections and the counters of those that closed.
#[derive(Debug, Default)]
pub struct Registry {
    connections: Mutex<BTreeMap<u64, Arc<ConnectionEntry>>>,
    /// Counters of closed connections, so that totals never go down.
    retired: Counters,
    /// Connections and channels ever opened and closed (RabbitMQ's churn counters).
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub channels_opened: AtomicU64,
    pub channels_closed: AtomicU64,
    /// When the broker started (wall clock, milliseconds since the epoch).
    pub started_at_ms: u64,
    /// Rate samples of what the management API shows.
    pub rates: Rates,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            started_at_ms: crate::clock::wall_clock_ms(),
            ..Registry::default()
        }
    }

    /// Adds a connection; it stays listed until the returned [`Registration`] is dropped.
    /// `control` is where the connection's task takes [`ConnectionControl`]s.
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        info: ConnectionInfo,
        control: mpsc::UnboundedSender<ConnectionControl>,
    ) -> Registration {
        let entry = Arc::new(ConnectionEntry {
            id,
            info,
            counters: Counters::default(),
            recv_oct: AtomicU64::new(0),
            send_oct: AtomicU64::new(0),
            recv_cnt: AtomicU64::new(0),
            send_cnt: AtomicU64::new(0),
            channels: AtomicU32::new(0),
            control,
        });
        self.connections.lock().insert(id, entry.clone());
        self.connections_opened.fetch_add(1, Ordering::Relaxed);
        Registration {
            registry: self.clone(),
            entry,
        }
    }

    /// Every live connection, by id (the order they were accepted in).
    pub fn connections(&self) -> Vec<Arc<ConnectionEntry>> {
        self.connections.lock().values().cloned().collect()
    }

    /// The live connection named `name` (RabbitMQ's `peer -> local`).
    pub fn connection_named(&self, name: &str) -> Option<Arc<ConnectionEntry>> {
        self.connections
            .lock()
            .values()
            .find(|c| c.name() == name)
            .cloned()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.lock().len()
    }

    pub fn channel_count(&self) -> u64 {
        self.connections
            .lock()
            .values()
            .map(|c| c.channels.load(Ordering::Relaxed) as u64)
            .sum()
    }

    /// Every connection's message counters added up, closed ones included.
    pub fn totals(&self) -> CounterValues {
        let mut total = self.retired.values();
        for c in self.connections.lock().values() {
            total.sum(&c.counters.values());
        }
        total
    }
}

/// A connection's place in the registry; dropping it removes the connection and keeps its
/// counters in the totals.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    pub entry: Arc<ConnectionEntry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut live = self.registry.connections.lock();
        live.remove(&self.entry.id);
        self.registry.retired.add_values(&self.entry.counters.values());
        drop(live);
        self.registry
            .connections_closed
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// How far apart two samples are for a rate: RabbitMQ's default statistics interval.
const RATE_INTERVAL_MS: u64 = 5_000;
/// Objects not sampled for this long are forgotten.
const RATE_FORGET_MS: u64 = 60_000;

/// Per-second rates of counter sets, from samples kept per object (a queue, a connection,
/// the whole broker) each time the object is shown. A rate is the change over the last
/// interval of at least [`RATE_INTERVAL_MS`] (or since the first sample, if younger).
#[derive(Debug, Default)]
pub struct Rates {
    samples: Mutex<HashMap<String, VecDeque<(u64, CounterValues)>>>,
}

impl Rates {
    /// Records `now`'s values for `key` and returns the per-second rate of each counter.
    pub fn sample(&self, key: &str, now_ms: u64, values: CounterValues) -> [f64; COUNTERS] {
        let mut all = self.samples.lock();
        if all.len() > 1024 && all.len().is_power_of_two() {
            all.retain(|_, s| s.back().is_some_and(|(t, _)| now_ms.saturating_sub(*t) < RATE_FORGET_MS));
        }
        let samples = all.entry(key.to_string()).or_default();
        // Keep the newest sample at least an interval old, and everything after it.
        while samples.len() >= 2 && now_ms.saturating_sub(samples[1].0) >= RATE_INTERVAL_MS {
            samples.pop_front();
        }
        let rates = match samples.front() {
            Some((then, old)) if now_ms > *then => {
                let secs = (now_ms - then) as f64 / 1000.0;
                std::array::from_fn(|i| values.0[i].saturating_sub(old.0[i]) as f64 / secs)
            }
            _ => [0.0; COUNTERS],
        };
        if samples.back().is_none_or(|(t, _)| *t != now_ms) {
            samples.push_back((now_ms, values));
        }
        if samples.len() > 64 {
            samples.pop_front();
        }
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(publish: u64) -> CounterValues {
        let mut v = CounterValues::default();
        v.add(Counter::Publish, publish);
        v
    }

    #[test]
    fn a_rate_is_the_change_per_second_since_the_oldest_sample_within_the_interval() {
        let rates = Rates::default();
        assert_eq!(rates.sample("q", 1_000, values(0))[0], 0.0);
        assert_eq!(rates.sample("q", 3_000, values(100))[0], 50.0);
        // The sample at 1 s is older than an interval before 7 s, the one at 3 s is not.
        assert_eq!(rates.sample("q", 7_000, values(300))[0], 50.0);
        assert_eq!(rates.sample("q", 9_000, values(300))[0], 200.0 / 6.0);
    }

    #[test]
    fn totals_keep_the_counters_of_closed_connections() {
        let registry = Arc::new(Registry::default());
        let (tx, _rx) = mpsc::unbounded_channel();
        let info = ConnectionInfo {
            peer: "127.0.0.1:1000".parse().unwrap(),
            local: "127.0.0.1:5672".parse().unwrap(),
            user: "guest".into(),
            vhost: "/".into(),
            client_properties: FieldTable::new(),
            auth_mechanism: "PLAIN".into(),
            frame_max: 131072,
            channel_max: 2047,
            heartbeat_secs: 60,
            connected_at_ms: 0,
        };
        let reg = registry.register(1, info, tx);
        reg.entry.counters.add(Counter::Publish, 3);
        assert_eq!(registry.totals().get(Counter::Publish), 3);
        assert_eq!(registry.connection_named("127.0.0.1:1000 -> 127.0.0.1:5672").unwrap().id, 1);
        drop(reg);
        assert_eq!(registry.connection_count(), 0);
        assert_eq!(registry.totals().get(Counter::Publish), 3);
    }
}
