//! The ready messages of a queue: one FIFO lane per priority level, each kept sorted by
//! `Seq` so that a requeued message returns to its original place.
//!
//! A plain queue has a single lane, so it pays one bounds check over a `VecDeque` for
//! priorities it does not use. A priority queue (`x-max-priority`) has `max + 1` lanes and a
//! bitmap of the non-empty ones: the next message is the head of the highest non-empty lane,
//! found with a few word scans whatever the number of levels.

use super::Queued;
use std::collections::VecDeque;

#[derive(Debug)]
pub(super) struct Ready {
    lanes: Vec<VecDeque<Queued>>,
    /// Bit `i` set when lane `i` is non-empty (priority queues only; 256 levels at most).
    nonempty: [u64; 4],
    len: usize,
}

impl Ready {
    /// `max_priority`: `None` for a FIFO queue, else the highest priority level.
    pub(super) fn new(max_priority: Option<u8>) -> Ready {
        let levels = max_priority.map_or(1, |m| m as usize + 1);
        Ready {
            lanes: (0..levels).map(|_| VecDeque::new()).collect(),
            nonempty: [0; 4],
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The lane a message belongs in: its `priority` property, capped at the queue's maximum
    /// (RabbitMQ treats a higher priority as the maximum); no priority means 0.
    fn lane_of(&self, q: &Queued) -> usize {
        self.lane_of_priority(q.content.priority())
    }

    fn lane_of_priority(&self, priority: u8) -> usize {
        (priority as usize).min(self.lanes.len() - 1)
    }

    /// The message `seq` of priority `priority`, if it is ready.
    pub(super) fn get_mut(&mut self, seq: u64, priority: u8) -> Option<&mut Queued> {
        let lane = self.lane_of_priority(priority);
        let lane = &mut self.lanes[lane];
        // Usually the newest (just published) or among the oldest (read ahead).
        if lane.back().is_some_and(|b| b.seq == seq) {
            return lane.back_mut();
        }
        let pos = lane.partition_point(|q| q.seq < seq);
        lane.get_mut(pos).filter(|q| q.seq == seq)
    }

    /// Takes the message `seq` of priority `priority` out, wherever it is.
    pub(super) fn remove(&mut self, seq: u64, priority: u8) -> Option<Queued> {
        let lane = self.lane_of_priority(priority);
        let deque = &mut self.lanes[lane];
        let pos = deque.partition_point(|q| q.seq < seq);
        if deque.get(pos).is_none_or(|q| q.seq != seq) {
            return None;
        }
        let q = deque.remove(pos);
        self.unmark_if_empty(lane);
        self.len -= 1;
        q
    }

    /// The next message to deliver, without taking it.
    pub(super) fn front(&self) -> Option<&Queued> {
        self.top().and_then(|lane| self.lanes[lane].front())
    }

    /// Every message, latest in delivery order first.
    pub(super) fn iter_rev(&self) -> impl Iterator<Item = &Queued> {
        self.lanes.iter().flat_map(|l| l.iter().rev())
    }

    fn mark(&mut self, lane: usize) {
        if self.lanes.len() > 1 {
            self.nonempty[lane / 64] |= 1 << (lane % 64);
        }
    }

    fn unmark_if_empty(&mut self, lane: usize) {
        if self.lanes.len() > 1 && self.lanes[lane].is_empty() {
            self.nonempty[lane / 64] &= !(1 << (lane % 64));
        }
    }

    /// The highest non-empty lane.
    fn top(&self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        if self.lanes.len() == 1 {
            return Some(0);
        }
        (0..4)
            .rev()
            .find(|&w| self.nonempty[w] != 0)
            .map(|w| w * 64 + 63 - self.nonempty[w].leading_zeros() as usize)
    }

    /// Appends a newly published message (the highest `Seq` so far) to its lane.
    pub(super) fn push_back(&mut self, q: Queued) {
        let lane = self.lane_of(&q);
        debug_assert!(
            self.lanes[lane].back().is_none_or(|b| b.seq < q.seq),
            "push_back in seq order"
        );
        self.lanes[lane].push_back(q);
        self.mark(lane);
        self.len += 1;
    }

    /// Puts a message back at its place by `Seq` (requeue).
    pub(super) fn insert(&mut self, q: Queued) {
        let lane = self.lane_of(&q);
        let deque = &mut self.lanes[lane];
        // Requeued messages usually belong at or near the head.
        let pos = deque.partition_point(|r| r.seq < q.seq);
        deque.insert(pos, q);
        self.mark(lane);
        self.len += 1;
    }

    /// The next message to deliver: the oldest of the highest priority.
    pub(super) fn pop_front(&mut self) -> Option<Queued> {
        let lane = self.top()?;
        let q = self.lanes[lane].pop_front().expect("top lane is non-empty");
        self.unmark_if_empty(lane);
        self.len -= 1;
        Some(q)
    }

    /// Removes the head of every lane for which `expired` holds, repeatedly, passing each to
    /// `removed`. Only heads are examined, as RabbitMQ does: a message with a short
    /// per-message TTL waits behind a longer-lived one until it reaches the head.
    pub(super) fn drain_expired_heads(
        &mut self,
        mut expired: impl FnMut(&Queued) -> bool,
        mut removed: impl FnMut(Queued),
    ) {
        for lane in (0..self.lanes.len()).rev() {
            while self.lanes[lane].front().is_some_and(&mut expired) {
                let q = self.lanes[lane].pop_front().expect("front checked");
                self.len -= 1;
                removed(q);
            }
            self.unmark_if_empty(lane);
        }
    }

    /// The heads of the lanes (where the earliest deadlines that matter are).
    pub(super) fn heads(&self) -> impl Iterator<Item = &Queued> {
        self.lanes.iter().filter_map(VecDeque::front)
    }

    /// Every message, highest priority first, FIFO within a priority.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Queued> {
        self.lanes.iter().rev().flat_map(|l| l.iter())
    }

    /// Removes every message, highest priority first.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Queued> + '_ {
        self.nonempty = [0; 4];
        self.len = 0;
        self.lanes.iter_mut().rev().flat_map(|l| l.drain(..))
    }
}
