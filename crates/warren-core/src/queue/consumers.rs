//! Which consumer takes the next message: round-robin among those with credit; the highest
//! `x-priority` first when consumers have priorities; only the longest-registered consumer
//! of a single-active-consumer queue.

use super::ConsumerSpec;

#[derive(Debug)]
pub(super) struct Consumer<S> {
    pub(super) spec: ConsumerSpec<S>,
    /// Manual-ack deliveries not yet acked, nacked or rejected.
    pub(super) unacked: u32,
    /// Deliveries handed to the connection and not yet written.
    pub(super) unwritten: u32,
}

impl<S> Consumer<S> {
    pub(super) fn new(spec: ConsumerSpec<S>) -> Consumer<S> {
        Consumer {
            spec,
            unacked: 0,
            unwritten: 0,
        }
    }

    fn has_room(&self) -> bool {
        self.unwritten < super::WRITE_WINDOW
            && (self.spec.no_ack
                || self.spec.prefetch == 0
                || self.unacked < self.spec.prefetch as u32)
    }

    /// Room, and a unit of its channel's shared prefetch (taken now: the caller delivers).
    fn can_take(&self) -> bool {
        if !self.has_room() {
            return false;
        }
        match (&self.spec.channel_credit, self.spec.no_ack) {
            (Some(credit), false) => credit.try_acquire(),
            _ => true,
        }
    }
}

/// The consumer to hand the next message to, starting the round-robin at `next`; takes the
/// channel credit for it. Consumers are in registration order.
pub(super) fn next_with_room<S>(
    consumers: &[Consumer<S>],
    next: usize,
    single_active: bool,
    prioritized: bool,
) -> Option<usize> {
    let n = consumers.len();
    if single_active {
        // The active consumer is the oldest; the next one takes over when it leaves.
        return consumers.first().filter(|c| c.can_take()).map(|_| 0);
    }
    if !prioritized {
        return (0..n)
            .map(|i| (next + i) % n)
            .find(|&idx| consumers[idx].can_take());
    }
    // Highest priority level first; a level whose consumers all lack credit yields to the
    // next one down.
    let mut below: Option<i64> = None;
    loop {
        let level = consumers
            .iter()
            .filter(|c| below.is_none_or(|b| c.spec.priority < b) && c.has_room())
            .map(|c| c.spec.priority)
            .max()?;
        let found = (0..n)
            .map(|i| (next + i) % n)
            .find(|&idx| consumers[idx].spec.priority == level && consumers[idx].can_take());
        if found.is_some() {
            return found;
        }
        below = Some(level);
    }
}
