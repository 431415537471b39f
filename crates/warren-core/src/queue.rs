//! One queue's state: ready messages in FIFO order, consumers served round-robin within
//! their credit, and the deliveries awaiting acknowledgement.
//!
//! The queue numbers messages with a sequence number (`Seq`) at enqueue. Ready messages are
//! kept sorted by `Seq`, so a requeued message goes back to its original place and FIFO holds
//! apart from requeues. Delivery tags are a channel's business: a channel maps its tags to
//! (queue, `Seq`) and speaks to the queue in `Seq`s.
//!
//! Credit: a consumer receives a message only while (a) its manual-ack unacked count is below
//! its prefetch (0 = unlimited), (b) its channel's shared (`global`) prefetch has room, and
//! (c) fewer than [`WRITE_WINDOW`] of its deliveries are still unwritten by its connection.
//! (c) is what keeps a no-ack or unlimited-prefetch consumer from flooding the memory of a
//! connection that writes slower than the queue delivers: the connection returns write credit
//! with [`QueueState::credit`] as it writes.

use crate::{AmqpError, Message};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use warren_amqp::ShortStr;

/// A message's number within its queue, given at enqueue.
pub type Seq = u64;

/// Deliveries a consumer may have handed to its connection but not yet written to the socket.
pub const WRITE_WINDOW: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(pub u64);

/// A channel of a connection: who holds a delivery until it is acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    pub connection: u64,
    pub channel: u16,
}

/// A channel's shared prefetch (`basic.qos` with `global = true`), counted across all the
/// channel's consumers on all queues. Queues acquire at delivery; the channel releases on
/// ack, nack, reject and recover.
#[derive(Debug, Default)]
pub struct ChannelCredit {
    limit: AtomicU32,
    used: AtomicU32,
}

impl ChannelCredit {
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Takes one unit of credit if the limit allows.
    pub fn try_acquire(&self) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let limit = self.limit.load(Ordering::Relaxed);
            if limit != 0 && used >= limit {
                return false;
            }
            match self.used.compare_exchange_weak(used, used + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Returns `n` units; true if the channel was at its limit before (queues may be waiting).
    pub fn release(&self, n: u32) -> bool {
        let before = self.used.fetch_sub(n.min(self.used.load(Ordering::Relaxed)), Ordering::AcqRel);
        let limit = self.limit.load(Ordering::Relaxed);
        limit != 0 && before >= limit
    }
}

/// What `basic.consume` asks of a queue. `sink` is the runtime's handle for delivering to the
/// consumer's connection; the queue only stores it and hands it back in `dispatch`.
#[derive(Debug, Clone)]
pub struct ConsumerSpec<S> {
    pub id: ConsumerId,
    pub tag: ShortStr,
    pub owner: ChannelKey,
    pub no_ack: bool,
    /// Per-consumer prefetch; 0 = unlimited.
    pub prefetch: u16,
    pub exclusive: bool,
    pub channel_credit: Option<Arc<ChannelCredit>>,
    pub sink: S,
}

#[derive(Debug)]
struct Consumer<S> {
    spec: ConsumerSpec<S>,
    /// Manual-ack deliveries not yet acked, nacked or rejected.
    unacked: u32,
    /// Deliveries handed to the connection and not yet written.
    unwritten: u32,
}

impl<S> Consumer<S> {
    fn has_room(&self) -> bool {
        self.unwritten < WRITE_WINDOW && (self.spec.no_ack || self.spec.prefetch == 0 || self.unacked < self.spec.prefetch as u32)
    }
}

/// A message waiting in the queue.
#[derive(Debug, Clone)]
pub struct Queued {
    pub seq: Seq,
    pub message: Arc<Message>,
    pub redelivered: bool,
}

#[derive(Debug)]
struct Unacked {
    queued: Queued,
    consumer: Option<ConsumerId>,
    owner: ChannelKey,
}

/// A message handed out by `dispatch` or `get`.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: Seq,
    pub message: Arc<Message>,
    pub redelivered: bool,
}

#[derive(Debug)]
pub struct QueueState<S> {
    ready: VecDeque<Queued>,
    ready_bytes: usize,
    unacked: HashMap<Seq, Unacked>,
    consumers: Vec<Consumer<S>>,
    next_consumer: usize,
    next_seq: Seq,
}

impl<S> Default for QueueState<S> {
    fn default() -> Self {
        QueueState {
            ready: VecDeque::new(),
            ready_bytes: 0,
            unacked: HashMap::new(),
            consumers: Vec::new(),
            next_consumer: 0,
            next_seq: 1,
        }
    }
}

impl<S> QueueState<S> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn message_count(&self) -> usize {
        self.ready.len()
    }

    pub fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    pub fn consumers(&self) -> impl Iterator<Item = &ConsumerSpec<S>> {
        self.consumers.iter().map(|c| &c.spec)
    }

    pub fn publish(&mut self, message: Arc<Message>) -> Seq {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.ready_bytes += message.body_size();
        self.ready.push_back(Queued { seq, message, redelivered: false });
        seq
    }

    /// Adds a consumer. `queue_desc` is `queue 'q' in vhost '/'` for the error text.
    pub fn add_consumer(&mut self, spec: ConsumerSpec<S>, queue_desc: &str) -> Result<(), AmqpError> {
        if self.consumers.iter().any(|c| c.spec.exclusive) || (spec.exclusive && !self.consumers.is_empty()) {
            return Err(AmqpError::access_refused(format!("{queue_desc} in exclusive use")));
        }
        self.consumers.push(Consumer { spec, unacked: 0, unwritten: 0 });
        Ok(())
    }

    /// Removes a consumer. Its unacked deliveries stay with its channel (they can still be
    /// acked), as AMQP requires of `basic.cancel`.
    pub fn cancel_consumer(&mut self, id: ConsumerId) -> Option<ConsumerSpec<S>> {
        let idx = self.consumers.iter().position(|c| c.spec.id == id)?;
        let consumer = self.consumers.remove(idx);
        if self.next_consumer > idx {
            self.next_consumer -= 1;
        }
        Some(consumer.spec)
    }

    /// Hands ready messages to consumers with room, round-robin, calling `emit` for each.
    /// Returns how many were delivered.
    pub fn dispatch(&mut self, mut emit: impl FnMut(&ConsumerSpec<S>, Delivery)) -> usize {
        let mut delivered = 0;
        let n = self.consumers.len();
        while !self.ready.is_empty() && n > 0 {
            let Some(idx) = self.next_with_room() else { break };
            let queued = self.ready.pop_front().expect("checked non-empty");
            self.ready_bytes -= queued.message.body_size();
            let consumer = &mut self.consumers[idx];
            consumer.unwritten += 1;
            let delivery = Delivery { seq: queued.seq, message: queued.message.clone(), redelivered: queued.redelivered };
            if !consumer.spec.no_ack {
                consumer.unacked += 1;
                self.unacked.insert(queued.seq, Unacked { queued, consumer: Some(consumer.spec.id), owner: consumer.spec.owner });
            }
            emit(&consumer.spec, delivery);
            self.next_consumer = (idx + 1) % n;
            delivered += 1;
        }
        delivered
    }

    /// The next consumer in round-robin order that may take a message now; takes the
    /// channel credit for it.
    fn next_with_room(&mut self) -> Option<usize> {
        let n = self.consumers.len();
        for i in 0..n {
            let idx = (self.next_consumer + i) % n;
            let c = &self.consumers[idx];
            if !c.has_room() {
                continue;
            }
            if !c.spec.no_ack {
                if let Some(credit) = &c.spec.channel_credit {
                    if !credit.try_acquire() {
                        continue;
                    }
                }
            }
            return Some(idx);
        }
        None
    }

    /// `basic.get`: the head message, and how many remain ready after it.
    pub fn get(&mut self, owner: ChannelKey, no_ack: bool) -> Option<(Delivery, usize)> {
        let queued = self.ready.pop_front()?;
        self.ready_bytes -= queued.message.body_size();
        let delivery = Delivery { seq: queued.seq, message: queued.message.clone(), redelivered: queued.redelivered };
        if !no_ack {
            self.unacked.insert(queued.seq, Unacked { queued, consumer: None, owner });
        }
        Some((delivery, self.ready.len()))
    }

    /// The connection wrote `n` of this consumer's deliveries.
    pub fn credit(&mut self, consumer: ConsumerId, n: u32) {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == consumer) {
            c.unwritten = c.unwritten.saturating_sub(n);
        }
    }

    fn take_unacked(&mut self, seq: Seq) -> Option<Queued> {
        let u = self.unacked.remove(&seq)?;
        if let Some(id) = u.consumer {
            if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == id) {
                c.unacked = c.unacked.saturating_sub(1);
            }
        }
        Some(u.queued)
    }

    /// Positive acknowledgement: the messages leave the queue; `removed` sees each one (the
    /// runtime records durable ones as gone). Unknown `Seq`s are ignored (the channel has
    /// already validated its delivery tags).
    pub fn ack(&mut self, seqs: &[Seq], mut removed: impl FnMut(&Queued)) {
        for &seq in seqs {
            if let Some(q) = self.take_unacked(seq) {
                removed(&q);
            }
        }
    }

    /// Puts back a message recovered from disk (at start-up, in `Seq` order), keeping its
    /// number so later messages continue after it.
    pub fn restore(&mut self, seq: Seq, message: Arc<Message>, redelivered: bool) {
        debug_assert!(self.ready.back().map_or(true, |b| b.seq < seq), "restore in seq order");
        self.next_seq = self.next_seq.max(seq + 1);
        self.ready_bytes += message.body_size();
        self.ready.push_back(Queued { seq, message, redelivered });
    }

    /// Makes the next `publish` number at least `seq` (after recovery of a log whose last
    /// messages were all acked).
    pub fn continue_after(&mut self, seq: Seq) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// Negative acknowledgement without requeue: returns the messages removed (for
    /// dead-lettering).
    pub fn discard(&mut self, seqs: &[Seq]) -> Vec<Queued> {
        seqs.iter().filter_map(|&s| self.take_unacked(s)).collect()
    }

    /// Puts unacked messages back at their original place, marked redelivered.
    pub fn requeue(&mut self, seqs: &[Seq]) {
        for &seq in seqs {
            if let Some(mut q) = self.take_unacked(seq) {
                q.redelivered = true;
                self.insert_ready(q);
            }
        }
    }

    fn insert_ready(&mut self, q: Queued) {
        self.ready_bytes += q.message.body_size();
        // Requeued messages usually belong at or near the head.
        let pos = self.ready.partition_point(|r| r.seq < q.seq);
        self.ready.insert(pos, q);
    }

    /// A channel closed (or its connection did): its consumers leave and every delivery it
    /// held comes back in original order, marked redelivered. Returns the removed consumers.
    pub fn channel_closed(&mut self, owner: ChannelKey) -> Vec<ConsumerSpec<S>> {
        let mut held: Vec<Seq> = self.unacked.iter().filter(|(_, u)| u.owner == owner).map(|(s, _)| *s).collect();
        held.sort_unstable();
        self.requeue(&held);
        let mut removed = Vec::new();
        let mut i = 0;
        while i < self.consumers.len() {
            if self.consumers[i].spec.owner == owner {
                removed.push(self.consumers.remove(i).spec);
            } else {
                i += 1;
            }
        }
        if self.next_consumer >= self.consumers.len() {
            self.next_consumer = 0;
        }
        removed
    }

    /// Removes every ready message (not the unacked ones, as RabbitMQ); `removed` sees each.
    /// Returns the count.
    pub fn purge(&mut self, mut removed: impl FnMut(&Queued)) -> usize {
        let n = self.ready.len();
        for q in self.ready.drain(..) {
            removed(&q);
        }
        self.ready_bytes = 0;
        n
    }

    /// Removes every consumer (the queue is being deleted).
    pub fn drain_consumers(&mut self) -> Vec<ConsumerSpec<S>> {
        self.next_consumer = 0;
        self.consumers.drain(..).map(|c| c.spec).collect()
    }
}

#[cfg(test)]
mod tests;
