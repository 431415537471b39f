//! Which consumer takes the next message: round-robin among those with credit; the highest
//! `x-priority` first when consumers have priorities; only the longest-registered consumer
//! of a single-active-consumer queue. A consumer has credit while it is under its prefetch,
//! under its write window, and — if its session limits it — holds session credit.

use super::{ConsumerSpec, Grant};

#[derive(Debug)]
pub(super) struct Consumer {
    pub(super) spec: ConsumerSpec,
    /// Manual-ack deliveries not yet settled.
    pub(super) unacked: u32,
    /// Deliveries handed to the session and not yet reported written.
    pub(super) unwritten: u32,
    /// Session credit left, if the session limits this consumer.
    session_credit: Option<u32>,
    /// Reported as wanting session credit, and not granted any since.
    wanting: bool,
}

impl Consumer {
    pub(super) fn new(spec: ConsumerSpec) -> Consumer {
        let session_credit = spec.session_credit.filter(|_| !spec.no_ack);
        Consumer {
            spec,
            unacked: 0,
            unwritten: 0,
            session_credit,
            wanting: false,
        }
    }

    /// Room under the prefetch and the write window (session credit aside).
    fn has_room_but_credit(&self) -> bool {
        self.unwritten < self.spec.window
            && (self.spec.no_ack
                || self.spec.prefetch == 0
                || self.unacked < self.spec.prefetch as u32)
    }

    fn has_room(&self) -> bool {
        self.has_room_but_credit() && self.session_credit != Some(0)
    }

    /// Counts one delivery against the consumer's credit.
    pub(super) fn took_one(&mut self) {
        self.unwritten += 1;
        if !self.spec.no_ack {
            self.unacked += 1;
        }
        if let Some(c) = &mut self.session_credit {
            *c -= 1;
        }
    }

    /// Applies a grant; returns the credit given back.
    pub(super) fn grant(&mut self, grant: Grant) -> u32 {
        if self.spec.no_ack {
            return 0;
        }
        match grant {
            Grant::Add(n) => {
                if let Some(c) = &mut self.session_credit {
                    *c = c.saturating_add(n);
                    self.wanting = false;
                }
                0
            }
            Grant::Reclaim => match &mut self.session_credit {
                Some(c) => std::mem::take(c),
                None => 0,
            },
            Grant::Limit => {
                self.session_credit.get_or_insert(0);
                0
            }
            Grant::Unlimited => {
                self.session_credit = None;
                self.wanting = false;
                0
            }
        }
    }

    /// True once per starvation: limited, out of session credit, otherwise with room.
    pub(super) fn wants_credit(&mut self) -> bool {
        let wants = self.session_credit == Some(0) && !self.wanting && self.has_room_but_credit();
        self.wanting |= wants;
        wants
    }
}

/// The consumer to hand the next message to, starting the round-robin at `next`. Consumers
/// are in registration order.
pub(super) fn next_with_room(
    consumers: &[Consumer],
    next: usize,
    single_active: bool,
    prioritized: bool,
) -> Option<usize> {
    let n = consumers.len();
    if single_active {
        // The active consumer is the oldest; the next one takes over when it leaves.
        return consumers.first().filter(|c| c.has_room()).map(|_| 0);
    }
    let round_robin = |level: Option<i64>| {
        (0..n).map(|i| (next + i) % n).find(|&idx| {
            let c = &consumers[idx];
            level.is_none_or(|l| c.spec.priority == l) && c.has_room()
        })
    };
    if !prioritized {
        return round_robin(None);
    }
    // The highest priority level among consumers with room.
    let level = consumers
        .iter()
        .filter(|c| c.has_room())
        .map(|c| c.spec.priority)
        .max()?;
    round_robin(Some(level))
}
