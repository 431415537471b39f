//! Per-channel state: delivery tags and what they map to, consumers, prefetch, confirm and
//! transaction modes, and the publish being assembled from method, header and body frames.

use crate::queue_task::QueueRef;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use warren_amqp::{encode_method, BasicAck, BasicPublish, ContentHeader, Method, ShortStr};
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
    pub header: Option<ContentHeader>,
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
    Ack { tag: u64, multiple: bool },
    Nack { tag: u64, multiple: bool, requeue: bool },
}

#[derive(Default)]
pub struct TxBuffer {
    pub publishes: Vec<(BasicPublish, ContentHeader, Bytes)>,
    pub settles: Vec<TxSettle>,
}

pub struct Channel {
    pub id: u16,
    pub state: ChannelState,
    pub assembling: Option<Assembling>,
    next_tag: u64,
    pub unacked: BTreeMap<u64, Unsettled>,
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
    /// Highest publish sequence number that is ready to be confirmed.
    pub confirm_ready: u64,
    /// Highest sequence number confirmed to the client.
    pub confirmed: u64,
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
            unacked: BTreeMap::new(),
            consumers: HashMap::new(),
            touched_queues: HashMap::new(),
            prefetch_count: 0,
            credit: Arc::new(ChannelCredit::default()),
            confirm: false,
            next_publish_seq: 1,
            confirm_ready: 0,
            confirmed: 0,
            tx: None,
            last_queue: None,
        }
    }

    /// Gives the next delivery tag, remembering what it refers to if it must be settled.
    pub fn next_delivery_tag(&mut self, queue: &QueueRef, seq: Seq, needs_ack: bool, via_consumer: bool) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        if needs_ack {
            self.unacked.insert(tag, Unsettled { queue: queue.clone(), seq, via_consumer });
        }
        tag
    }

    /// The deliveries a settlement covers: all up to `tag` if `multiple` (all if tag is 0),
    /// else exactly `tag`. `None` if `tag` is unknown: as RabbitMQ, even a `multiple`
    /// settlement must name an outstanding tag.
    pub fn take_settled(&mut self, tag: u64, multiple: bool) -> Option<Vec<Unsettled>> {
        if multiple && tag == 0 {
            return Some(std::mem::take(&mut self.unacked).into_values().collect());
        }
        if !self.unacked.contains_key(&tag) {
            return None;
        }
        if multiple {
            let rest = self.unacked.split_off(&(tag + 1));
            let taken = std::mem::replace(&mut self.unacked, rest);
            Some(taken.into_values().collect())
        } else {
            self.unacked.remove(&tag).map(|u| vec![u])
        }
    }

    /// Writes the `basic.ack` covering every publish confirmed since the last call.
    pub fn write_confirms(&mut self, out: &mut BytesMut) {
        if self.confirm_ready > self.confirmed {
            let multiple = self.confirm_ready > self.confirmed + 1;
            let ack = BasicAck { delivery_tag: self.confirm_ready, multiple };
            encode_method(self.id, &Method::BasicAck(ack), out);
            self.confirmed = self.confirm_ready;
        }
    }
}
