//! The queue's ordering and credit rules: ready messages (FIFO, or FIFO per priority level),
//! consumers served within their credit, the deliveries awaiting settlement, and the
//! queue-argument rules that make messages leave early: TTL, length limits, delivery limits
//! and rejection. `QueueMachine` drives it and turns its results into effects.
//!
//! Ready messages are kept sorted by `Seq` within their priority, so a requeued message goes
//! back to its original place and FIFO holds apart from requeues. Messages that die
//! (rejected, expired, dropped at the length limit, over the delivery limit) are collected as
//! [`Dead`] records for the machine to take with [`QueueState::take_dead`].

use super::consumers::{self, Consumer};
use super::ready::Ready;
use super::{
    with_delivery_count, ConsumerId, ConsumerSpec, Content, DeathReason, Delivery, Grant, Paged,
    Queued, Seq, SessionId, NO_DEADLINE,
};
use crate::args::{Overflow, QueueArgs, QueueType};
use crate::{BrokerError, Message};
use rustc_hash::FxHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

#[derive(Debug)]
struct Unacked {
    queued: Queued,
    consumer: Option<ConsumerId>,
    session: SessionId,
}

/// A message that left the queue without an ack. `seq` is `None` for a publish the queue
/// refused (`reject-publish-dlx`), which was never enqueued.
#[derive(Debug, Clone)]
pub struct Dead {
    pub seq: Option<Seq>,
    pub content: Content,
    pub reason: DeathReason,
}

/// What became of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Accepted(Seq),
    /// Refused at the length limit (`x-overflow` = `reject-publish` or `reject-publish-dlx`).
    Refused,
}

#[derive(Debug)]
pub struct QueueState {
    args: QueueArgs,
    ready: Ready,
    ready_bytes: usize,
    unacked: HashMap<Seq, Unacked, BuildHasherDefault<FxHasher>>,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    next_seq: Seq,
    /// Some consumer has a non-zero `x-priority` (selection then looks at priorities).
    prioritized: bool,
    dead: Vec<Dead>,
    /// Last consume, get or declare, or when the last consumer left (`x-expires`).
    last_used_ms: u64,
    /// The latest time the runtime gave (`expire`, or a publish that needed it): messages
    /// whose deadline is before it are not handed out.
    now_ms: u64,
    /// Footprint of the loaded ready messages, and the budget it may take (paging).
    loaded_bytes: usize,
    memory_budget: usize,
    /// Ready messages that are paged out.
    paged: usize,
}

impl Default for QueueState {
    fn default() -> Self {
        QueueState::with_args(QueueArgs::default())
    }
}

impl QueueState {
    #[cfg(test)]
    /// A plain classic queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue with the settings of its arguments.
    pub fn with_args(args: QueueArgs) -> Self {
        QueueState {
            ready: Ready::new(args.max_priority),
            args,
            ready_bytes: 0,
            unacked: HashMap::default(),
            consumers: Vec::new(),
            next_consumer: 0,
            next_seq: 1,
            prioritized: false,
            dead: Vec::new(),
            last_used_ms: 0,
            now_ms: 0,
            loaded_bytes: 0,
            memory_budget: usize::MAX,
            paged: 0,
        }
    }

    pub fn args(&self) -> &QueueArgs {
        &self.args
    }

    /// Runs the queue with new settings (a policy changed). Messages already queued keep
    /// their deadlines, as in RabbitMQ; a lower length limit drops the oldest at once with
    /// `drop-head`. `x-max-priority` and the queue type are not policy settings: they stay.
    pub fn set_args(&mut self, args: QueueArgs) {
        debug_assert_eq!(args.max_priority, self.args.max_priority);
        debug_assert_eq!(args.queue_type, self.args.queue_type);
        self.args = args;
        self.drop_over_limit();
    }

    pub fn message_count(&self) -> usize {
        self.ready.len()
    }

    /// Body bytes of the ready messages.
    pub fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// True if publishing `message` here needs the time (a TTL applies to it). The runtime
    /// reads its clock only then.
    pub fn needs_time(&self, message: &Message) -> bool {
        self.args.message_ttl_ms.is_some() || message.properties.expiration.is_some()
    }

    /// When a message enqueued at `enqueued_ms` expires: the sooner of the queue's TTL and
    /// the message's `expiration` (validated as an integer at publish).
    pub fn deadline(&self, message: &Message, enqueued_ms: u64) -> u64 {
        let per_message = message
            .properties
            .expiration
            .as_ref()
            .and_then(|e| e.parse::<u64>().ok());
        match (self.args.message_ttl_ms, per_message) {
            (None, None) => NO_DEADLINE,
            (Some(a), Some(b)) => enqueued_ms.saturating_add(a.min(b)),
            (Some(t), None) | (None, Some(t)) => enqueued_ms.saturating_add(t),
        }
    }

    /// Enqueues a message. `now_ms` is read only if [`QueueState::needs_time`]. At the length
    /// limit, `drop-head` drops the oldest messages (reason `maxlen`) and the reject modes
    /// refuse this one.
    pub fn publish(&mut self, message: Arc<Message>, now_ms: u64) -> Enqueued {
        if self.args.overflow != Overflow::DropHead && self.would_overflow(message.body_size()) {
            if self.args.overflow == Overflow::RejectPublishDlx {
                self.dead.push(Dead {
                    seq: None,
                    content: Content::Loaded(message),
                    reason: DeathReason::Maxlen,
                });
            }
            return Enqueued::Refused;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.ready_bytes += message.body_size();
        self.loaded_bytes += message.footprint();
        let expires_at_ms = self.deadline(&message, now_ms);
        if expires_at_ms != NO_DEADLINE {
            self.now_ms = self.now_ms.max(now_ms);
        }
        self.ready.push_back(Queued {
            seq,
            content: Content::Loaded(message),
            redelivered: false,
            delivery_count: 0,
            expires_at_ms,
        });
        self.drop_over_limit();
        Enqueued::Accepted(seq)
    }

    /// Would a message of `size` body bytes take the ready messages past a limit?
    fn would_overflow(&self, size: usize) -> bool {
        self.args
            .max_length
            .is_some_and(|max| self.ready.len() as u64 >= max)
            || self
                .args
                .max_length_bytes
                .is_some_and(|max| (self.ready_bytes + size) as u64 > max)
    }

    /// `drop-head`: drops the next messages to deliver while the ready ones exceed a limit.
    fn drop_over_limit(&mut self) {
        if self.args.overflow != Overflow::DropHead {
            return;
        }
        let (max_len, max_bytes) = (
            self.args.max_length.unwrap_or(u64::MAX),
            self.args.max_length_bytes.unwrap_or(u64::MAX),
        );
        while self.ready.len() as u64 > max_len || self.ready_bytes as u64 > max_bytes {
            let Some(q) = self.ready.pop_front() else {
                break;
            };
            self.left_ready(&q);
            self.dead.push(Dead {
                seq: Some(q.seq),
                content: q.content,
                reason: DeathReason::Maxlen,
            });
        }
    }

    /// Accounting for a message that leaves the ready ones.
    fn left_ready(&mut self, q: &Queued) {
        self.ready_bytes -= q.content.body_size();
        match &q.content {
            Content::Loaded(m) => self.loaded_bytes -= m.footprint(),
            Content::Paged(_) => self.paged -= 1,
        }
    }

    /// Accounting for a message that joins the ready ones.
    fn joined_ready(&mut self, q: &Queued) {
        self.ready_bytes += q.content.body_size();
        match &q.content {
            Content::Loaded(m) => self.loaded_bytes += m.footprint(),
            Content::Paged(_) => self.paged += 1,
        }
    }

    /// Sets how much memory (by [`Message::footprint`]) loaded ready messages may hold
    /// before the runtime pages out more.
    pub fn set_memory_budget(&mut self, bytes: usize) {
        self.memory_budget = bytes;
    }

    pub fn memory_budget(&self) -> usize {
        self.memory_budget
    }

    /// Loaded ready messages hold more than the budget.
    pub fn over_budget(&self) -> bool {
        self.loaded_bytes > self.memory_budget
    }

    /// Footprint of the loaded ready messages.
    pub fn loaded_bytes(&self) -> usize {
        self.loaded_bytes
    }

    #[cfg(test)]
    /// Ready messages that are paged out.
    pub fn paged_count(&self) -> usize {
        self.paged
    }

    #[cfg(test)]
    /// The next message to deliver is paged out: [`QueueState::load`] it first.
    pub fn head_is_paged(&self) -> bool {
        self.ready
            .front()
            .is_some_and(|q| matches!(q.content, Content::Paged(_)))
    }

    /// Pages out the ready message `seq` (of priority `priority`): the runtime stored its
    /// content at `place`. False if it is not a loaded ready message.
    pub fn page(&mut self, seq: Seq, priority: u8, place: u64) -> bool {
        let Some(q) = self.ready.get_mut(seq, priority) else {
            return false;
        };
        let Content::Loaded(m) = &q.content else {
            return false;
        };
        let footprint = m.footprint();
        q.content = Content::Paged(Paged {
            place,
            body_size: m.body_size() as u32,
            priority,
            persistent: m.is_persistent(),
        });
        self.loaded_bytes -= footprint;
        self.paged += 1;
        true
    }

    /// Puts back the content of a paged ready message. False if `seq` is not one.
    pub fn load(&mut self, seq: Seq, priority: u8, message: Arc<Message>) -> bool {
        let Some(q) = self.ready.get_mut(seq, priority) else {
            return false;
        };
        if !matches!(q.content, Content::Paged(_)) {
            return false;
        }
        self.loaded_bytes += message.footprint();
        q.content = Content::Loaded(message);
        self.paged -= 1;
        true
    }

    /// Takes a ready message out of the queue without its dying (the runtime could not read
    /// a paged message back).
    pub fn remove_ready(&mut self, seq: Seq, priority: u8) -> Option<Queued> {
        let q = self.ready.remove(seq, priority)?;
        self.left_ready(&q);
        Some(q)
    }

    /// The paged messages among the next `n` to deliver, in delivery order: the runtime reads
    /// them back ([`QueueState::load`]) ahead of delivery.
    pub fn paged_ahead(&self, n: usize) -> Vec<(Seq, Paged)> {
        if self.paged == 0 {
            return Vec::new();
        }
        self.ready
            .iter()
            .take(n)
            .filter_map(|q| q.content.paged().map(|p| (q.seq, p)))
            .collect()
    }

    /// Loaded ready messages past the budget, latest in delivery order first, whose paging
    /// would bring the loaded ones back under it (memory pressure lowered the budget). It
    /// walks from the end of the queue over paged messages too: the runtime calls it when
    /// the budget drops, not per message.
    pub fn excess_loaded(&self) -> Vec<(Seq, Arc<Message>)> {
        let mut excess = self.loaded_bytes.saturating_sub(self.memory_budget);
        let mut out = Vec::new();
        if excess == 0 {
            return out;
        }
        for q in self.ready.iter_rev() {
            if excess == 0 {
                break;
            }
            if let Content::Loaded(m) = &q.content {
                excess = excess.saturating_sub(m.footprint());
                out.push((q.seq, m.clone()));
            }
        }
        out
    }

    /// Adds a consumer. `queue_desc` is `queue 'q' in vhost '/'` for the error text.
    pub fn add_consumer(
        &mut self,
        spec: ConsumerSpec,
        queue_desc: &str,
    ) -> Result<(), BrokerError> {
        if self.consumers.iter().any(|c| c.spec.exclusive)
            || (spec.exclusive && !self.consumers.is_empty())
        {
            return Err(BrokerError::access_refused(format!(
                "{queue_desc} in exclusive use"
            )));
        }
        self.prioritized |= spec.priority != 0;
        self.consumers.push(Consumer::new(spec));
        Ok(())
    }

    /// Removes a consumer. Its unacked deliveries stay with its channel (they can still be
    /// acked), as AMQP requires of `basic.cancel`.
    pub fn cancel_consumer(&mut self, id: ConsumerId) -> Option<ConsumerSpec> {
        let idx = self.consumers.iter().position(|c| c.spec.id == id)?;
        let consumer = self.consumers.remove(idx);
        if self.next_consumer > idx {
            self.next_consumer -= 1;
        }
        self.consumers_changed();
        Some(consumer.spec)
    }

    fn consumers_changed(&mut self) {
        if self.next_consumer >= self.consumers.len() {
            self.next_consumer = 0;
        }
        self.prioritized = self.consumers.iter().any(|c| c.spec.priority != 0);
    }

    /// The message as this queue hands it out: quorum queues add `x-delivery-count` once a
    /// message has been returned (and, on `basic.get`, always).
    fn outgoing(&self, q: &Queued, get: bool) -> Arc<Message> {
        let Content::Loaded(message) = &q.content else {
            unreachable!("only loaded messages are handed out (pop_live stops at paged ones)");
        };
        if self.args.queue_type == QueueType::Quorum && (get || q.delivery_count > 0) {
            Arc::new(with_delivery_count(message, q.delivery_count))
        } else {
            message.clone()
        }
    }

    /// Hands ready messages to consumers with room, calling `emit` for each. Returns how
    /// many were delivered.
    pub fn dispatch(&mut self, mut emit: impl FnMut(&ConsumerSpec, Delivery)) -> usize {
        let mut delivered = 0;
        while !self.ready.is_empty() && !self.consumers.is_empty() {
            let Some(idx) = consumers::next_with_room(
                &self.consumers,
                self.next_consumer,
                self.args.single_active_consumer,
                self.prioritized,
            ) else {
                break;
            };
            let Some(queued) = self.pop_live() else { break };
            let message = self.outgoing(&queued, false);
            let consumer = &mut self.consumers[idx];
            consumer.took_one();
            let delivery = Delivery {
                seq: queued.seq,
                message,
                redelivered: queued.redelivered,
            };
            if !consumer.spec.no_ack {
                self.unacked.insert(
                    queued.seq,
                    Unacked {
                        queued,
                        consumer: Some(consumer.spec.id),
                        session: consumer.spec.session,
                    },
                );
            }
            emit(&consumer.spec, delivery);
            self.next_consumer = (idx + 1) % self.consumers.len();
            delivered += 1;
        }
        delivered
    }

    /// The next message to hand out. Messages found expired at the head on the way (their
    /// deadline is before the last time the runtime gave) die instead, as RabbitMQ drops
    /// expired heads after each fetch.
    /// A paged head stops it (the runtime loads it first), unless it is expired.
    fn pop_live(&mut self) -> Option<Queued> {
        loop {
            let head = self.ready.front()?;
            let expired = head.expires_at_ms < self.now_ms;
            if !expired && matches!(head.content, Content::Paged(_)) {
                return None;
            }
            let q = self.ready.pop_front()?;
            self.left_ready(&q);
            if expired {
                self.dead.push(Dead {
                    seq: Some(q.seq),
                    content: q.content,
                    reason: DeathReason::Expired,
                });
                continue;
            }
            return Some(q);
        }
    }

    /// `basic.get`: the head message, and how many remain ready after it. The runtime calls
    /// [`QueueState::expire`] first when a deadline may have passed.
    pub fn get(&mut self, session: SessionId, no_ack: bool) -> Option<(Delivery, usize)> {
        let queued = self.pop_live()?;
        let delivery = Delivery {
            seq: queued.seq,
            message: self.outgoing(&queued, true),
            redelivered: queued.redelivered,
        };
        if !no_ack {
            self.unacked.insert(
                queued.seq,
                Unacked {
                    queued,
                    consumer: None,
                    session,
                },
            );
        }
        Some((delivery, self.ready.len()))
    }

    /// The session wrote `n` of this consumer's deliveries.
    pub fn written(&mut self, consumer: ConsumerId, n: u32) {
        if let Some(c) = self.consumer_mut(consumer) {
            c.unwritten = c.unwritten.saturating_sub(n);
        }
    }

    /// Changes a consumer's session credit; returns the credit given back (for
    /// [`Grant::Reclaim`]), with the consumer's session.
    pub fn grant(&mut self, consumer: ConsumerId, grant: Grant) -> Option<(SessionId, u32)> {
        let c = self.consumer_mut(consumer)?;
        let returned = c.grant(grant);
        Some((c.spec.session, returned))
    }

    /// Session-limited consumers that hold no session credit while messages wait for them:
    /// each is reported once until it is granted some (`Effect::CreditWanted`).
    pub fn credit_wanted(&mut self) -> Vec<(SessionId, ConsumerId)> {
        if self.ready.is_empty() {
            return Vec::new();
        }
        self.consumers
            .iter_mut()
            .filter_map(|c| c.wants_credit().then_some((c.spec.session, c.spec.id)))
            .collect()
    }

    fn consumer_mut(&mut self, id: ConsumerId) -> Option<&mut Consumer> {
        self.consumers.iter_mut().find(|c| c.spec.id == id)
    }

    fn take_unacked(&mut self, seq: Seq) -> Option<Queued> {
        let u = self.unacked.remove(&seq)?;
        if let Some(id) = u.consumer {
            if let Some(c) = self.consumer_mut(id) {
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
    /// number so later messages continue after it. `enqueued_ms` (when it was first
    /// enqueued) is read only if a TTL applies to it. With `paged_at`, only its index entry
    /// is kept (the runtime can read it back from there).
    pub fn restore(
        &mut self,
        seq: Seq,
        message: Arc<Message>,
        redelivered: bool,
        enqueued_ms: u64,
        paged_at: Option<u64>,
    ) {
        self.next_seq = self.next_seq.max(seq + 1);
        let expires_at_ms = self.deadline(&message, enqueued_ms);
        let content = match paged_at {
            None => Content::Loaded(message),
            Some(place) => Content::Paged(Paged {
                place,
                body_size: message.body_size() as u32,
                priority: message.properties.priority.unwrap_or(0),
                persistent: message.is_persistent(),
            }),
        };
        // A message handed out before the restart was in effect returned by its consumer.
        let delivery_count = redelivered as u32;
        let q = Queued {
            seq,
            content,
            redelivered,
            delivery_count,
            expires_at_ms,
        };
        self.joined_ready(&q);
        self.ready.push_back(q);
    }

    /// Makes the next `publish` number at least `seq` (after recovery of a log whose last
    /// messages were all acked).
    pub fn continue_after(&mut self, seq: Seq) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// Negative acknowledgement without requeue: the messages die with reason `rejected`.
    pub fn discard(&mut self, seqs: &[Seq]) {
        for &seq in seqs {
            if let Some(q) = self.take_unacked(seq) {
                self.dead.push(Dead {
                    seq: Some(q.seq),
                    content: q.content,
                    reason: DeathReason::Rejected,
                });
            }
        }
    }

    /// Puts unacked messages back at their original place, marked redelivered. A message
    /// returned more often than the queue's `x-delivery-limit` dies instead (reason
    /// `delivery_limit`); with `drop-head`, returns can push older messages out.
    pub fn requeue(&mut self, seqs: &[Seq]) {
        for &seq in seqs {
            if let Some(mut q) = self.take_unacked(seq) {
                q.redelivered = true;
                q.delivery_count = q.delivery_count.saturating_add(1);
                if self
                    .args
                    .delivery_limit
                    .is_some_and(|limit| q.delivery_count as i64 > limit)
                {
                    self.dead.push(Dead {
                        seq: Some(q.seq),
                        content: q.content,
                        reason: DeathReason::DeliveryLimit,
                    });
                    continue;
                }
                self.joined_ready(&q);
                self.ready.insert(q);
            }
        }
        self.drop_over_limit();
    }

    /// A session ended: its consumers leave and every delivery it held comes back in
    /// original order, marked redelivered. Returns the removed consumers.
    pub fn session_closed(&mut self, session: SessionId) -> Vec<ConsumerSpec> {
        let mut held: Vec<Seq> = self
            .unacked
            .iter()
            .filter(|(_, u)| u.session == session)
            .map(|(s, _)| *s)
            .collect();
        held.sort_unstable();
        self.requeue(&held);
        let mut removed = Vec::new();
        let mut i = 0;
        while i < self.consumers.len() {
            if self.consumers[i].spec.session == session {
                removed.push(self.consumers.remove(i).spec);
            } else {
                i += 1;
            }
        }
        self.consumers_changed();
        removed
    }

    /// Removes every ready message (not the unacked ones, as RabbitMQ); `removed` sees each.
    /// Returns the count. Purged messages are not dead-lettered.
    pub fn purge(&mut self, mut removed: impl FnMut(&Queued)) -> usize {
        let n = self.ready.len();
        for q in self.ready.drain() {
            removed(&q);
        }
        self.ready_bytes = 0;
        self.loaded_bytes = 0;
        self.paged = 0;
        n
    }

    /// Removes every consumer (the queue is being deleted).
    pub fn drain_consumers(&mut self) -> Vec<ConsumerSpec> {
        self.next_consumer = 0;
        self.prioritized = false;
        self.consumers.drain(..).map(|c| c.spec).collect()
    }

    /// Removes the messages whose TTL ran out before `now_ms` (reason `expired`). As in
    /// RabbitMQ, only messages at the head of the queue (of each priority) are looked at, so
    /// the cost is that of the messages removed, not of the queue's length. A message is
    /// live through the millisecond of its deadline: a TTL of 0 still lets a consumer that is
    /// waiting take the message in the batch that enqueued it.
    pub fn expire(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let mut gone = Vec::new();
        self.ready
            .drain_expired_heads(|q| q.expires_at_ms < now_ms, |q| gone.push(q));
        for q in gone {
            self.left_ready(&q);
            self.dead.push(Dead {
                seq: Some(q.seq),
                content: q.content,
                reason: DeathReason::Expired,
            });
        }
    }

    /// The earliest deadline among the heads, if any: [`QueueState::expire`] has work from
    /// the millisecond after it.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.ready
            .heads()
            .map(|q| q.expires_at_ms)
            .filter(|&d| d != NO_DEADLINE)
            .min()
    }

    /// The time moved on: messages whose deadline is before `now_ms` are no longer handed out.
    pub fn advance(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// The queue was used at `now_ms` (consume, get, declare) or lost its last consumer:
    /// `x-expires` counts from here.
    pub fn touch(&mut self, now_ms: u64) {
        self.last_used_ms = now_ms;
    }

    /// When the queue expires (`x-expires`) unless used before: only while it has no
    /// consumers.
    pub fn unused_deadline_ms(&self) -> Option<u64> {
        match self.args.expires_ms {
            Some(expires) if self.consumers.is_empty() => {
                Some(self.last_used_ms.saturating_add(expires))
            }
            _ => None,
        }
    }

    /// Messages that died since the last call, oldest first.
    pub fn take_dead(&mut self) -> Vec<Dead> {
        std::mem::take(&mut self.dead)
    }

    /// True if [`QueueState::take_dead`] has something.
    pub fn has_dead(&self) -> bool {
        !self.dead.is_empty()
    }

    /// The ready messages in delivery order (tests and diagnostics).
    pub fn ready_messages(&self) -> impl Iterator<Item = &Queued> {
        self.ready.iter()
    }
}
