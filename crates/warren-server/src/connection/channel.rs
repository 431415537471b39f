//! Per-channel state: delivery tags and what they map to, consumers, prefetch, confirm and
//! transaction modes, and the publish being assembled from method, header and body frames.

use crate::queue_task::QueueRef;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use warren_amqp::{
    encode_method, BasicAck, BasicNack, BasicPublish, ContentHeader, Method, ShortStr,
};
use warren_core::queue::{ChannelCredit, ConsumerId, Seq};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// We sent `channel.close` and wait for close-ok; other frames are discarded.
    Closing,
}

/// A delivery the client has not settled yet.
pub struct Unsettled {
    pub queue: QueueRef,
    pub seq: Seq,
    /// Delivered to a consumer (counts against the channel's global prefetch), not `basic.get`.
    pub via_consumer: bool,
}

/// A consumer as its channel knows it.
pub struct ChannelConsumer {
    pub id: ConsumerId,
    pub queue: QueueRef,
}

/// A publish whose content frames are still arriving.
pub struct Assembling {
    pub publish: BasicPublish,
    pub header: Option<Box<ContentHeader>>,
    pub body: Body,
}

/// Body frames received so far: one frame's slice is kept as is (no copy); several are joined.
pub enum Body {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Body {
    pub fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::One(b) => b.len(),
            Body::Many(b) => b.len(),
        }
    }

    pub fn push(&mut self, payload: Bytes) {
        *self = match std::mem::replace(self, Body::Empty) {
            Body::Empty => Body::One(payload),
            Body::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + payload.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&payload);
                Body::Many(joined)
            }
            Body::Many(mut joined) => {
                joined.extend_from_slice(&payload);
                Body::Many(joined)
            }
        };
    }

    pub fn into_bytes(self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::One(b) => b,
            Body::Many(b) => b.freeze(),
        }
    }
}

/// Settlements made inside a transaction, applied at commit.
pub enum TxSettle {
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
        requeue: bool,
    },
}

#[derive(Default)]
pub struct TxBuffer {
    pub publishes: Vec<(BasicPublish, Box<ContentHeader>, Bytes)>,
    pub settles: Vec<TxSettle>,
}

pub struct Channel {
    pub id: u16,
    pub state: ChannelState,
    pub assembling: Option<Assembling>,
    next_tag: u64,
    /// Unsettled deliveries in delivery-tag order. Clients mostly settle in order, so this
    /// is a queue: settling the oldest is O(1), anything else a binary search.
    pub unacked: VecDeque<(u64, Unsettled)>,
    pub consumers: HashMap<ShortStr, ChannelConsumer>,
    /// Queues this channel consumed or got from: told when the channel closes.
    pub touched_queues: HashMap<u64, QueueRef>,
    /// Prefetch for consumers created from now on (`basic.qos`, global = false).
    pub prefetch_count: u16,
    /// Shared prefetch of the whole channel (`basic.qos`, global = true).
    pub credit: Arc<ChannelCredit>,
    pub confirm: bool,
    /// Sequence number of the next publish in confirm mode.
    pub next_publish_seq: u64,
    /// Publishes still waiting for durable queues: seq -> (queues left, a queue failed).
    unconfirmed: BTreeMap<u64, (u32, bool)>,
    /// Publishes settled since confirms were last written.
    newly_acked: Vec<u64>,
    newly_nacked: Vec<u64>,
    pub tx: Option<TxBuffer>,
    /// The queue most recently declared on this channel (AMQP's "current queue").
    pub last_queue: Option<ShortStr>,
}

impl Channel {
    pub fn new(id: u16) -> Channel {
        Channel {
            id,
            state: ChannelState::Open,
            assembling: None,
            next_tag: 1,
            unacked: VecDeque::new(),
            consumers: HashMap::new(),
            touched_queues: HashMap::new(),
            prefetch_count: 0,
            credit: Arc::new(ChannelCredit::default()),
            confirm: false,
            next_publish_seq: 1,
            unconfirmed: BTreeMap::new(),
            newly_acked: Vec::new(),
            newly_nacked: Vec::new(),
            tx: None,
            last_queue: None,
        }
    }

    /// Gives the next delivery tag, remembering what it refers to if it must be settled.
    pub fn next_delivery_tag(
        &mut self,
        queue: &QueueRef,
        seq: Seq,
        needs_ack: bool,
        via_consumer: bool,
    ) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        if needs_ack {
            self.unacked.push_back((
                tag,
                Unsettled {
                    queue: queue.clone(),
                    seq,
                    via_consumer,
                },
            ));
        }
        tag
    }

    /// Gives the next delivery tag for a delivery nobody settles (a direct reply-to reply).
    pub fn next_unsettled_tag(&mut self) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        tag
    }

    /// Hands `settled` each delivery a settlement covers: all up to `tag` if `multiple` (all
    /// if tag is 0), else exactly `tag`. False if `tag` is unknown: as RabbitMQ, even a
    /// `multiple` settlement must name an outstanding tag.
    pub fn take_settled(
        &mut self,
        tag: u64,
        multiple: bool,
        mut settled: impl FnMut(Unsettled),
    ) -> bool {
        if multiple && tag == 0 {
            self.unacked.drain(..).for_each(|(_, u)| settled(u));
            return true;
        }
        // Most settlements name the oldest delivery.
        let idx = match self.unacked.front() {
            Some((t, _)) if *t == tag => 0,
            _ => match self.unacked.binary_search_by_key(&tag, |(t, _)| *t) {
                Ok(idx) => idx,
                Err(_) => return false,
            },
        };
        if multiple {
            self.unacked.drain(..=idx).for_each(|(_, u)| settled(u));
        } else if let Some((_, u)) = self.unacked.remove(idx) {
            settled(u);
        }
        true
    }

    /// A publish in confirm mode went to `queues` durable queues that must report it on
    /// disk; with none, it is confirmed at the next write.
    pub fn await_confirms(&mut self, seq: u64, queues: u32) {
        if queues == 0 {
            self.newly_acked.push(seq);
        } else {
            self.unconfirmed.insert(seq, (queues, false));
        }
    }

    /// One durable queue reported on a publish.
    pub fn queue_confirmed(&mut self, seq: u64, ok: bool) {
        let Some(entry) = self.unconfirmed.get_mut(&seq) else {
            return;
        };
        entry.0 -= 1;
        entry.1 |= !ok;
        if entry.0 == 0 {
            let (_, failed) = self.unconfirmed.remove(&seq).expect("present");
            if failed {
                self.newly_nacked.push(seq);
            } else {
                self.newly_acked.push(seq);
            }
        }
    }

    /// Writes the `basic.nack`s and `basic.ack`s for publishes settled since the last call.
    /// Every publish below the lowest still-unconfirmed one is settled, so one `multiple`
    /// ack covers those; later ones are acked one by one.
    pub fn write_confirms(&mut self, out: &mut BytesMut) {
        if self.newly_acked.is_empty() && self.newly_nacked.is_empty() {
            return;
        }
        for tag in self.newly_nacked.drain(..) {
            let nack = BasicNack {
                delivery_tag: tag,
                multiple: false,
                requeue: false,
            };
            encode_method(self.id, &Method::BasicNack(nack), out);
        }
        self.newly_acked.sort_unstable();
        let lowest_open = self
            .unconfirmed
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_publish_seq);
        let below = self.newly_acked.partition_point(|&s| s < lowest_open);
        if below > 0 {
            let ack = BasicAck {
                delivery_tag: self.newly_acked[below - 1],
                multiple: below > 1,
            };
            encode_method(self.id, &Method::BasicAck(ack), out);
        }
        for &tag in &self.newly_acked[below..] {
            encode_method(
                self.id,
                &Method::BasicAck(BasicAck {
                    delivery_tag: tag,
                    multiple: false,
                }),
                out,
            );
        }
        self.newly_acked.clear();
    }
}
