//! [`Pager`]: where a queue task keeps the messages its machine pages out, and the memory
//! budget it gives the machine.
//!
//! The machine decides what to page out and what to read back (`Effect::PageOut`,
//! `Effect::ReadBack`); this stores it:
//! - a persistent message of a durable queue is already in the queue's log: paging it costs
//!   nothing, and it is read back by seq ([`IN_LOG`]);
//! - any other message is written to the queue's [`Spill`] (created on first use, never
//!   synced, emptied at start-up) and read back from its place there.
//!
//! Under memory pressure (see `resources`) the budget drops to [`PRESSURE_BUDGET`]. What a
//! paged message costs in RAM: its index entry in the machine (48 bytes) and, for one in the
//! log, the log's per-record offset and ack bit.

use super::{stored, PagingHandle};
use crate::durability::blocking;
use tracing::error;
use warren_core::queue::{Paged, Seq};
use warren_core::Message;
use warren_store::{Spill, StoreError, StoredMessage};

/// `Paged::place` of a message read back from the queue's log by its seq.
pub(super) const IN_LOG: u64 = u64::MAX;
/// The budget of every queue under memory pressure.
pub(super) const PRESSURE_BUDGET: usize = 1 << 20;
/// Size of a spill segment file.
const SPILL_SEGMENT_BYTES: u64 = 64 << 20;

pub(super) struct Pager {
    /// `None` without a data directory: nothing is paged.
    paging: Option<PagingHandle>,
    spill: Option<Spill>,
    spill_warned: bool,
    describe: String,
}

impl Pager {
    pub(super) fn new(paging: Option<PagingHandle>, describe: String) -> Pager {
        Pager {
            paging,
            spill: None,
            spill_warned: false,
            describe,
        }
    }

    /// The budget the queue should have now.
    pub(super) fn budget(&self) -> usize {
        match &self.paging {
            None => usize::MAX,
            Some(p) if *p.pressure_rx.borrow() => PRESSURE_BUDGET.min(p.budget),
            Some(p) => p.budget,
        }
    }

    /// Memory pressure changes, if the broker watches it.
    pub(super) fn pressure(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.paging.as_ref().map(|p| p.pressure_rx.clone())
    }

    /// Where a paged-out copy of `message` is: the log (`in_log`), or a new spill record.
    /// `None` if it cannot be written (it then stays loaded).
    pub(super) fn place_for(&mut self, seq: Seq, message: &Message, in_log: bool) -> Option<u64> {
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
                        self.failed(&e);
                        return None;
                    }
                }
            }
        };
        match spill.append(seq, &stored::stored(message, None)) {
            Ok(place) => Some(place),
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    fn failed(&mut self, e: &StoreError) {
        if !self.spill_warned {
            self.spill_warned = true;
            error!(
                "{}: cannot page messages out to disk, keeping them in memory: {e}",
                self.describe
            );
        }
    }

    /// Reads a spilled message back (its record stays until the machine releases it).
    pub(super) fn read(&mut self, seq: Seq, paged: Paged) -> Result<StoredMessage, StoreError> {
        match self.spill.as_mut() {
            Some(spill) => spill.read(paged.place, paged.body_size as usize),
            None => Err(StoreError::NotInLog { seq }),
        }
    }

    /// A spilled message left the queue for good: its record goes.
    pub(super) fn release(&mut self, place: u64) {
        if place == IN_LOG {
            return;
        }
        if let Some(spill) = self.spill.as_mut() {
            if let Err(e) = spill.release(place) {
                error!("{}: spill: {e}", self.describe);
            }
        }
    }

    /// The queue is gone: its spill files go.
    pub(super) fn destroy(&mut self) {
        if let Some(spill) = self.spill.take() {
            if let Err(e) = blocking(|| spill.destroy()) {
                error!("{}: cannot remove its spill: {e}", self.describe);
            }
        }
    }
}
