//! A session's shared prefetch (AMQP `basic.qos` with `global = true`): at most `limit`
//! unsettled deliveries across all the session's manual-ack consumers, on any number of
//! queues — split among those queues by granting credit, so that each queue's behaviour
//! depends only on the commands it receives (see `crate::queue`, "Credit").
//!
//! Accounting: `outstanding` deliveries are unsettled, and each limited consumer holds
//! `granted` credit its queue has not used yet. The invariant is
//! `outstanding + Σ granted ≤ limit`, so the limit is never exceeded. Credit flows:
//! - a consumer joins with whatever is free;
//! - a queue that has messages and no credit says so (`wanted`); free credit is shared among
//!   the consumers that want it, round-robin; if none is free, consumers holding credit they
//!   do not use are asked to give it back (`Grant::Reclaim`), and it goes to those that want;
//! - a settlement frees credit for the consumers that want it.
//!
//! (A change of the limit while deliveries are in flight can leave `outstanding` above the
//! new limit for a while, as in RabbitMQ: no new credit is granted until it is back under.)

use crate::queue::{ConsumerId, Grant};

#[derive(Debug)]
struct Limited<Q> {
    id: ConsumerId,
    queue: Q,
    granted: u32,
    wanting: bool,
    /// Asked to give back its credit, answer pending.
    reclaiming: bool,
}

#[derive(Debug)]
pub(super) struct SharedPrefetch<Q> {
    limit: u32,
    outstanding: u32,
    /// Every manual-ack consumer of the session (limited while `limit > 0`).
    consumers: Vec<Limited<Q>>,
    grants: Vec<(Q, ConsumerId, Grant)>,
    /// Where the next round-robin share starts.
    turn: usize,
}

impl<Q> Default for SharedPrefetch<Q> {
    fn default() -> Self {
        SharedPrefetch {
            limit: 0,
            outstanding: 0,
            consumers: Vec::new(),
            grants: Vec::new(),
            turn: 0,
        }
    }
}

impl<Q: Clone> SharedPrefetch<Q> {
    pub(super) fn limit(&self) -> u32 {
        self.limit
    }

    fn free(&self) -> u32 {
        let held: u32 = self.consumers.iter().map(|c| c.granted).sum();
        self.limit.saturating_sub(self.outstanding + held)
    }

    /// A manual-ack consumer joins: its starting credit, `None` if the session sets no limit.
    pub(super) fn consumer_joins(&mut self, id: ConsumerId, queue: &Q) -> Option<u32> {
        let granted = (self.limit > 0).then(|| self.free());
        self.consumers.push(Limited {
            id,
            queue: queue.clone(),
            granted: granted.unwrap_or(0),
            wanting: false,
            reclaiming: false,
        });
        granted
    }

    /// A consumer left: the credit its queue held goes with it.
    pub(super) fn consumer_leaves(&mut self, id: ConsumerId) {
        if let Some(i) = self.consumers.iter().position(|c| c.id == id) {
            self.consumers.remove(i);
            self.share();
        }
    }

    pub(super) fn set_limit(&mut self, limit: u32) {
        let before = self.limit;
        self.limit = limit;
        if before == limit {
            return;
        }
        for c in &mut self.consumers {
            match (before, limit) {
                (0, _) => {
                    self.grants.push((c.queue.clone(), c.id, Grant::Limit));
                    c.granted = 0;
                }
                (_, 0) => {
                    self.grants.push((c.queue.clone(), c.id, Grant::Unlimited));
                    c.granted = 0;
                    c.wanting = false;
                    c.reclaiming = false;
                }
                // A lower limit may be below what the queues hold: take it back.
                (_, _) if limit < before && c.granted > 0 && !c.reclaiming => {
                    self.grants.push((c.queue.clone(), c.id, Grant::Reclaim));
                    c.reclaiming = true;
                }
                _ => {}
            }
        }
        self.share();
    }

    /// A delivery arrived through consumer `id` (`counted`: manual ack, settled later).
    pub(super) fn delivered(&mut self, id: ConsumerId, counted: bool) {
        if !counted {
            return;
        }
        self.outstanding += 1;
        if let Some(c) = self.consumers.iter_mut().find(|c| c.id == id) {
            c.granted = c.granted.saturating_sub(1);
        }
    }

    /// `n` deliveries received through consumers were settled.
    pub(super) fn settled(&mut self, n: u32) {
        self.outstanding = self.outstanding.saturating_sub(n);
        self.share();
    }

    pub(super) fn wanted(&mut self, id: ConsumerId) {
        if self.limit == 0 {
            return;
        }
        if let Some(c) = self.consumers.iter_mut().find(|c| c.id == id) {
            c.wanting = true;
            self.share();
        }
    }

    pub(super) fn returned(&mut self, id: ConsumerId, n: u32) {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.id == id) {
            c.granted = c.granted.saturating_sub(n);
            c.reclaiming = false;
        }
        self.share();
    }

    /// Shares free credit among the consumers that want it; with none free, asks the holders
    /// of credit to give back what they do not use.
    fn share(&mut self) {
        if self.limit == 0 || !self.consumers.iter().any(|c| c.wanting) {
            return;
        }
        let mut free = self.free();
        let n = self.consumers.len();
        let wanting = self.consumers.iter().filter(|c| c.wanting).count() as u32;
        let share = (free / wanting).max(1);
        let had_free = free > 0;
        for k in 0..n {
            if free == 0 {
                break;
            }
            let c = &mut self.consumers[(self.turn + k) % n];
            if c.wanting {
                let g = share.min(free);
                free -= g;
                c.granted += g;
                c.wanting = false;
                self.grants.push((c.queue.clone(), c.id, Grant::Add(g)));
            }
        }
        self.turn = (self.turn + 1) % n.max(1);
        // Nothing was free: credit a queue holds without using it goes where it is wanted.
        // (Credit just granted is not taken back: settlements will free more.)
        if !had_free {
            for c in &mut self.consumers {
                if !c.wanting && c.granted > 0 && !c.reclaiming {
                    c.reclaiming = true;
                    self.grants.push((c.queue.clone(), c.id, Grant::Reclaim));
                }
            }
        }
    }

    pub(super) fn take_grants(&mut self) -> Vec<(Q, ConsumerId, Grant)> {
        std::mem::take(&mut self.grants)
    }
}
