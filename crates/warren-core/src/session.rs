//! The consuming side of a protocol session, whatever the protocol: [`Subscriptions`] keeps a
//! session's consumers (by tag and by id), numbers the deliveries it receives (AMQP's delivery
//! tags; an MQTT packet id or a STOMP ack id would map onto the same numbers), remembers which
//! queue and message each unsettled one is, settles them one by one or `multiple` (everything
//! up to a number), and splits the session's shared prefetch among its queues by granting
//! credit ([`shared`]). Settlements and grants are gathered per queue for the runtime to send,
//! one command per queue per batch.
//!
//! [`Transaction`] buffers a transacted session's publishes and settlements until commit.
//!
//! Nothing here sends anything or knows a socket; `Q` is the runtime's queue handle.

mod shared;
mod tx;

use crate::queue::{ConsumerId, Grant, Seq, Settlement};
use shared::SharedPrefetch;
use std::collections::VecDeque;
use warren_amqp::ShortStr;

pub use tx::{Transaction, TxSettle};

/// A settlement named a delivery the session does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery tag {0}")]
pub struct UnknownDelivery(pub u64);

/// A delivery the session has not settled yet.
#[derive(Debug, Clone)]
struct Unsettled<Q> {
    queue: Q,
    seq: Seq,
    /// Received through a consumer (counts against the shared prefetch), not `basic.get`.
    via_consumer: bool,
}

/// A consumer of this session.
#[derive(Debug, Clone)]
pub struct Subscription<Q> {
    pub id: ConsumerId,
    pub tag: ShortStr,
    pub queue: Q,
    pub no_ack: bool,
}

/// A session's consumers and unsettled deliveries (see the module docs).
#[derive(Debug)]
pub struct Subscriptions<Q> {
    next_tag: u64,
    /// In delivery-number order. Clients mostly settle in order, so this is a queue:
    /// settling the oldest is O(1), anything else a binary search.
    unsettled: VecDeque<(u64, Unsettled<Q>)>,
    /// Few consumers per session: a short list beats two maps.
    consumers: Vec<Subscription<Q>>,
    /// Queues this session consumed or got from: told when it ends.
    touched: Vec<Q>,
    /// Per-consumer prefetch for consumers created from now on.
    prefetch: u16,
    shared: SharedPrefetch<Q>,
    settlements: Vec<(Q, Settlement, Vec<Seq>)>,
}

impl<Q: Clone + Eq> Default for Subscriptions<Q> {
    fn default() -> Self {
        Subscriptions {
            next_tag: 1,
            unsettled: VecDeque::new(),
            consumers: Vec::new(),
            touched: Vec::new(),
            prefetch: 0,
            shared: SharedPrefetch::default(),
            settlements: Vec::new(),
        }
    }
}

impl<Q: Clone + Eq> Subscriptions<Q> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Prefetch for consumers created from now on (AMQP `basic.qos`, `global = false`).
    pub fn set_prefetch(&mut self, prefetch: u16) {
        self.prefetch = prefetch;
    }

    pub fn prefetch(&self) -> u16 {
        self.prefetch
    }

    /// The limit shared by all the session's consumers (AMQP `basic.qos`, `global = true`;
    /// 0 = none). Grants follow for the consumers' queues.
    pub fn set_shared_limit(&mut self, limit: u32) {
        self.shared.set_limit(limit);
    }

    pub fn shared_limit(&self) -> u32 {
        self.shared.limit()
    }

    pub fn has_consumer(&self, tag: &str) -> bool {
        self.consumers.iter().any(|c| c.tag.as_str() == tag)
    }

    pub fn consumer(&self, id: ConsumerId) -> Option<&Subscription<Q>> {
        self.consumers.iter().find(|c| c.id == id)
    }

    pub fn consumer_by_tag(&self, tag: &str) -> Option<&Subscription<Q>> {
        self.consumers.iter().find(|c| c.tag.as_str() == tag)
    }

    pub fn consumers(&self) -> impl Iterator<Item = &Subscription<Q>> {
        self.consumers.iter()
    }

    /// The session credit a new manual-ack consumer starts with (`None`: not limited by the
    /// session). Call before the queue accepts it; then [`Subscriptions::subscribed`] (or
    /// [`Subscriptions::not_subscribed`] if the queue refused).
    pub fn initial_credit(&mut self, id: ConsumerId, queue: &Q, no_ack: bool) -> Option<u32> {
        if no_ack {
            return None;
        }
        self.shared.consumer_joins(id, queue)
    }

    /// The queue refused the consumer [`Subscriptions::initial_credit`] was asked for.
    pub fn not_subscribed(&mut self, id: ConsumerId) {
        self.shared.consumer_leaves(id);
    }

    /// The queue took the consumer.
    pub fn subscribed(&mut self, subscription: Subscription<Q>) {
        self.touch(&subscription.queue);
        self.consumers.push(subscription);
    }

    /// Removes a consumer (cancelled by the client or by its queue). Its unsettled
    /// deliveries stay with the session.
    pub fn unsubscribe(&mut self, tag: &str) -> Option<Subscription<Q>> {
        let i = self.consumers.iter().position(|c| c.tag.as_str() == tag)?;
        let c = self.consumers.remove(i);
        self.shared.consumer_leaves(c.id);
        Some(c)
    }

    /// Remembers that the session holds (or held) messages of `queue`.
    pub fn touch(&mut self, queue: &Q) {
        if !self.touched.contains(queue) {
            self.touched.push(queue.clone());
        }
    }

    /// A queue delivered message `seq` to consumer `id`: its delivery number, or `None` if
    /// the consumer is gone (the queue takes the message back when it learns so).
    pub fn delivered(&mut self, id: ConsumerId, seq: Seq) -> Option<u64> {
        let c = self.consumers.iter().find(|c| c.id == id)?;
        let (queue, no_ack) = (c.queue.clone(), c.no_ack);
        self.shared.delivered(id, !no_ack);
        Some(self.next(queue, seq, !no_ack, true))
    }

    /// `basic.get` handed out `seq` of `queue`; settled later unless `no_ack`.
    pub fn got(&mut self, queue: &Q, seq: Seq, no_ack: bool) -> u64 {
        self.touch(queue);
        self.next(queue.clone(), seq, !no_ack, false)
    }

    /// A delivery number for something nobody settles (a direct reply-to reply).
    pub fn unsettled_number(&mut self) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        tag
    }

    fn next(&mut self, queue: Q, seq: Seq, settled_later: bool, via_consumer: bool) -> u64 {
        let tag = self.unsettled_number();
        if settled_later {
            self.unsettled.push_back((
                tag,
                Unsettled {
                    queue,
                    seq,
                    via_consumer,
                },
            ));
        }
        tag
    }

    /// Settles the delivery `tag`, or with `multiple` every one up to it (all of them if
    /// `tag` is 0). As RabbitMQ, even a `multiple` settlement must name an outstanding
    /// delivery.
    pub fn settle(
        &mut self,
        tag: u64,
        multiple: bool,
        how: Settlement,
    ) -> Result<(), UnknownDelivery> {
        let range = if multiple && tag == 0 {
            ..self.unsettled.len()
        } else {
            // Most settlements name the oldest delivery.
            let idx = match self.unsettled.front() {
                Some((t, _)) if *t == tag => 0,
                _ => self
                    .unsettled
                    .binary_search_by_key(&tag, |(t, _)| *t)
                    .map_err(|_| UnknownDelivery(tag))?,
            };
            if !multiple {
                let (_, u) = self.unsettled.remove(idx).expect("found");
                self.settled(u, how);
                return Ok(());
            }
            ..idx + 1
        };
        let taken: Vec<_> = self.unsettled.drain(range).collect();
        for (_, u) in taken {
            self.settled(u, how);
        }
        Ok(())
    }

    fn settled(&mut self, u: Unsettled<Q>, how: Settlement) {
        if u.via_consumer {
            self.shared.settled(1);
        }
        match self
            .settlements
            .iter_mut()
            .find(|(q, h, _)| *h == how && q == &u.queue)
        {
            Some((_, _, seqs)) => seqs.push(u.seq),
            None => self.settlements.push((u.queue, how, vec![u.seq])),
        }
    }

    /// Deliveries not settled yet.
    pub fn unsettled_count(&self) -> usize {
        self.unsettled.len()
    }

    /// The settlements made since the last call, per queue and kind, in settlement order.
    pub fn take_settlements(&mut self) -> Vec<(Q, Settlement, Vec<Seq>)> {
        std::mem::take(&mut self.settlements)
    }

    /// A queue reports that consumer `id` has messages waiting and no session credit.
    pub fn credit_wanted(&mut self, id: ConsumerId) {
        self.shared.wanted(id);
    }

    /// A queue gave back `n` unused credit of consumer `id`.
    pub fn credit_returned(&mut self, id: ConsumerId, n: u32) {
        self.shared.returned(id, n);
    }

    /// The credit changes decided since the last call, for the consumers' queues.
    pub fn take_grants(&mut self) -> Vec<(Q, ConsumerId, Grant)> {
        self.shared.take_grants()
    }

    /// The session ends: forgets everything it held, consumers included, and returns the
    /// queues to tell (they take back what the session held, in order).
    pub fn close(&mut self) -> Vec<Q> {
        self.unsettled.clear();
        for c in std::mem::take(&mut self.consumers) {
            self.shared.consumer_leaves(c.id);
        }
        self.settlements.clear();
        self.shared.take_grants();
        std::mem::take(&mut self.touched)
    }
}

#[cfg(test)]
mod tests;
