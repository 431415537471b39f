//! [`MessageLog`]: an append-only, seq-addressed log of messages in a directory of segment
//! files (format in [`crate::segment`]). It owns the segments and the active file: append,
//! read by seq, read forward from a position, group-committed sync of appends, rolling to a
//! new segment, and removing whole segments (reclaim of the segments every reader settled,
//! retention from the front). Opening it is in [`crate::recovery`].
//!
//! The log never knows who read or acked what: that is each [`LogReader`]'s, in its own side
//! files. A classic queue is one reader over a log ([`crate::QueueLog`]); a stream is one log
//! and a reader per consumer. The log asks its readers only one thing, when it reclaims:
//! whether a segment is settled by every one of them.
//!
//! Writes are buffered in user space and reach the file on [`MessageLog::sync_appends`] (or
//! when the buffer fills); nothing is promised durable before that returns. A segment is
//! written and fdatasynced before its successor is created, so only the newest segment can
//! ever have a torn tail. Files are created before (and their creation made durable before)
//! any file is deleted.
//!
//! Architecture invariant: plain blocking std I/O, no tokio; the owner (a queue task) calls
//! it from wherever it may block.

use crate::fsio;
use crate::reader::LogReader;
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
/// The active segment is reclaimed when all its readers settled it only once it is at least
/// this big: rolling it means creating a file and two directory fsyncs, which a queue whose
/// consumers keep up would otherwise pay on every sync. A drained log thus keeps less than
/// this on disk.
pub const ACTIVE_RECLAIM_MIN_BYTES: u64 = 64 << 10;
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
pub struct LogConfig {
    /// A segment is closed and a new one started when the next record would take it past
    /// this size (a single larger record gets a segment of its own). Capped at 4 GiB.
    pub segment_size_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_size_bytes: 64 << 20,
        }
    }
}

/// One segment as [`MessageLog::segments`] shows it (for retention decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment's name: every seq in it is at least this, and below the next one's.
    pub first_seq: u64,
    /// Its highest seq, if it holds any record.
    pub last_seq: Option<u64>,
    pub records: u32,
    /// The segment file's size, counting records not yet written out.
    pub bytes: u64,
}

/// A message log. See the module docs.
///
/// Dropping it without [`MessageLog::sync_appends`] loses whatever was buffered since the last
/// sync, exactly as a crash would: nothing that was not synced was promised.
#[derive(Debug)]
pub struct MessageLog {
    pub(crate) dir: PathBuf,
    segment_size_bytes: u64,
    /// Ordered by `first_seq`; never empty; the back one is the active (appended) segment.
    pub(crate) segments: VecDeque<Segment>,
    active_file: File,
    pub(crate) active_buf: Vec<u8>,
    /// The active segment file was written since its last fdatasync.
    active_unsynced: bool,
    next_seq: u64,
    /// A file was created or deleted in `dir` since its last fsync (readers that keep their
    /// side files in `dir` set it too, so that one fsync covers both).
    pub(crate) dir_unsynced: bool,
    /// Set by the first failed write or fsync; see [`StoreError::Failed`].
    failed: Option<String>,
    /// A read handle on the segment last read from; dropped when that segment is deleted.
    pub(crate) read_handle: Option<(u64, File)>,
}

impl MessageLog {
    pub(crate) fn from_parts(
        dir: PathBuf,
        config: LogConfig,
        segments: VecDeque<Segment>,
        active_file: File,
        next_seq: u64,
    ) -> MessageLog {
        debug_assert!(!segments.is_empty());
        MessageLog {
            dir,
            segment_size_bytes: config.segment_size_bytes.clamp(1, MAX_SEGMENT_SIZE_BYTES),
            segments,
            active_file,
            active_buf: Vec::new(),
            active_unsynced: false,
            next_seq,
            dir_unsynced: false,
            failed: None,
            read_handle: None,
        }
    }

    /// The lowest seq `append` accepts: above every seq appended or recovered so far, and
    /// every seq a reader of this log has marked.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The lowest seq the log may still hold (the oldest segment's name).
    pub fn first_seq(&self) -> u64 {
        self.segments[0].first_seq
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segments, oldest first; the last one is the active segment.
    pub fn segments(&self) -> impl Iterator<Item = SegmentInfo> + '_ {
        self.segments.iter().map(|s| SegmentInfo {
            first_seq: s.first_seq,
            last_seq: s.last_seq(),
            records: s.records(),
            bytes: s.file_bytes,
        })
    }

    /// Records in the log, whoever read or acked them.
    pub fn record_count(&self) -> u64 {
        self.segments.iter().map(|s| s.records() as u64).sum()
    }

    /// Bytes of the segment files once the write buffer is written out.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.file_bytes).sum()
    }

    /// Appends a message; `seq` must be at least [`MessageLog::next_seq`]. Buffered: durable
    /// only after [`MessageLog::sync_appends`].
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
            let r = self.roll_to(seq);
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

    /// Makes every append so far durable: one fdatasync of the active segment (and a
    /// directory fsync if a segment was created), whatever the number of appends.
    pub fn sync_appends(&mut self) -> Result<(), StoreError> {
        self.check_usable()?;
        let r = self.sync_data().and_then(|()| self.sync_dir_if_needed());
        self.guard(r)
    }

    /// Closes the active segment and starts a new one named [`MessageLog::next_seq`], so
    /// that the closed one can be reclaimed or dropped by retention. Does nothing when the
    /// active segment is empty.
    pub fn roll(&mut self) -> Result<(), StoreError> {
        self.check_usable()?;
        if self.active().records() == 0 {
            return Ok(());
        }
        let r = self.roll_to(self.next_seq);
        self.guard(r)
    }

    /// Deletes every closed segment that each of `readers` has settled (with their side
    /// files); first closes the active segment if they all settled it and it is big enough
    /// to be worth it ([`ACTIVE_RECLAIM_MIN_BYTES`]). With no readers nothing is settled.
    /// Call it after the readers' [`LogReader::sync`]: a segment goes only once the marks
    /// that settled it are durable. Returns how many segments were deleted.
    pub fn reclaim(&mut self, readers: &mut [LogReader]) -> Result<usize, StoreError> {
        self.check_usable()?;
        readers.iter().try_for_each(LogReader::check_usable)?;
        if readers.is_empty() {
            return Ok(0);
        }
        let r = self.reclaim_settled(readers);
        self.guard(r)
    }

    fn reclaim_settled(&mut self, readers: &mut [LogReader]) -> Result<usize, StoreError> {
        let settled = |s: &Segment| readers.iter().all(|r| r.settles(s));
        let active = self.active();
        if active.records() > 0
            && settled(active)
            && active.file_bytes >= ACTIVE_RECLAIM_MIN_BYTES.min(self.segment_size_bytes)
        {
            // The new, empty active segment is named `next_seq`: it keeps the seq count going
            // across a restart even when every older segment is gone.
            self.roll_to(self.next_seq)?;
        }
        let last = self.segments.len() - 1;
        let doomed: Vec<u64> = (self.segments.iter().take(last))
            .filter(|s| settled(s))
            .map(|s| s.first_seq)
            .collect();
        debug_assert!(readers.iter().all(|r| r.has_no_pending_marks(&doomed)));
        self.remove_segments(&doomed, readers)?;
        if !doomed.is_empty() {
            tracing::debug!(dir = %self.dir.display(), segments = doomed.len(), "reclaimed settled segments");
        }
        Ok(doomed.len())
    }

    /// Retention: deletes the closed segments, oldest first, that hold only seqs below
    /// `before_seq`, whatever the readers settled (their marks for those segments go too).
    /// The active segment stays: [`MessageLog::roll`] it first to drop everything. Returns
    /// how many segments were deleted.
    pub fn truncate_front(
        &mut self,
        before_seq: u64,
        readers: &mut [LogReader],
    ) -> Result<usize, StoreError> {
        self.check_usable()?;
        readers.iter().try_for_each(LogReader::check_usable)?;
        // A segment's seqs are all below its successor's name.
        let doomed: Vec<u64> = (self.segments.iter().zip(self.segments.iter().skip(1)))
            .take_while(|(_, next)| next.first_seq <= before_seq)
            .map(|(s, _)| s.first_seq)
            .collect();
        let r = self.remove_segments(&doomed, readers);
        self.guard(r)?;
        Ok(doomed.len())
    }

    /// Deletes the segments named `doomed` (closed ones), then the readers' side files for
    /// them. Segments go before side files: a side file that survives a crash without its
    /// segment is an orphan (deleted when its reader opens), while a segment that survived
    /// without its side file would bring acked messages back.
    fn remove_segments(
        &mut self,
        doomed: &[u64],
        readers: &mut [LogReader],
    ) -> Result<(), StoreError> {
        if doomed.is_empty() {
            return Ok(());
        }
        debug_assert!(!doomed.contains(&self.active().first_seq));
        // A segment created since the last fsync (a roll) must be durable before any deletion.
        self.sync_dir_if_needed()?;
        if self
            .read_handle
            .as_ref()
            .is_some_and(|(s, _)| doomed.contains(s))
        {
            // An open handle would keep the deleted file's space in use.
            self.read_handle = None;
        }
        for &first_seq in doomed {
            fsio::remove_file(&self.segment_path(first_seq))?;
        }
        fsio::sync_dir(&self.dir)?;
        self.segments.retain(|s| !doomed.contains(&s.first_seq));
        for reader in readers {
            reader.forget_segments(doomed, self)?;
        }
        Ok(())
    }

    /// Removes the whole log directory, and with it the side files of readers kept in it.
    pub fn destroy(self) -> Result<(), StoreError> {
        let MessageLog {
            dir, active_file, ..
        } = self;
        drop(active_file);
        std::fs::remove_dir_all(&dir).map_err(|e| StoreError::io("remove directory", &dir, e))?;
        match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => fsio::sync_dir(parent),
            None => Ok(()),
        }
    }

    pub(crate) fn active(&self) -> &Segment {
        self.segments.back().expect("a log always has a segment")
    }

    /// The index of the segment that would hold `seq`, if any segment starts at or below it.
    pub(crate) fn segment_index(&self, seq: u64) -> Option<usize> {
        self.segments
            .partition_point(|s| s.first_seq <= seq)
            .checked_sub(1)
    }

    pub(crate) fn has_segment(&self, first_seq: u64) -> bool {
        self.segment_index(first_seq)
            .is_some_and(|i| self.segments[i].first_seq == first_seq)
    }

    pub(crate) fn segment_path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(segment::segment_file_name(first_seq))
    }

    /// Keeps `next_seq` above `seq`: a seq a reader marked is never handed out again, even
    /// if its record was lost (an unsynced write), or the old mark would claim the new one.
    pub(crate) fn continue_after(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
    }

    pub(crate) fn check_usable(&self) -> Result<(), StoreError> {
        StoreError::unless_failed(&self.failed, &self.dir)
    }

    /// Poisons the log on an I/O error (see [`StoreError::Failed`]).
    pub(crate) fn guard<T>(&mut self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &r {
            self.poison(e);
        }
        r
    }

    /// Refuses every further operation until reopened: after a failed write or fsync, of the
    /// log's files or of a reader's, what is on disk is no longer known.
    pub(crate) fn poison(&mut self, e: &StoreError) {
        tracing::error!(dir = %self.dir.display(), error = %e, "message log write failed; the log refuses writes until reopened");
        self.failed = Some(e.to_string());
    }

    /// Writes the active segment's buffer to its file (no fsync).
    pub(crate) fn write_active(&mut self) -> Result<(), StoreError> {
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

    /// Writes and fdatasyncs the active segment (not the directory).
    pub(crate) fn sync_data(&mut self) -> Result<(), StoreError> {
        self.write_active()?;
        if self.active_unsynced {
            let path = self.segment_path(self.active().first_seq);
            fsio::sync_data(&self.active_file, &path)?;
            self.active_unsynced = false;
        }
        Ok(())
    }

    pub(crate) fn sync_dir_if_needed(&mut self) -> Result<(), StoreError> {
        if self.dir_unsynced {
            fsio::sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    /// Closes the active segment (written and fdatasynced, so that only the newest segment
    /// can ever have a torn tail) and starts a new, empty one named `first_seq`.
    fn roll_to(&mut self, first_seq: u64) -> Result<(), StoreError> {
        self.sync_data()?;
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
}
