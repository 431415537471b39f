//! The hot path: one task per connection drives all of its publishing and consuming channels
//! over one socket.
//!
//! Each wake-up reads everything the socket has and handles every frame in it (deliveries,
//! confirms), then fills the write buffer with as many publishes as credit allows plus the
//! acks the reads produced, and writes it in one go. Counters are shared once per batch.
//! The driver never blocks on the broker: when the broker stops reading (TCP back-pressure,
//! `connection.blocked`), publishing simply waits for the socket to become writable.

use anyhow::{anyhow, bail};
use bytes::{Buf, BytesMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::sync::watch;
use warren_amqp::{encode_method, ChannelFlow, Frame, Method};

use super::client::{closed_channel, Client};
use super::consumer::{Consumer, Delivered};
use super::histogram::Histogram;
use super::publisher::Publisher;
use super::scan::{self, Hot, Peek};
use super::stats::{now_nanos, Stats};

/// Stop adding publishes once this much is waiting to be written: large enough for one
/// write to carry hundreds of messages, small enough to stay in cache.
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// Read buffer head-room per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// How often a connection's latency samples are merged into the shared histograms.
const MERGE_EVERY: Duration = Duration::from_millis(100);

/// What the scenario wants the drivers to do. Consumers consume in every phase but `Stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connections are up; publishers wait.
    Ready,
    /// Publishers publish.
    Publish,
    /// Close the connection.
    Stop,
}

#[derive(Clone, Copy)]
enum Role {
    Unused,
    Publisher(usize),
    Consumer(usize),
}

pub struct Driver {
    client: Client,
    channels: Channels,
    publishing: bool,
    last_merge: Instant,
    /// How late this task woke up for its publishers' rate, nanoseconds.
    wake_lag: Histogram,
}

impl Driver {
    /// Takes over a connection whose channels are set up (`confirm.select`, `basic.consume`
    /// done). Channel numbers must be unique across `publishers` and `consumers`.
    pub fn new(
        client: Client,
        publishers: Vec<Publisher>,
        consumers: Vec<Consumer>,
        stats: Arc<Stats>,
    ) -> Driver {
        let top = publishers
            .iter()
            .map(|p| p.channel)
            .chain(consumers.iter().map(|c| c.channel))
            .max()
            .unwrap_or(0);
        let mut roles = vec![Role::Unused; top as usize + 1];
        for (i, p) in publishers.iter().enumerate() {
            roles[p.channel as usize] = Role::Publisher(i);
        }
        for (i, c) in consumers.iter().enumerate() {
            roles[c.channel as usize] = Role::Consumer(i);
        }
        let channels = Channels {
            roles,
            publishers,
            consumers,
            write_buf: BytesMut::with_capacity(WRITE_BATCH_BYTES * 2),
            stats,
            latency: Histogram::default(),
            confirm_latency: Histogram::default(),
            batch: Batch::default(),
        };
        Driver {
            client,
            channels,
            publishing: false,
            last_merge: Instant::now(),
            wake_lag: Histogram::default(),
        }
    }

    /// Runs until the phase becomes [`Phase::Stop`] (then closes the connection in order) or
    /// the broker closes something (an error).
    pub async fn run(mut self, mut phase: watch::Receiver<Phase>) -> anyhow::Result<()> {
        let now = now_nanos();
        for frame in std::mem::take(&mut self.client.stash) {
            self.channels.on_frame(frame, now)?;
        }
        self.channels.end_batch();
        loop {
            match *phase.borrow_and_update() {
                Phase::Stop => break,
                Phase::Publish => self.start_publishing(),
                Phase::Ready => self.publishing = false,
            }
            if self.publishing && self.channels.write_buf.len() < WRITE_BATCH_BYTES {
                self.channels.fill(Instant::now());
            }
            let writing = !self.channels.write_buf.is_empty();
            let interest = if writing {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let wake_at = if self.publishing && !writing {
                self.channels.next_credit_at()
            } else {
                None
            };
            let ready = tokio::select! {
                biased;
                changed = phase.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
                ready = self.client.stream.ready(interest) => ready?,
                _ = sleep_until(wake_at) => {
                    if let Some(at) = wake_at {
                        self.wake_lag.record(Instant::now().saturating_duration_since(at).as_nanos() as u64);
                    }
                    continue;
                }
            };
            if ready.is_readable() {
                self.read()?;
            }
            if !self.channels.write_buf.is_empty() {
                self.flush()?;
            }
        }
        self.channels.merge_latencies();
        self.channels.stats.merge_wake_lag(&mut self.wake_lag);
        self.client
            .stream
            .write_all(&self.channels.write_buf)
            .await?;
        self.client.close().await;
        Ok(())
    }

    fn start_publishing(&mut self) {
        if !self.publishing {
            let now = Instant::now();
            for p in &mut self.channels.publishers {
                p.start(now);
            }
            self.publishing = true;
        }
    }

    /// Reads what the socket has (without waiting) and handles every whole frame in it:
    /// per-message frames in place ([`scan`]), the rest through the codec.
    fn read(&mut self) -> anyhow::Result<()> {
        let read_buf = &mut self.client.read_buf;
        read_buf.reserve(READ_CHUNK_BYTES);
        match self.client.stream.try_read_buf(read_buf) {
            Ok(0) => bail!("the broker closed the socket"),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let now = now_nanos();
        let frame_max = self.client.frame_max;
        loop {
            match scan::peek(read_buf, frame_max) {
                Peek::Hot(hot, len) => {
                    self.channels.on_hot(hot, now)?;
                    read_buf.advance(len);
                }
                Peek::Incomplete => break,
                Peek::Other => match self.client.decoder.decode(read_buf)? {
                    Some(frame) => self.channels.on_frame(frame, now)?,
                    None => break,
                },
            }
        }
        self.channels.end_batch();
        if self.last_merge.elapsed() >= MERGE_EVERY {
            self.channels.merge_latencies();
            self.channels.stats.merge_wake_lag(&mut self.wake_lag);
            self.last_merge = Instant::now();
        }
        Ok(())
    }

    /// Writes as much of the write buffer as the socket takes without waiting.
    fn flush(&mut self) -> anyhow::Result<()> {
        let write_buf = &mut self.channels.write_buf;
        while !write_buf.is_empty() {
            match self.client.stream.try_write(write_buf) {
                Ok(n) => write_buf.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Counts gathered during one read, added to the shared counters at its end.
#[derive(Default)]
struct Batch {
    consumed: u64,
    confirmed: u64,
    nacked: u64,
}

/// The connection's channels and what they write: everything a frame can change.
struct Channels {
    roles: Vec<Role>,
    publishers: Vec<Publisher>,
    consumers: Vec<Consumer>,
    write_buf: BytesMut,
    stats: Arc<Stats>,
    /// Publish to delivery, from body timestamps.
    latency: Histogram,
    /// Publish to `basic.ack`, from the publishers' send times.
    confirm_latency: Histogram,
    batch: Batch,
}

impl Channels {
    fn role(&self, channel: u16) -> Role {
        self.roles
            .get(channel as usize)
            .copied()
            .unwrap_or(Role::Unused)
    }

    /// Adds publishes to the write buffer, sharing the room fairly among this connection's
    /// publishers.
    fn fill(&mut self, now: Instant) {
        if self.publishers.is_empty() {
            return;
        }
        let stamp = now_nanos();
        let share = (WRITE_BATCH_BYTES - self.write_buf.len()) / self.publishers.len();
        let mut published = 0;
        for p in &mut self.publishers {
            let count = p.credit(now).min((share / p.frame_bytes()).max(1) as u64);
            if count > 0 {
                p.publish(count, stamp, &mut self.write_buf);
                published += count;
            }
        }
        Stats::add(&self.stats.published, published);
    }

    fn next_credit_at(&self) -> Option<Instant> {
        self.publishers
            .iter()
            .filter_map(Publisher::next_credit_at)
            .min()
    }

    fn on_hot(&mut self, hot: Hot<'_>, now: u64) -> anyhow::Result<()> {
        match hot {
            Hot::Deliver {
                channel,
                delivery_tag,
            } => match self.role(channel) {
                Role::Consumer(i) => self.consumers[i].on_deliver(delivery_tag)?,
                _ => bail!("basic.deliver on channel {channel}, which has no consumer"),
            },
            Hot::Header { channel, body_size } => {
                if let Role::Consumer(i) = self.role(channel) {
                    let delivered = self.consumers[i].on_header(body_size, &mut self.write_buf)?;
                    self.delivered(delivered, now);
                } // else: the content of a basic.return
            }
            Hot::Body { channel, payload } => {
                if let Role::Consumer(i) = self.role(channel) {
                    let delivered = self.consumers[i].on_body(payload, &mut self.write_buf)?;
                    self.delivered(delivered, now);
                }
            }
            Hot::Confirm {
                channel,
                delivery_tag,
                multiple,
                nack,
            } => {
                if let Role::Publisher(i) = self.role(channel) {
                    let settled = self.publishers[i].settle(
                        delivery_tag,
                        multiple,
                        nack,
                        now,
                        &mut self.confirm_latency,
                    );
                    if nack {
                        self.batch.nacked += settled;
                    } else {
                        self.batch.confirmed += settled;
                    }
                }
            }
        }
        Ok(())
    }

    fn delivered(&mut self, delivered: Option<Delivered>, now: u64) {
        if let Some(Delivered { stamp_nanos }) = delivered {
            self.batch.consumed += 1;
            if let Some(stamp) = stamp_nanos {
                self.latency.record(now.saturating_sub(stamp));
            }
        }
    }

    /// A frame the in-place scan left to the codec: connection and channel control, and in
    /// principle per-message frames too (the handling is the same).
    fn on_frame(&mut self, frame: Frame, now: u64) -> anyhow::Result<()> {
        match frame {
            Frame::Body { channel, payload } => self.on_hot(
                Hot::Body {
                    channel,
                    payload: &payload,
                },
                now,
            ),
            Frame::Header { channel, header } => self.on_hot(
                Hot::Header {
                    channel,
                    body_size: header.body_size,
                },
                now,
            ),
            Frame::Method { channel, method } => self.on_method(channel, method, now),
            Frame::Heartbeat { .. } => Ok(()),
        }
    }

    fn on_method(&mut self, channel: u16, method: Method, now: u64) -> anyhow::Result<()> {
        match method {
            Method::BasicDeliver(d) => self.on_hot(
                Hot::Deliver {
                    channel,
                    delivery_tag: d.delivery_tag,
                },
                now,
            )?,
            Method::BasicAck(a) => self.on_hot(
                Hot::Confirm {
                    channel,
                    delivery_tag: a.delivery_tag,
                    multiple: a.multiple,
                    nack: false,
                },
                now,
            )?,
            Method::BasicNack(n) => self.on_hot(
                Hot::Confirm {
                    channel,
                    delivery_tag: n.delivery_tag,
                    multiple: n.multiple,
                    nack: true,
                },
                now,
            )?,
            Method::BasicCancel(_) => {
                bail!("the broker cancelled the consumer on channel {channel} (was its queue deleted?)")
            }
            Method::ChannelFlow(flow) => {
                if let Role::Publisher(i) = self.role(channel) {
                    self.publishers[i].paused = !flow.active;
                }
                encode_method(
                    channel,
                    &Method::ChannelFlowOk(ChannelFlow {
                        active: flow.active,
                    }),
                    &mut self.write_buf,
                );
            }
            Method::ChannelClose(close) => return Err(closed_channel(&close)),
            Method::ConnectionClose(close) => {
                return Err(anyhow!(
                    "the broker closed the connection: {} ({})",
                    close.reply_text.as_str(),
                    close.reply_code
                ))
            }
            Method::ConnectionBlocked(_) => self.stats.blocked.store(true, Ordering::Relaxed),
            Method::ConnectionUnblocked => self.stats.blocked.store(false, Ordering::Relaxed),
            // basic.return (mandatory is never set), late replies: nothing to do.
            _ => {}
        }
        Ok(())
    }

    fn merge_latencies(&mut self) {
        self.stats.merge_latency(&mut self.latency);
        self.stats.merge_confirm_latency(&mut self.confirm_latency);
    }

    fn end_batch(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        Stats::add(&self.stats.consumed, batch.consumed);
        Stats::add(&self.stats.confirmed, batch.confirmed);
        Stats::add(&self.stats.nacked, batch.nacked);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
