//! One AMQP channel's state: the protocol-neutral session pieces from core (its
//! `Publisher` for routing, batches and confirms; its `Subscriptions` for consumers, delivery
//! tags, settlement and the shared prefetch; its `Transaction` in tx mode), plus what is AMQP's
//! own: open/closing, the publish being assembled from its frames, the "current queue", and
//! how confirms are written (`basic.ack` with `multiple`).

use crate::queue_task::QueueRef;
use crate::target::Target;
use bytes::{Bytes, BytesMut};
use warren_amqp::content::Assembly;
use warren_amqp::{encode_method, BasicAck, BasicNack, BasicPublish, ContentHeader, Method, ShortStr};
use warren_core::publish::Publisher;
use rustc_hash::FxHashMap;
use warren_amqp::FieldTable;
use warren_core::queue::{ConsumerId, SessionId};
use warren_core::session::{Subscriptions, Transaction};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// We sent `channel.close` and wait for close-ok; other frames are discarded.
    Closing,
}

/// A publish buffered by a transaction.
pub type TxPublish = (BasicPublish, Box<ContentHeader>, Bytes);

pub struct Channel {
    pub id: u16,
    /// Who holds this channel's deliveries, as queues know it (unique per channel opened).
    pub session: SessionId,
    pub state: ChannelState,
    pub assembling: Option<Assembly>,
    pub publisher: Publisher<Target>,
    pub subs: Subscriptions<QueueRef>,
    pub tx: Option<Transaction<TxPublish>>,
    /// The queue most recently declared on this channel (AMQP's "current queue").
    pub last_queue: Option<ShortStr>,
    /// What `basic.consume` asked for, per consumer (shown by the management API).
    pub consumer_meta: FxHashMap<ConsumerId, ConsumerMeta>,
}

/// A consumer's `basic.consume` settings that its subscription does not keep.
#[derive(Clone, Debug, Default)]
pub struct ConsumerMeta {
    pub exclusive: bool,
    pub prefetch: u16,
    pub arguments: FieldTable,
}

impl Channel {
    pub fn new(id: u16, session: SessionId) -> Channel {
        Channel {
            id,
            session,
            state: ChannelState::Open,
            assembling: None,
            publisher: Publisher::new(),
            subs: Subscriptions::new(),
            tx: None,
            last_queue: None,
            consumer_meta: FxHashMap::default(),
        }
    }

    /// Writes the `basic.nack`s and `basic.ack`s for publishes settled since the last call;
    /// returns how many publishes they answer.
    /// Every publish below the lowest still-unsettled one is settled, so one `multiple` ack
    /// covers those; later ones are acked one by one.
    pub fn write_confirms(&mut self, out: &mut BytesMut) -> usize {
        let answers = self.publisher.take_answers();
        if answers.is_empty() {
            return 0;
        }
        let answered = answers.acked.len() + answers.nacked.len();
        for id in &answers.nacked {
            let nack = BasicNack {
                delivery_tag: id.0,
                multiple: false,
                requeue: false,
            };
            encode_method(self.id, &Method::BasicNack(nack), out);
        }
        let acked = &answers.acked;
        let below = acked.partition_point(|&id| id < answers.settled_below);
        if below > 0 {
            let ack = BasicAck {
                delivery_tag: acked[below - 1].0,
                multiple: below > 1,
            };
            encode_method(self.id, &Method::BasicAck(ack), out);
        }
        for id in &acked[below..] {
            let ack = BasicAck {
                delivery_tag: id.0,
                multiple: false,
            };
            encode_method(self.id, &Method::BasicAck(ack), out);
        }
        answered
    }
}
