//! [`QueueLog`]: one durable queue's message log, a directory of segment files and their ack
//! side files (formats in [`crate::segment`] and [`crate::acks`]). This module owns the
//! write path: append, ack, delivery marks, group-committed `sync`, and reclaiming segments
//! whose messages are all acked. Opening and recovery are in [`crate::recovery`].
//!
//! Writes are buffered in user space and reach the files on `sync` (or when a buffer fills);
//! nothing is promised durable before `sync` returns. `sync` writes segments before side
//! files, so an ack on disk never refers to a message that is not: recovery could otherwise
//! mistake it for the ack of a later message that reused the seq.
//!
//! Architecture invariant: plain blocking std I/O, no tokio; the owner (a queue task) calls
//! it from wherever it may block.

use crate::acks::{self, Mark};
use crate::fsio;
use crate::record::put_record;
use crate::segment::{self, Segment};
use crate::StoreError;
use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use warren_amqp::ShortStr;

/// Segment records waiting in the write buffer beyond this are written out (not synced).
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// A side file's pending marks beyond this are written out (not synced).
const MARKS_BUFFER_BYTES: usize = 256 << 10;
/// The active segment is reclaimed when all acked only once it is at least this big: rolling
/// it means creating a file and two directory fsyncs, which a queue whose consumers keep up
/// would otherwise pay on every sync. A drained log thus keeps less than this on disk.
pub const ACTIVE_RECLAIM_MIN_BYTES: u64 = 64 << 10;
/// The scratch buffer for sorting marks keeps at most this capacity between calls.
const MAX_SCRATCH_SEQS: usize = 4096;
/// Segment sizes are capped so that a segment's record ordinals fit in a u32.
const MAX_SEGMENT_SIZE_BYTES: u64 = 4 << 30;

/// What is stored per message; the broker forwards `properties_raw` unchanged to consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// The content header's property flags and property list, as received.
    pub properties_raw: Bytes,
    pub body: Bytes,
    /// When the message was enqueued (ms since the Unix epoch), kept for messages whose TTL
    /// must count from it across a restart.
    pub enqueued_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLogConfig {
    /// A segment is closed and a new one started when the next record would take it past
    /// this size (a single larger record gets a segment of its own). Capped at 4 GiB.
    pub segment_size_bytes: u64,
}

impl Default for QueueLogConfig {
    fn default() -> Self {
        QueueLogConfig {
            segment_size_bytes: 64 << 20,
        }
    }
}

/// One durable queue's message log. See the module docs.
///
/// Dropping it without [`QueueLog::sync`] loses whatever was buffered since the last sync,
/// exactly as a crash would: nothing that was not synced was promised.
#[derive(Debug)]
pub struct QueueLog {
    pub(crate) dir: PathBuf,
    pub(crate) segment_size_bytes: u64,
    /// Ordered by `first_seq`; never empty; the back one is the active (appended) segment.
    pub(crate) segments: VecDeque<Segment>,
    pub(crate) active_file: File,
    pub(crate) active_buf: Vec<u8>,
    /// The active segment file was written since its last fdatasync.
    pub(crate) active_unsynced: bool,
    pub(crate) next_seq: u64,
    /// A file was created or deleted in `dir` since its last fsync.
    pub(crate) dir_unsynced: bool,
    /// Set by the first failed write or fsync; see [`StoreError::Failed`].
    pub(crate) failed: Option<String>,
    scratch: Vec<u64>,
    /// A read handle on the segment [`QueueLog::read`] last read from.
    reader: Option<(u64, File)>,
}

impl QueueLog {
    pub(crate) fn from_parts(
        dir: PathBuf,
        config: QueueLogConfig,
        segments: VecDeque<Segment>,
        active_file: File,
        next_seq: u64,
    ) -> QueueLog {
        debug_assert!(!segments.is_empty());
        QueueLog {
            dir,
            segment_size_bytes: config.segment_size_bytes.clamp(1, MAX_SEGMENT_SIZE_BYTES),
            segments,
            active_file,
            active_buf: Vec::new(),
            active_unsynced: false,
            next_seq,
            dir_unsynced: false,
            failed: None,
            scratch: Vec::new(),
            reader: None,
        }
    }

    /// The lowest seq `append` accepts: above every seq appended, recovered or acked so far.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Messages appended and not acked.
    pub fn message_count(&self) -> u64 {
        self.segments.iter().map(|s| s.live_records() as u64).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Appends a message; `seq` must be at least [`QueueLog::next_seq`]. Buffered: durable
    /// only after [`QueueLog::sync`].
    pub fn append(&mut self, seq: u64, msg: &StoredMessage) -> Result<(), StoreError> {
        self.check_usable()?;
        if seq < self.next_seq || seq == u64::MAX {
            return Err(StoreError::SeqNotIncreasing {
                seq,
                next_seq: self.next_seq,
            });
        }
        let record_bytes = segment::message_record_len(msg)?;
        let active = self.active();
        if active.records() > 0 && active.file_bytes + record_bytes > self.segment_size_bytes {
            let r = self.roll(seq);
            self.guard(r)?;
        }
        put_record(&mut self.active_buf, |out| {
            segment::encode_message(out, seq, msg)
        });
        let active = self
            .segments
            .back_mut()
            .expect("a log always has a segment");
        active.push(seq, active.file_bytes);
        active.file_bytes += record_bytes;
        self.next_seq = seq + 1;
        if self.active_buf.len() >= WRITE_BUFFER_BYTES {
            let r = self.write_active();
            self.guard(r)?;
        }
        Ok(())
    }

    /// Reads back a message that was appended and not acked (the broker keeps only an index
    /// entry in memory for messages of a long queue). The record's CRC is checked again.
    pub fn read(&mut self, seq: u64) -> Result<StoredMessage, StoreError> {
        self.check_usable()?;
        let not_found = || StoreError::NotInLog { seq };
        let idx = self
            .segments
            .partition_point(|s| s.first_seq <= seq)
            .checked_sub(1)
            .ok_or_else(not_found)?;
        let seg = &self.segments[idx];
        let (start, end) = seg.span(seq).ok_or_else(not_found)?;
        let first_seq = seg.first_seq;
        let record = if idx + 1 == self.segments.len()
            && end > self.active().file_bytes - self.active_buf.len() as u64
        {
            // Still in the write buffer: records are buffered whole, so all of it is there.
            let buffered_from = self.active().file_bytes - self.active_buf.len() as u64;
            let at = (start - buffered_from) as usize;
            Bytes::copy_from_slice(&self.active_buf[at..at + (end - start) as usize])
        } else {
            let path = self.segment_path(first_seq);
            let file = match &self.reader {
                Some((s, f)) if *s == first_seq => f,
                _ => {
                    let f = File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
                    &self.reader.insert((first_seq, f)).1
                }
            };
            Bytes::from(fsio::read_at(file, &path, start, (end - start) as usize)?)
        };
        let (found, message) =
            segment::decode_message_record(record).map_err(|what| StoreError::Corrupt {
                path: self.segment_path(first_seq),
                offset: start,
                what: what.to_string(),
            })?;
        if found != seq {
            return Err(StoreError::Corrupt {
                path: self.segment_path(first_seq),
                offset: start,
                what: format!("record holds seq {found}, not {seq}"),
            });
        }
        Ok(message)
    }

    /// Records that these messages are gone (acked, purged, dropped). Seqs never appended, or
    /// already acked, are ignored. Buffered: durable after [`QueueLog::sync`].
    pub fn ack(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        self.mark(seqs, Mark::Acked)
    }

    /// Records that these messages were handed to a consumer, so that after a crash they come
    /// back with `redelivered` set. Marks on seqs not in the log (or acked) are ignored.
    /// Buffered: durable after [`QueueLog::sync`].
    pub fn mark_delivered(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        self.mark(seqs, Mark::Delivered)
    }

    fn mark(&mut self, seqs: &[u64], mark: Mark) -> Result<(), StoreError> {
        self.check_usable()?;
        if seqs.is_empty() {
            return Ok(());
        }
        let mut sorted = std::mem::take(&mut self.scratch);
        sorted.clear();
        sorted.extend_from_slice(seqs);
        sorted.sort_unstable();
        sorted.dedup();
        let mut i = 0;
        let mut flush_needed = false;
        while i < sorted.len() {
            // `idx` is the first segment above sorted[i]; the one before holds it, if any.
            let idx = self.segments.partition_point(|s| s.first_seq <= sorted[i]);
            let j = match self.segments.get(idx) {
                Some(next) => i + sorted[i..].partition_point(|&s| s < next.first_seq),
                None => sorted.len(),
            };
            if let Some(seg) = idx.checked_sub(1).and_then(|k| self.segments.get_mut(k)) {
                // Keep, in place, the seqs this mark changes something for.
                let mut kept = i;
                for t in i..j {
                    let seq = sorted[t];
                    let keep = match mark {
                        Mark::Acked => seg.ack(seq),
                        Mark::Delivered => seg.is_live(seq),
                    };
                    if keep {
                        sorted[kept] = seq;
                        kept += 1;
                    }
                }
                acks::put_marks(
                    &mut seg.pending_marks,
                    mark,
                    seg.first_seq,
                    &sorted[i..kept],
                );
                flush_needed |= seg.pending_marks.len() >= MARKS_BUFFER_BYTES;
            }
            i = j;
        }
        sorted.shrink_to(MAX_SCRATCH_SEQS);
        self.scratch = sorted;
        if flush_needed {
            let r = self.write_marks(false);
            self.guard(r)?;
        }
        Ok(())
    }

    /// Makes every append, ack and mark so far durable, then deletes the segments whose
    /// messages are all acked. One call covers everything pending: call it once per batch.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.check_usable()?;
        let r = self.sync_inner();
        self.guard(r)
    }

    /// Makes every append so far durable, but not acks or delivery marks (those wait for
    /// the next [`QueueLog::sync`]): what a publisher confirm needs, one fdatasync instead
    /// of one per written side file.
    pub fn sync_appends(&mut self) -> Result<(), StoreError> {
        self.check_usable()?;
        let r = self.sync_appends_inner();
        self.guard(r)
    }

    fn sync_appends_inner(&mut self) -> Result<(), StoreError> {
        self.write_active()?;
        if self.active_unsynced {
            let path = self.segment_path(self.active().first_seq);
            fsio::sync_data(&self.active_file, &path)?;
            self.active_unsynced = false;
        }
        if self.dir_unsynced {
            fsio::sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    fn sync_inner(&mut self) -> Result<(), StoreError> {
        self.write_active()?;
        if self.active_unsynced {
            let path = self.segment_path(self.active().first_seq);
            fsio::sync_data(&self.active_file, &path)?;
            self.active_unsynced = false;
        }
        self.write_marks(true)?;
        if self.dir_unsynced {
            fsio::sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        self.reclaim()
    }

    /// Bytes the log occupies on disk once its buffers are written: segments and side files.
    pub fn disk_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.file_bytes + s.acks_file_bytes + s.pending_marks.len() as u64)
            .sum()
    }

    /// Removes the whole log directory (the queue was deleted).
    pub fn destroy(self) -> Result<(), StoreError> {
        let QueueLog {
            dir, active_file, ..
        } = self;
        drop(active_file);
        std::fs::remove_dir_all(&dir).map_err(|e| StoreError::io("remove directory", &dir, e))?;
        match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => fsio::sync_dir(parent),
            None => Ok(()),
        }
    }

    fn active(&self) -> &Segment {
        self.segments.back().expect("a log always has a segment")
    }

    pub(crate) fn segment_path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(segment::segment_file_name(first_seq))
    }

    fn acks_path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(segment::acks_file_name(first_seq))
    }

    fn check_usable(&self) -> Result<(), StoreError> {
        match &self.failed {
            None => Ok(()),
            Some(reason) => Err(StoreError::Failed {
                path: self.dir.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Poisons the log on an I/O error (see [`StoreError::Failed`]).
    fn guard<T>(&mut self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &r {
            tracing::error!(dir = %self.dir.display(), error = %e, "queue log write failed; the log refuses writes until reopened");
            self.failed = Some(e.to_string());
        }
        r
    }

    /// Writes the active segment's buffer to its file (no fsync).
    fn write_active(&mut self) -> Result<(), StoreError> {
        if self.active_buf.is_empty() {
            return Ok(());
        }
        let path = self.segment_path(self.active().first_seq);
        fsio::write_all(&mut self.active_file, &path, &self.active_buf)?;
        self.active_buf.clear();
        if self.active_buf.capacity() > 4 * WRITE_BUFFER_BYTES {
            self.active_buf.shrink_to(WRITE_BUFFER_BYTES);
        }
        self.active_unsynced = true;
        Ok(())
    }

    /// Writes pending marks to the side files; with `sync`, also fdatasyncs every side file
    /// written since its last fdatasync. Segment data is written out first, so that a mark
    /// never reaches the disk ahead of the record it names.
    fn write_marks(&mut self, sync: bool) -> Result<(), StoreError> {
        self.write_active()?;
        for i in 0..self.segments.len() {
            let seg = &self.segments[i];
            if seg.pending_marks.is_empty() && !(sync && seg.marks_unsynced) {
                continue;
            }
            let path = self.acks_path(seg.first_seq);
            let (mut file, created) = fsio::open_append(&path)?;
            self.dir_unsynced |= created;
            let seg = &mut self.segments[i];
            if !seg.pending_marks.is_empty() {
                fsio::write_all(&mut file, &path, &seg.pending_marks)?;
                seg.acks_file_bytes += seg.pending_marks.len() as u64;
                seg.pending_marks.clear();
                if seg.pending_marks.capacity() > 4 * MARKS_BUFFER_BYTES {
                    seg.pending_marks.shrink_to(MARKS_BUFFER_BYTES);
                }
                seg.marks_unsynced = true;
            }
            if sync {
                fsio::sync_data(&file, &path)?;
                seg.marks_unsynced = false;
            }
        }
        Ok(())
    }

    /// Closes the active segment (written and fdatasynced, so that only the newest segment
    /// can ever have a torn tail) and starts a new, empty one named `first_seq`.
    pub(crate) fn roll(&mut self, first_seq: u64) -> Result<(), StoreError> {
        self.write_active()?;
        if self.active_unsynced {
            let path = self.segment_path(self.active().first_seq);
            fsio::sync_data(&self.active_file, &path)?;
            self.active_unsynced = false;
        }
        let path = self.segment_path(first_seq);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io("create", &path, e))?;
        self.active_file = file;
        self.segments.push_back(Segment::new(first_seq));
        self.dir_unsynced = true;
        Ok(())
    }

    /// Deletes every closed segment whose messages are all acked, with its side file; first
    /// closes the active segment if it is all acked and big enough to be worth it
    /// ([`ACTIVE_RECLAIM_MIN_BYTES`]). Expects no pending writes (called after a sync).
    pub(crate) fn reclaim(&mut self) -> Result<(), StoreError> {
        let active = self.active();
        if active.records() > 0
            && active.all_acked()
            && active.file_bytes >= ACTIVE_RECLAIM_MIN_BYTES.min(self.segment_size_bytes)
        {
            // The new, empty active segment is named `next_seq`: it keeps the seq count going
            // across a restart even when every older segment is gone. It must be durable
            // before the old one's deletion is.
            self.roll(self.next_seq)?;
            fsio::sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        let last = self.segments.len() - 1;
        let doomed: Vec<u64> = (self.segments.iter().take(last))
            .filter(|s| s.all_acked())
            .map(|s| s.first_seq)
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        debug_assert!(self.segments.iter().all(|s| s.pending_marks.is_empty()));
        // Segments go before their side files: a side file that survives a crash without its
        // segment is an orphan (deleted by recovery), while a segment that survives without its
        // side file would bring acked messages back.
        for &first_seq in &doomed {
            fsio::remove_file(&self.segment_path(first_seq))?;
        }
        fsio::sync_dir(&self.dir)?;
        for &first_seq in &doomed {
            fsio::remove_file(&self.acks_path(first_seq))?;
        }
        self.dir_unsynced = true;
        self.segments.retain(|s| !doomed.contains(&s.first_seq));
        tracing::debug!(dir = %self.dir.display(), segments = doomed.len(), "reclaimed fully acked segments");
        Ok(())
    }
}
