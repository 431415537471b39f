//! [`LogReader`]: one reader's settled positions over a [`MessageLog`]: the messages it
//! acked (settled for good) and those it was handed (delivery marks, so that after a crash
//! they come back with `redelivered`), one side file per segment (format in [`crate::acks`])
//! in the reader's own directory. It answers the one question the log asks before deleting a
//! segment: has this reader settled every record in it?
//!
//! A reader never appends, reads or deletes segments itself: its operations take the log they
//! are about, and it keeps only per-record bits indexed by the log's record ordinals, so
//! many readers can share one log (a stream's consumers) or one reader can own what a
//! classic queue's consumers have settled ([`crate::QueueLog`]).
//!
//! # In RAM
//!
//! Per segment it has marked anything in: an *acked* bitmap with one bit per record up to
//! the highest acked one, an ack count, the side file's size and the marks not yet written
//! (about 100 bytes plus the bitmap). A segment's state goes when the log deletes it.
//!
//! Marks are buffered and written on [`LogReader::sync`] (or when a buffer fills), always
//! after the log's own buffered records, so that a mark never reaches the disk ahead of the
//! record it names. A failed write or fsync poisons the reader and the log it was made with:
//! both refuse further work until reopened.

use crate::acks::{self, Mark};
use crate::fsio;
use crate::message_log::{MessageLog, StoredMessage};
use crate::segment::{self, Segment};
use crate::StoreError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod recovery;

pub(crate) use recovery::ReaderRecovery;

/// A side file's pending marks beyond this are written out (not synced).
const MARKS_BUFFER_BYTES: usize = 256 << 10;
/// The scratch buffer for sorting marks keeps at most this capacity between calls.
const MAX_SCRATCH_SEQS: usize = 4096;

/// One reader of a [`MessageLog`]. See the module docs.
#[derive(Debug)]
pub struct LogReader {
    dir: PathBuf,
    /// The side files live in the log's own directory (a classic queue's layout): their
    /// creations and deletions are then fsynced together with the log's.
    in_log_dir: bool,
    /// Only segments this reader marked something in; a segment absent here has no acks.
    segments: BTreeMap<u64, SegmentMarks>,
    /// Acked records still in the log.
    acked: u64,
    /// A side file was created or deleted in `dir` since its last fsync (when not the log's).
    dir_unsynced: bool,
    failed: Option<String>,
    scratch: Vec<u64>,
}

/// One reader's state for one segment.
#[derive(Debug, Default)]
struct SegmentMarks {
    /// Bit `i` set = the record at ordinal `i` is acked; grows to the highest acked ordinal.
    acked: Vec<u64>,
    acked_count: u32,
    /// Size of the side file as written (pending marks not included).
    file_bytes: u64,
    /// Mark records not yet written to the side file.
    pending: Vec<u8>,
    /// The side file was written since its last fdatasync.
    unsynced: bool,
}

impl SegmentMarks {
    fn is_acked(&self, ordinal: usize) -> bool {
        (self.acked.get(ordinal / 64)).is_some_and(|w| w & (1 << (ordinal % 64)) != 0)
    }

    /// Marks the record at `ordinal` acked; false if it was already.
    fn ack(&mut self, ordinal: usize) -> bool {
        if self.is_acked(ordinal) {
            return false;
        }
        if self.acked.len() <= ordinal / 64 {
            self.acked.resize(ordinal / 64 + 1, 0);
        }
        self.acked[ordinal / 64] |= 1 << (ordinal % 64);
        self.acked_count += 1;
        true
    }
}

impl LogReader {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records that this reader is done with these messages (acked, purged, dropped). Seqs
    /// not in the log, or already acked, are ignored. Buffered: durable after
    /// [`LogReader::sync`].
    pub fn ack(&mut self, log: &mut MessageLog, seqs: &[u64]) -> Result<(), StoreError> {
        self.mark(log, seqs, Mark::Acked)
    }

    /// Records that these messages were handed to a consumer, so that after a crash they come
    /// back with `redelivered` set. Marks on seqs not in the log (or acked) are ignored.
    /// Buffered: durable after [`LogReader::sync`].
    pub fn mark_delivered(&mut self, log: &mut MessageLog, seqs: &[u64]) -> Result<(), StoreError> {
        self.mark(log, seqs, Mark::Delivered)
    }

    /// Makes every append to `log` and every mark of this reader so far durable: the log's
    /// segment first, then each side file with new marks, then the directories.
    pub fn sync(&mut self, log: &mut MessageLog) -> Result<(), StoreError> {
        log.check_usable()?;
        self.check_usable()?;
        let r = self.sync_inner(log);
        self.guard(log, r)
    }

    fn sync_inner(&mut self, log: &mut MessageLog) -> Result<(), StoreError> {
        log.sync_data()?;
        self.write_marks(log, true)?;
        log.sync_dir_if_needed()?;
        self.sync_own_dir()
    }

    /// Whether this reader acked `seq` (false for seqs not in the log).
    pub fn is_acked(&self, log: &MessageLog, seq: u64) -> bool {
        let Some(seg) = log.segment_index(seq).map(|i| &log.segments[i]) else {
            return false;
        };
        seg.ordinal(seq)
            .is_some_and(|o| (self.segments.get(&seg.first_seq)).is_some_and(|m| m.is_acked(o)))
    }

    /// Whether this reader has acked every record of the log's segment named `first_seq`
    /// (true of a segment the log no longer has: nothing of it is left to settle).
    pub fn is_settled(&self, log: &MessageLog, first_seq: u64) -> bool {
        match log.segment_index(first_seq).map(|i| &log.segments[i]) {
            Some(seg) if seg.first_seq == first_seq => self.settles(seg),
            _ => true,
        }
    }

    pub(crate) fn settles(&self, seg: &Segment) -> bool {
        let acked = self
            .segments
            .get(&seg.first_seq)
            .map_or(0, |m| m.acked_count);
        acked == seg.records()
    }

    /// Records of `log` this reader has not acked.
    pub fn unacked_count(&self, log: &MessageLog) -> u64 {
        log.record_count() - self.acked
    }

    /// Bytes of the side files once pending marks are written.
    pub fn disk_bytes(&self) -> u64 {
        (self.segments.values())
            .map(|m| m.file_bytes + m.pending.len() as u64)
            .sum()
    }

    /// [`MessageLog::read`], as this reader sees the log: an acked message is
    /// [`StoreError::NotInLog`].
    pub fn read(&self, log: &mut MessageLog, seq: u64) -> Result<StoredMessage, StoreError> {
        log.check_usable()?;
        self.check_usable()?;
        if self.is_acked(log, seq) {
            return Err(StoreError::NotInLog { seq });
        }
        log.read(seq)
    }

    /// [`MessageLog::read_from`] without the messages this reader acked: the next unacked
    /// records at or above `from`, from one segment; empty only when there are none left.
    /// Segments this reader settled are passed over without being read.
    pub fn read_from(
        &self,
        log: &mut MessageLog,
        mut from: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, StoredMessage)>, StoreError> {
        log.check_usable()?;
        self.check_usable()?;
        loop {
            let idx = log.segment_index(from).unwrap_or(0);
            if idx + 1 < log.segments.len() && self.settles(&log.segments[idx]) {
                from = from.max(log.segments[idx + 1].first_seq);
                continue;
            }
            let batch = log.read_from(from, max_bytes)?;
            let Some(&(last, _)) = batch.last() else {
                return Ok(batch);
            };
            let unacked: Vec<_> = (batch.into_iter())
                .filter(|(seq, _)| !self.is_acked(log, *seq))
                .collect();
            if !unacked.is_empty() {
                return Ok(unacked);
            }
            from = last + 1;
        }
    }

    fn mark(&mut self, log: &mut MessageLog, seqs: &[u64], mark: Mark) -> Result<(), StoreError> {
        log.check_usable()?;
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
            let idx = log.segments.partition_point(|s| s.first_seq <= sorted[i]);
            let j = match log.segments.get(idx) {
                Some(next) => i + sorted[i..].partition_point(|&s| s < next.first_seq),
                None => sorted.len(),
            };
            if let Some(seg) = idx.checked_sub(1).map(|k| &log.segments[k]) {
                let marks = self.segments.entry(seg.first_seq).or_default();
                // Keep, in place, the seqs this mark changes something for.
                let mut kept = i;
                for t in i..j {
                    let seq = sorted[t];
                    let keep = match (seg.ordinal(seq), mark) {
                        (None, _) => false,
                        (Some(o), Mark::Acked) => marks.ack(o),
                        (Some(o), Mark::Delivered) => !marks.is_acked(o),
                    };
                    if keep {
                        sorted[kept] = seq;
                        kept += 1;
                    }
                }
                if mark == Mark::Acked {
                    self.acked += (kept - i) as u64;
                }
                acks::put_marks(&mut marks.pending, mark, seg.first_seq, &sorted[i..kept]);
                flush_needed |= marks.pending.len() >= MARKS_BUFFER_BYTES;
            }
            i = j;
        }
        sorted.shrink_to(MAX_SCRATCH_SEQS);
        self.scratch = sorted;
        if flush_needed {
            let r = self.write_marks(log, false);
            self.guard(log, r)?;
        }
        Ok(())
    }

    /// Writes pending marks to the side files; with `sync`, also fdatasyncs every side file
    /// written since its last fdatasync. The log's buffered records are written out first,
    /// so that a mark never reaches the disk ahead of the record it names.
    fn write_marks(&mut self, log: &mut MessageLog, sync: bool) -> Result<(), StoreError> {
        log.write_active()?;
        let mut created = false;
        let r = (|| {
            for (&first_seq, m) in self.segments.iter_mut() {
                if m.pending.is_empty() && !(sync && m.unsynced) {
                    continue;
                }
                let path = self.dir.join(segment::acks_file_name(first_seq));
                let (mut file, new) = fsio::open_append(&path)?;
                created |= new;
                if !m.pending.is_empty() {
                    fsio::write_all(&mut file, &path, &m.pending)?;
                    m.file_bytes += m.pending.len() as u64;
                    m.pending.clear();
                    if m.pending.capacity() > 4 * MARKS_BUFFER_BYTES {
                        m.pending.shrink_to(MARKS_BUFFER_BYTES);
                    }
                    m.unsynced = true;
                }
                if sync {
                    fsio::sync_data(&file, &path)?;
                    m.unsynced = false;
                }
            }
            Ok(())
        })();
        if created {
            self.note_dir_change(log);
        }
        r
    }

    /// Drops this reader's state and side files for segments the log deleted.
    pub(crate) fn forget_segments(
        &mut self,
        doomed: &[u64],
        log: &mut MessageLog,
    ) -> Result<(), StoreError> {
        for &first_seq in doomed {
            if let Some(m) = self.segments.remove(&first_seq) {
                self.acked -= m.acked_count as u64;
            }
            let path = self.dir.join(segment::acks_file_name(first_seq));
            if let Err(e) = fsio::remove_file(&path) {
                self.failed = Some(e.to_string());
                return Err(e);
            }
        }
        self.note_dir_change(log);
        Ok(())
    }

    /// No marks of these segments are waiting to be written (they would be lost with them).
    pub(crate) fn has_no_pending_marks(&self, segments: &[u64]) -> bool {
        (segments.iter()).all(|s| self.segments.get(s).is_none_or(|m| m.pending.is_empty()))
    }

    fn note_dir_change(&mut self, log: &mut MessageLog) {
        match self.in_log_dir {
            true => log.dir_unsynced = true,
            false => self.dir_unsynced = true,
        }
    }

    fn sync_own_dir(&mut self) -> Result<(), StoreError> {
        if self.dir_unsynced {
            fsio::sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    pub(crate) fn check_usable(&self) -> Result<(), StoreError> {
        StoreError::unless_failed(&self.failed, &self.dir)
    }

    /// Poisons the reader, and the log it was working with, on an I/O error.
    fn guard<T>(
        &mut self,
        log: &mut MessageLog,
        r: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
            log.poison(e);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(seqs: &[u64]) -> Segment {
        let mut s = Segment::new(seqs[0]);
        for &seq in seqs {
            s.push(seq, 0);
        }
        s
    }

    fn ack(seg: &Segment, m: &mut SegmentMarks, seq: u64) -> bool {
        seg.ordinal(seq).is_some_and(|o| m.ack(o))
    }

    #[test]
    fn acks_count_once_and_only_for_seqs_in_the_segment() {
        let s = segment(&[10, 11, 12, 20, 21, 500]);
        let mut m = SegmentMarks::default();
        assert!(!ack(&s, &mut m, 13), "not in the segment");
        assert!(!ack(&s, &mut m, 9));
        assert!(ack(&s, &mut m, 11));
        assert!(!ack(&s, &mut m, 11), "already acked");
        assert!(m.is_acked(s.ordinal(11).unwrap()));
        assert!(!m.is_acked(s.ordinal(20).unwrap()));
        for seq in [10, 12, 20, 21] {
            assert!(ack(&s, &mut m, seq));
        }
        assert_ne!(m.acked_count, s.records());
        assert!(ack(&s, &mut m, 500));
        assert_eq!(m.acked_count, s.records(), "every record acked: settled");
    }

    #[test]
    fn bitmap_grows_only_to_the_highest_acked_record() {
        let s = segment(&(0..200).collect::<Vec<_>>());
        let mut m = SegmentMarks::default();
        assert!(!m.is_acked(199), "nothing acked, no bitmap");
        assert!(m.acked.is_empty());
        assert!(ack(&s, &mut m, 63));
        assert_eq!(m.acked.len(), 1);
        assert!(ack(&s, &mut m, 130));
        assert!(ack(&s, &mut m, 64));
        assert_eq!(m.acked.len(), 3);
        assert_eq!(m.acked_count, 3);
        assert!(m.is_acked(130) && !m.is_acked(129) && !m.is_acked(199));
    }
}
