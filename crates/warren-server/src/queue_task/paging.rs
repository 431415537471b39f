//! Paging: how a queue task keeps a backlog larger than memory.
//!
//! The queue's loaded ready messages may hold [`Paging::budget`] bytes (by
//! `Message::footprint`); past it, each new message is paged out as it is enqueued, so a
//! queue without consumers grows on disk, not in RAM. Where a paged message lives:
//! - a persistent message of a durable queue is already in the queue's log: paging it costs
//!   nothing, and it is read back by seq ([`IN_LOG`]);
//! - any other message is written to the queue's [`Spill`] (created on first use, never
//!   synced, emptied at start-up) and read back from its place there.
//!
//! Before dispatching (and before `basic.get`) the task reads back the next [`READ_AHEAD`]
//! messages to deliver; dispatch stops at a paged head, and the task reads ahead again and
//! dispatches on until consumers have no credit left. Under memory pressure (see
//! `resources`) the budget drops to [`PRESSURE_BUDGET`] and the task pages out what its
//! loaded messages hold beyond it, transient ones included. At start-up a durable queue keeps
//! the first budget's worth of its recovered messages loaded and the rest as index entries.
//!
//! What a paged message costs in RAM: its `Queued` entry (48 bytes) and, for one in the log,
//! the log's per-record offset and ack bit.
//!
//! [`Paging::budget`]: crate::durability::Paging

use super::{stored, QueueTask};
use crate::durability::blocking;
use std::sync::Arc;
use tracing::error;
use warren_core::queue::{Paged, Seq};
use warren_core::Message;
use warren_store::{Spill, StoreError};

/// `Paged::place` of a message read back from the queue's log by its seq.
pub(super) const IN_LOG: u64 = u64::MAX;
/// Messages read back ahead of delivery.
pub(super) const READ_AHEAD: usize = 256;
/// The budget of every queue under memory pressure.
pub(super) const PRESSURE_BUDGET: usize = 1 << 20;
/// Size of a spill segment file.
const SPILL_SEGMENT_BYTES: u64 = 64 << 20;

impl QueueTask {
    /// The budget the queue should have now.
    pub(super) fn wanted_budget(&self) -> usize {
        match &self.paging {
            None => usize::MAX,
            Some(p) if *p.pressure_rx.borrow() => PRESSURE_BUDGET.min(p.budget),
            Some(p) => p.budget,
        }
    }

    /// Follows a change of memory pressure: a lower budget pages out the excess at once.
    pub(super) fn adjust_budget(&mut self) {
        let budget = self.wanted_budget();
        if budget == self.state.memory_budget() {
            return;
        }
        self.state.set_memory_budget(budget);
        for (seq, message) in self.state.excess_loaded() {
            let in_log = self.log.is_some() && message.is_persistent();
            if let Some(place) = self.place_for(seq, &message, in_log) {
                self.state
                    .page(seq, message.properties.priority.unwrap_or(0), place);
            }
        }
    }

    /// Pages out `message`, just enqueued as `seq`, if the queue is over its budget.
    /// `in_log`: it was appended to the queue's log.
    pub(super) fn page_if_over_budget(&mut self, seq: Seq, message: &Arc<Message>, in_log: bool) {
        if !self.state.over_budget() {
            return;
        }
        if let Some(place) = self.place_for(seq, message, in_log) {
            self.state
                .page(seq, message.properties.priority.unwrap_or(0), place);
        }
    }

    /// Where a paged-out copy of the message is: the log, or a new spill record. `None` if
    /// it cannot be written (it then stays loaded).
    fn place_for(&mut self, seq: Seq, message: &Message, in_log: bool) -> Option<u64> {
        if in_log {
            return Some(IN_LOG);
        }
        let spill = match self.spill.as_mut() {
            Some(s) => s,
            None => {
                let path = self.paging.as_ref()?.spill_path.clone();
                match blocking(|| Spill::open(&path, SPILL_SEGMENT_BYTES)) {
                    Ok(s) => self.spill.insert(s),
                    Err(e) => {
                        self.spill_failed(&e);
                        return None;
                    }
                }
            }
        };
        match spill.append(seq, &stored::stored(message, None)) {
            Ok(place) => Some(place),
            Err(e) => {
                self.spill_failed(&e);
                None
            }
        }
    }

    fn spill_failed(&mut self, e: &StoreError) {
        if !self.spill_warned {
            self.spill_warned = true;
            error!(
                "{}: cannot page messages out to disk, keeping them in memory: {e}",
                self.queue.describe()
            );
        }
    }

    /// Reads back the paged messages among the next `n` to deliver.
    pub(super) fn read_ahead(&mut self, n: usize) {
        let ahead = self.state.paged_ahead(n);
        if ahead.is_empty() {
            return;
        }
        blocking(|| {
            for (seq, paged) in ahead {
                match self.read_paged(seq, paged) {
                    Some(message) => {
                        self.state.load(seq, paged.priority, Arc::new(message));
                    }
                    // Unreadable (logged): it leaves the queue rather than block it.
                    None => {
                        if let Some(q) = self.state.remove_ready(seq, paged.priority) {
                            if q.content.is_persistent() {
                                self.forget(&[seq]);
                            }
                        }
                    }
                }
            }
        });
    }

    /// Reads a paged message back, releasing its spill record. `None` if it cannot be read
    /// (the error is logged).
    pub(super) fn read_paged(&mut self, seq: Seq, paged: Paged) -> Option<Message> {
        let read = if paged.place == IN_LOG {
            match self.log.as_mut() {
                Some(log) => log.read(seq),
                None => Err(StoreError::NotInLog { seq }),
            }
        } else {
            match self.spill.as_mut() {
                Some(spill) => {
                    let read = spill.read(paged.place, paged.body_size as usize);
                    let _ = spill.release(paged.place);
                    read
                }
                None => Err(StoreError::NotInLog { seq }),
            }
        };
        match read {
            Ok(m) => Some(stored::restored(m).0),
            Err(e) => {
                error!(
                    "{}: paged message {seq} cannot be read back and is dropped: {e}",
                    self.queue.describe()
                );
                None
            }
        }
    }

    /// A paged message left the queue for good: its spill record goes.
    pub(super) fn release(&mut self, paged: Paged) {
        if paged.place != IN_LOG {
            if let Some(spill) = self.spill.as_mut() {
                if let Err(e) = spill.release(paged.place) {
                    error!("{}: spill: {e}", self.queue.describe());
                }
            }
        }
    }
}
