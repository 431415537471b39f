//! [`Log`]: a durable queue's message log as its task drives it — appends, acks and delivery
//! marks from the machine's effects, group commit, and the confirms (and `tx.commit`s) that
//! wait for the next sync.
//!
//! Group commit: one sync covers every append of a batch of commands. Confirms wait only for
//! the appends (`QueueLog::sync_appends`: one fdatasync); acks and delivery marks ride on the
//! next full sync, at most [`ACK_SYNC_INTERVAL`] later (a crash may bring back an ack this
//! recent: a redelivery, never a loss).

use super::{stored, ConfirmTo, Outbound};

use crate::durability::blocking;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::error;
use warren_core::queue::{ConfirmId, Seq};
use warren_core::Message;
use warren_store::{QueueLog, StoreError, StoredMessage};

/// How long acks may wait in the log's buffers before a sync.
pub(crate) const ACK_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Confirms (or a `tx.commit`) waiting for the next sync.
enum Pending {
    Confirms(ConfirmTo, Vec<ConfirmId>),
    Sync(oneshot::Sender<bool>),
}

impl Pending {
    /// Tells the waiting publisher (or `tx.commit`) whether its messages are on disk.
    fn answer(self, ok: bool) {
        match self {
            Pending::Confirms(to, ids) => {
                let _ = to.sink.send(Outbound::Confirmed {
                    session: to.session,
                    ok,
                    ids,
                });
            }
            Pending::Sync(reply) => {
                let _ = reply.send(ok);
            }
        }
    }
}

pub(crate) struct Log {
    /// `None` for a queue without a log (everything is answered at once).
    log: Option<QueueLog>,
    /// For error texts.
    describe: String,
    /// Appends or marks are buffered in the log but not yet synced.
    dirty: bool,
    /// An append failed (the log is then unusable: nothing more is read back from it).
    append_failed: bool,
    last_sync: Instant,
    pending: Vec<Pending>,
}

impl Log {
    pub(crate) fn new(log: Option<QueueLog>, describe: String) -> Log {
        Log {
            log,
            describe,
            dirty: false,
            append_failed: false,
            last_sync: Instant::now(),
            pending: Vec::new(),
        }
    }

    /// Appends a message; false if it could not be written (the log is then unusable, and
    /// everything waiting on it is nacked at the next sync).
    pub(crate) fn append(&mut self, seq: Seq, message: &Message, enqueued_ms: Option<u64>) -> bool {
        let Some(log) = self.log.as_mut() else {
            return false;
        };
        self.dirty = true;
        match log.append(seq, &stored::stored(message, enqueued_ms)) {
            Ok(()) => true,
            Err(e) => {
                error!("{}: cannot write message: {e}", self.describe);
                self.append_failed = true;
                false
            }
        }
    }

    /// Every append so far was written (a paged-out message can be read back from the log).
    pub(crate) fn appends_ok(&self) -> bool {
        self.log.is_some() && !self.append_failed
    }

    /// `ids` of `to` are answered once the log is synced.
    pub(crate) fn confirm_after_sync(&mut self, to: &ConfirmTo, id: ConfirmId) {
        match self.pending.last_mut() {
            Some(Pending::Confirms(last, ids)) if last.session == to.session && last.sink.same_channel(&to.sink) => {
                ids.push(id)
            }
            _ => self.pending.push(Pending::Confirms(to.clone(), vec![id])),
        }
    }

    /// `tx.commit`: answered once everything appended so far is on disk.
    pub(crate) fn reply_after_sync(&mut self, reply: oneshot::Sender<bool>) {
        if self.dirty {
            self.pending.push(Pending::Sync(reply));
        } else {
            let _ = reply.send(true);
        }
    }

    /// Records that these persistent messages left the queue.
    pub(crate) fn ack(&mut self, seqs: &[Seq]) {
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.ack(seqs) {
                error!("{}: cannot record acks: {e}", self.describe);
            }
            self.dirty = true;
        }
    }

    /// Records that these persistent messages were handed out (redelivered after a restart).
    pub(crate) fn mark_delivered(&mut self, seqs: &[Seq]) {
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.mark_delivered(seqs) {
                error!("{}: cannot record deliveries: {e}", self.describe);
            }
            self.dirty = true;
        }
    }

    /// Reads back a message paged out while in the log.
    pub(crate) fn read(&mut self, seq: Seq) -> Result<StoredMessage, StoreError> {
        match self.log.as_mut() {
            Some(log) => log.read(seq),
            None => Err(StoreError::NotInLog { seq }),
        }
    }

    /// After a batch: syncs if confirms wait (appends only) or acks have waited long enough
    /// (everything), then answers what waited.
    pub(crate) fn after_batch(&mut self) {
        if !self.dirty && self.pending.is_empty() {
            return;
        }
        if self.last_sync.elapsed() >= ACK_SYNC_INTERVAL {
            self.sync(true);
        } else if !self.pending.is_empty() {
            self.sync(false);
        }
    }

    /// How long until buffered acks must be synced, if any are.
    pub(crate) fn next_sync_in(&self) -> Option<Duration> {
        self.dirty
            .then(|| ACK_SYNC_INTERVAL.saturating_sub(self.last_sync.elapsed()))
    }

    /// Syncs what is due on a timer.
    pub(crate) fn on_timer(&mut self) {
        if self.dirty && self.last_sync.elapsed() >= ACK_SYNC_INTERVAL {
            self.sync(true);
        }
    }

    /// Makes the log's appends (and with `full` its marks) durable, then answers the
    /// confirms that waited.
    pub(crate) fn sync(&mut self, full: bool) {
        let ok = match self.log.as_mut() {
            Some(log) => match blocking(|| if full { log.sync() } else { log.sync_appends() }) {
                Ok(()) => true,
                Err(e) => {
                    error!("{}: cannot sync its message log: {e}", self.describe);
                    false
                }
            },
            None => true,
        };
        if full {
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        for pending in self.pending.drain(..) {
            pending.answer(ok);
        }
    }

    /// The broker is stopping: what was acked becomes durable (the log stays).
    pub(crate) fn stop(&mut self) {
        if self.dirty || !self.pending.is_empty() {
            self.sync(true);
        }
    }

    /// The queue is gone: publishes waiting for a sync are dealt with (the queue they went
    /// to is gone), and the log is removed.
    pub(crate) fn destroy(&mut self) {
        for pending in self.pending.drain(..) {
            pending.answer(true);
        }
        if let Some(log) = self.log.take() {
            if let Err(e) = blocking(|| log.destroy()) {
                error!("{}: cannot remove its message log: {e}", self.describe);
            }
        }
    }

    /// The log's messages were restored into the machine from here.
    pub(crate) fn next_seq(&self) -> Option<Seq> {
        self.log.as_ref().map(QueueLog::next_seq)
    }
}

