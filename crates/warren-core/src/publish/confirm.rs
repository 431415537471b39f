//! [`ConfirmTracker`]: a publisher's confirms, numbered from 1 in publish order, each waiting
//! for the destinations that must answer it. A confirm is settled once all of them have: acked
//! if every one took the message, nacked if any refused it or could not store it.
//!
//! Answers come back in any order (each destination answers on its own schedule: a queue
//! after its log's sync, another at once); [`ConfirmTracker::take_answers`] reports what was
//! settled since the last call, with the lowest id still unsettled, so that a protocol can
//! settle a range at once (AMQP's `basic.ack` with `multiple`).

use crate::queue::ConfirmId;
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct ConfirmTracker {
    next: u64,
    /// Confirms still waiting: id -> (destinations left, one of them failed).
    waiting: BTreeMap<u64, (u32, bool)>,
    acked: Vec<u64>,
    nacked: Vec<u64>,
}

/// The confirms settled since the last [`ConfirmTracker::take_answers`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfirmAnswers {
    /// Refused or not stored, in increasing order.
    pub nacked: Vec<ConfirmId>,
    /// Taken, in increasing order.
    pub acked: Vec<ConfirmId>,
    /// Every id below this one is settled (acked or nacked, now or before).
    pub settled_below: ConfirmId,
}

impl ConfirmAnswers {
    pub fn is_empty(&self) -> bool {
        self.nacked.is_empty() && self.acked.is_empty()
    }
}

impl Default for ConfirmTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfirmTracker {
    pub fn new() -> ConfirmTracker {
        ConfirmTracker {
            next: 1,
            waiting: BTreeMap::new(),
            acked: Vec::new(),
            nacked: Vec::new(),
        }
    }

    /// Numbers the next publish.
    pub fn next_id(&mut self) -> ConfirmId {
        let id = ConfirmId(self.next);
        self.next += 1;
        id
    }

    /// `id` waits for `destinations` answers; with none it is settled (acked) at once.
    pub fn track(&mut self, id: ConfirmId, destinations: u32) {
        if destinations == 0 {
            self.acked.push(id.0);
        } else {
            self.waiting.insert(id.0, (destinations, false));
        }
    }

    /// One destination answered `id`. Unknown ids (already settled) are ignored.
    pub fn answered(&mut self, id: ConfirmId, ok: bool) {
        let Some(entry) = self.waiting.get_mut(&id.0) else {
            return;
        };
        entry.0 -= 1;
        entry.1 |= !ok;
        if entry.0 == 0 {
            let (_, failed) = self.waiting.remove(&id.0).expect("present");
            if failed {
                self.nacked.push(id.0);
            } else {
                self.acked.push(id.0);
            }
        }
    }

    /// Confirms still waiting for an answer.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// What was settled since the last call.
    pub fn take_answers(&mut self) -> ConfirmAnswers {
        self.acked.sort_unstable();
        self.nacked.sort_unstable();
        let settled_below = self.waiting.keys().next().copied().unwrap_or(self.next);
        ConfirmAnswers {
            nacked: self.nacked.drain(..).map(ConfirmId).collect(),
            acked: self.acked.drain(..).map(ConfirmId).collect(),
            settled_below: ConfirmId(settled_below),
        }
    }
}
