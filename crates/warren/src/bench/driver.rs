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
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::sync::watch;
use warren_amqp::{encode_method, ChannelFlow, Frame, Method};

use super::client::{closed_channel, Client};
use super::consumer::{Consumer, Delivered};
use super::histogram::Histogram;
use super::publisher::Publisher;
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
    write_buf: BytesMut,
    roles: Vec<Role>,
    publishers: Vec<Publisher>,
    consumers: Vec<Consumer>,
    publishing: bool,
    stats: Arc<Stats>,
    latency: Histogram,
    last_merge: Instant,
}

impl Driver {
    /// Takes over a connection whose channels are set up (`confirm.select`, `basic.consume`
    /// done). Channel numbers must be unique across `publishers` and `consumers`.
    pub fn new(client: Client, publishers: Vec<Publisher>, consumers: Vec<Consumer>, stats: Arc<Stats>) -> Driver {
        let top = publishers.iter().map(|p| p.channel).chain(consumers.iter().map(|c| c.channel)).max().unwrap_or(0);
        let mut roles = vec![Role::Unused; top as usize + 1];
        for (i, p) in publishers.iter().enumerate() {
            roles[p.channel as usize] = Role::Publisher(i);
        }
        for (i, c) in consumers.iter().enumerate() {
            roles[c.channel as usize] = Role::Consumer(i);
        }
        Driver {
            client,
            write_buf: BytesMut::with_capacity(WRITE_BATCH_BYTES * 2),
            roles,
            publishers,
            consumers,
            publishing: false,
            stats,
            latency: Histogram::default(),
            last_merge: Instant::now(),
        }
    }

    /// Runs until the phase becomes [`Phase::Stop`] (then closes the connection in order) or
    /// the broker closes something (an error).
    pub async fn run(mut self, mut phase: watch::Receiver<Phase>) -> anyhow::Result<()> {
        let stashed: Vec<Frame> = self.client.stash.drain(..).collect();
        self.handle_frames(stashed)?;
        loop {
            match *phase.borrow_and_update() {
                Phase::Stop => break,
                Phase::Publish => self.start_publishing(),
                Phase::Ready => self.publishing = false,
            }
            let now = Instant::now();
            if self.publishing && self.write_buf.len() < WRITE_BATCH_BYTES {
                self.fill(now);
            }
            let interest =
                if self.write_buf.is_empty() { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
            let wake_at = if self.publishing && self.write_buf.is_empty() { self.next_credit_at() } else { None };
            let ready = tokio::select! {
                biased;
                changed = phase.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
                ready = self.client.stream.ready(interest) => ready?,
                _ = sleep_until(wake_at) => continue,
            };
            if ready.is_readable() {
                self.read()?;
            }
            if !self.write_buf.is_empty() {
                self.flush()?;
            }
        }
        self.stats.merge_latency(&mut self.latency);
        self.client.stream.write_all(&self.write_buf).await?;
        self.client.close().await;
        Ok(())
    }

    fn start_publishing(&mut self) {
        if !self.publishing {
            let now = Instant::now();
            for p in &mut self.publishers {
                p.start(now);
            }
            self.publishing = true;
        }
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
        self.publishers.iter().filter_map(Publisher::next_credit_at).min()
    }

    /// Reads what the socket has (without waiting) and handles every whole frame in it.
    fn read(&mut self) -> anyhow::Result<()> {
        self.client.read_buf.reserve(READ_CHUNK_BYTES);
        match self.client.stream.try_read_buf(&mut self.client.read_buf) {
            Ok(0) => bail!("the broker closed the socket"),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let now = now_nanos();
        let mut consumed = 0;
        let mut confirmed = 0;
        while let Some(frame) = self.client.decoder.decode(&mut self.client.read_buf)? {
            match self.handle(frame)? {
                Handled::Delivered(Delivered { stamp_nanos }) => {
                    consumed += 1;
                    if let Some(stamp) = stamp_nanos {
                        self.latency.record(now.saturating_sub(stamp));
                    }
                }
                Handled::Confirmed(n) => confirmed += n,
                Handled::Nothing => {}
            }
        }
        Stats::add(&self.stats.consumed, consumed);
        Stats::add(&self.stats.confirmed, confirmed);
        if self.last_merge.elapsed() >= MERGE_EVERY {
            self.stats.merge_latency(&mut self.latency);
            self.last_merge = Instant::now();
        }
        Ok(())
    }

    fn handle_frames(&mut self, frames: Vec<Frame>) -> anyhow::Result<()> {
        let now = now_nanos();
        for frame in frames {
            match self.handle(frame)? {
                Handled::Delivered(Delivered { stamp_nanos }) => {
                    Stats::add(&self.stats.consumed, 1);
                    if let Some(stamp) = stamp_nanos {
                        self.latency.record(now.saturating_sub(stamp));
                    }
                }
                Handled::Confirmed(n) => Stats::add(&self.stats.confirmed, n),
                Handled::Nothing => {}
            }
        }
        Ok(())
    }

    fn handle(&mut self, frame: Frame) -> anyhow::Result<Handled> {
        match frame {
            Frame::Body { channel, payload } => match self.role(channel) {
                Role::Consumer(i) => Ok(self.consumers[i].on_body(&payload, &mut self.write_buf)?.into()),
                _ => Ok(Handled::Nothing), // the body of a basic.return
            },
            Frame::Header { channel, header } => match self.role(channel) {
                Role::Consumer(i) => Ok(self.consumers[i].on_header(header.body_size, &mut self.write_buf)?.into()),
                _ => Ok(Handled::Nothing),
            },
            Frame::Method { channel, method } => self.handle_method(channel, method),
            Frame::Heartbeat { .. } => Ok(Handled::Nothing),
        }
    }

    fn handle_method(&mut self, channel: u16, method: Method) -> anyhow::Result<Handled> {
        match (method, self.role(channel)) {
            (Method::BasicDeliver(d), Role::Consumer(i)) => self.consumers[i].on_deliver(d.delivery_tag)?,
            (Method::BasicAck(a), Role::Publisher(i)) => {
                return Ok(Handled::Confirmed(self.publishers[i].settle(a.delivery_tag, a.multiple)))
            }
            (Method::BasicNack(n), Role::Publisher(i)) => {
                let settled = self.publishers[i].settle(n.delivery_tag, n.multiple);
                Stats::add(&self.stats.nacked, settled);
            }
            (Method::BasicCancel(_), Role::Consumer(_)) => {
                bail!("the broker cancelled the consumer on channel {channel} (was its queue deleted?)");
            }
            (Method::ChannelFlow(flow), role) => {
                if let Role::Publisher(i) = role {
                    self.publishers[i].paused = !flow.active;
                }
                encode_method(channel, &Method::ChannelFlowOk(ChannelFlow { active: flow.active }), &mut self.write_buf);
            }
            (Method::ChannelClose(close), _) => return Err(closed_channel(&close)),
            (Method::ConnectionClose(close), _) => {
                return Err(anyhow!(
                    "the broker closed the connection: {} ({})",
                    close.reply_text.as_str(),
                    close.reply_code
                ))
            }
            (Method::ConnectionBlocked(_), _) => self.stats.blocked.store(true, std::sync::atomic::Ordering::Relaxed),
            (Method::ConnectionUnblocked, _) => self.stats.blocked.store(false, std::sync::atomic::Ordering::Relaxed),
            // basic.return (mandatory is never set), late replies: nothing to do.
            _ => {}
        }
        Ok(Handled::Nothing)
    }

    fn role(&self, channel: u16) -> Role {
        self.roles.get(channel as usize).copied().unwrap_or(Role::Unused)
    }

    /// Writes as much of the write buffer as the socket takes without waiting.
    fn flush(&mut self) -> anyhow::Result<()> {
        while !self.write_buf.is_empty() {
            match self.client.stream.try_write(&self.write_buf) {
                Ok(n) => self.write_buf.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// What one frame amounted to, for the batch counters.
enum Handled {
    Nothing,
    Delivered(Delivered),
    Confirmed(u64),
}

impl From<Option<Delivered>> for Handled {
    fn from(delivered: Option<Delivered>) -> Handled {
        delivered.map_or(Handled::Nothing, Handled::Delivered)
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
