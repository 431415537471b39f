//! [`QueueLog`]: one durable queue's messages, as one [`MessageLog`] read by one
//! [`LogReader`] whose side files share the log's directory. A classic queue is exactly
//! that: the log holds what was published, the reader what the queue's consumers settled,
//! and a segment goes once the reader settled all of it.
//!
//! This module only composes: `sync` is the reader's sync (the log's appends, then the
//! marks) followed by the log's reclaim, and `open` interleaves the log's recovery with the
//! reader's segment by segment, so that each segment is read once and only its unacked
//! messages are handed back. Any failed write or fsync, the log's or the reader's, poisons
//! both.
//!
//! Architecture invariant: plain blocking std I/O, no tokio; the owner (a queue task) calls
//! it from wherever it may block.

use crate::message_log::{LogConfig, MessageLog, StoredMessage};
use crate::reader::{LogReader, ReaderRecovery};
use crate::recovery::{skip_to, LogRecovery, RecoveredMessage, RecoveryReport};
use crate::StoreError;
use std::path::Path;
use std::time::Instant;

/// A queue log's configuration: the log's.
pub type QueueLogConfig = LogConfig;

/// One durable queue's message log. See the module docs.
///
/// Dropping it without [`QueueLog::sync`] loses whatever was buffered since the last sync,
/// exactly as a crash would: nothing that was not synced was promised.
#[derive(Debug)]
pub struct QueueLog {
    log: MessageLog,
    reader: LogReader,
}

impl QueueLog {
    /// Opens (creating if missing) the log in `dir` and recovers it: every appended, not
    /// acked message, in seq order. See the module docs of `recovery` for damage handling.
    pub fn open(
        dir: &Path,
        config: QueueLogConfig,
    ) -> Result<(QueueLog, Vec<RecoveredMessage>, RecoveryReport), StoreError> {
        let mut messages = Vec::new();
        let (log, report) = QueueLog::open_with(dir, config, |m| messages.push(m))?;
        Ok((log, messages, report))
    }

    /// [`QueueLog::open`] handing each recovered message to `each` as soon as its segment
    /// is read, so that the caller decides what stays in memory: a log larger than memory
    /// can be recovered while only index entries are kept. A message's fields are slices of
    /// its segment's read buffer, which lives as long as any of them does.
    pub fn open_with(
        dir: &Path,
        config: QueueLogConfig,
        mut each: impl FnMut(RecoveredMessage),
    ) -> Result<(QueueLog, RecoveryReport), StoreError> {
        let started = Instant::now();
        let mut report = RecoveryReport::default();
        let mut log_recovery = LogRecovery::start(dir)?;
        let mut reader_recovery = ReaderRecovery::start(dir, dir, |s| log_recovery.has_segment(s))?;
        while let Some(first_seq) = log_recovery.peek() {
            let side = reader_recovery.read(first_seq, &mut report)?;
            let (acked, delivered) = match &side {
                Some(side) => (&side.marks.acked[..], &side.marks.delivered[..]),
                None => (&[][..], &[][..]),
            };
            let mut acked = acked;
            let kept = log_recovery
                .next_segment(&mut report, |seq| !skip_to(&mut acked, seq))?
                .expect("peeked");
            let mut delivered = delivered;
            kept.for_each(|seq, message| {
                each(RecoveredMessage {
                    seq,
                    message,
                    redelivered: skip_to(&mut delivered, seq),
                })
            });
            if let Some(side) = side {
                reader_recovery.restore(log_recovery.last_segment(), side);
            }
        }
        let mut log = log_recovery.finish(config)?;
        let reader = reader_recovery.finish(&mut log);
        let mut queue_log = QueueLog { log, reader };
        let r = queue_log.reclaim_and_sync_dir();
        queue_log.log.guard(r)?;

        report.duration = started.elapsed();
        report.log_damage();
        tracing::debug!(dir = %dir.display(), segments = report.segments, messages = report.messages, duration_ms = report.duration.as_millis() as u64, "queue log recovered");
        Ok((queue_log, report))
    }

    fn reclaim_and_sync_dir(&mut self) -> Result<(), StoreError> {
        self.log.reclaim(std::slice::from_mut(&mut self.reader))?;
        self.log.sync_dir_if_needed()
    }

    /// The lowest seq `append` accepts: above every seq appended, recovered or acked so far.
    pub fn next_seq(&self) -> u64 {
        self.log.next_seq()
    }

    pub fn dir(&self) -> &Path {
        self.log.dir()
    }

    /// Messages appended and not acked.
    pub fn message_count(&self) -> u64 {
        self.reader.unacked_count(&self.log)
    }

    pub fn segment_count(&self) -> usize {
        self.log.segment_count()
    }

    /// Appends a message; `seq` must be at least [`QueueLog::next_seq`]. Buffered: durable
    /// only after [`QueueLog::sync`] (or [`QueueLog::sync_appends`]).
    pub fn append(&mut self, seq: u64, msg: &StoredMessage) -> Result<(), StoreError> {
        self.log.append(seq, msg)
    }

    /// Reads back a message that was appended and not acked (the broker keeps only an index
    /// entry in memory for messages of a long queue). The record's CRC is checked again.
    pub fn read(&mut self, seq: u64) -> Result<StoredMessage, StoreError> {
        self.reader.read(&mut self.log, seq)
    }

    /// Records that these messages are gone (acked, purged, dropped). Seqs never appended, or
    /// already acked, are ignored. Buffered: durable after [`QueueLog::sync`].
    pub fn ack(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        self.reader.ack(&mut self.log, seqs)
    }

    /// Records that these messages were handed to a consumer, so that after a crash they come
    /// back with `redelivered` set. Marks on seqs not in the log (or acked) are ignored.
    /// Buffered: durable after [`QueueLog::sync`].
    pub fn mark_delivered(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        self.reader.mark_delivered(&mut self.log, seqs)
    }

    /// Makes every append, ack and mark so far durable, then deletes the segments whose
    /// messages are all acked. One call covers everything pending: call it once per batch.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.reader.sync(&mut self.log)?;
        self.log.reclaim(std::slice::from_mut(&mut self.reader))?;
        Ok(())
    }

    /// Makes every append so far durable, but not acks or delivery marks (those wait for
    /// the next [`QueueLog::sync`]): what a publisher confirm needs, one fdatasync instead
    /// of one per written side file.
    pub fn sync_appends(&mut self) -> Result<(), StoreError> {
        self.log.sync_appends()
    }

    /// Bytes the log occupies on disk once its buffers are written: segments and side files.
    pub fn disk_bytes(&self) -> u64 {
        self.log.disk_bytes() + self.reader.disk_bytes()
    }

    /// Removes the whole log directory (the queue was deleted).
    pub fn destroy(self) -> Result<(), StoreError> {
        self.log.destroy()
    }
}
