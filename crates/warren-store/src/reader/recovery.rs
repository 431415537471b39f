//! Opening a [`LogReader`]: its side files read back against the log's recovered segments,
//! torn tails cut and damage reported as for the log's own files ([`crate::recovery`]),
//! orphans (side files whose segment is gone) deleted, and the log's next seq kept above
//! every seq the reader ever marked.

use super::{LogReader, SegmentMarks};
use crate::acks::{self, SideFile};
use crate::fsio;
use crate::message_log::MessageLog;
use crate::recovery::{list_log_files, RecoveryReport};
use crate::segment::{self, Segment};
use crate::StoreError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

impl LogReader {
    /// Opens (creating if missing) the reader whose side files are in `dir`, over `log`:
    /// reads every side file of the log's segments (cutting torn tails, reporting damage as
    /// the log's recovery does) and deletes side files whose segment is gone. Keeps the
    /// log's [`MessageLog::next_seq`] above every seq it marked. `dir` may be the log's own
    /// directory (as a classic queue's reader is) or one of its own; one reader per directory.
    pub fn open(
        dir: &Path,
        log: &mut MessageLog,
    ) -> Result<(LogReader, RecoveryReport), StoreError> {
        log.check_usable()?;
        let started = Instant::now();
        let mut report = RecoveryReport::default();
        let mut recovery = ReaderRecovery::start(dir, log.dir(), |s| log.has_segment(s))?;
        for seg in &log.segments {
            if let Some(side) = recovery.read(seg.first_seq, &mut report)? {
                recovery.restore(seg, side);
            }
        }
        let mut reader = recovery.finish(log);
        let r = log
            .sync_dir_if_needed()
            .and_then(|()| reader.sync_own_dir());
        reader.guard(log, r)?;
        report.duration = started.elapsed();
        report.log_damage();
        Ok((reader, report))
    }
}

/// Opening a reader, one segment at a time, so that [`crate::QueueLog`] can merge each
/// segment's marks while the log's recovery has that segment in memory.
pub(crate) struct ReaderRecovery {
    dir: PathBuf,
    in_log_dir: bool,
    side_files: BTreeSet<u64>,
    segments: BTreeMap<u64, SegmentMarks>,
    acked: u64,
    max_marked: Option<u64>,
    dir_unsynced: bool,
}

impl ReaderRecovery {
    /// Lists the reader's side files and deletes those whose segment is gone (left by a
    /// reclaim interrupted between its two deletions).
    pub fn start(
        dir: &Path,
        log_dir: &Path,
        has_segment: impl Fn(u64) -> bool,
    ) -> Result<ReaderRecovery, StoreError> {
        fsio::create_dir_durable(dir)?;
        let (_, mut side_files) = list_log_files(dir)?;
        let orphans: Vec<u64> = side_files
            .iter()
            .copied()
            .filter(|&s| !has_segment(s))
            .collect();
        for orphan in &orphans {
            fsio::remove_file(&dir.join(segment::acks_file_name(*orphan)))?;
            side_files.remove(orphan);
        }
        Ok(ReaderRecovery {
            dir: dir.to_path_buf(),
            in_log_dir: dir == log_dir,
            side_files,
            segments: BTreeMap::new(),
            acked: 0,
            max_marked: None,
            dir_unsynced: !orphans.is_empty(),
        })
    }

    /// Reads the side file of segment `first_seq`, if it has one.
    pub fn read(
        &self,
        first_seq: u64,
        report: &mut RecoveryReport,
    ) -> Result<Option<SideFile>, StoreError> {
        if !self.side_files.contains(&first_seq) {
            return Ok(None);
        }
        let path = self.dir.join(segment::acks_file_name(first_seq));
        acks::read_side_file(&path, first_seq, report).map(Some)
    }

    /// Rebuilds the reader's state for `seg` (as the log recovered it) from its side file.
    pub fn restore(&mut self, seg: &Segment, side: SideFile) {
        let mut m = SegmentMarks {
            file_bytes: side.file_bytes,
            ..SegmentMarks::default()
        };
        for &seq in &side.marks.acked {
            if let Some(o) = seg.ordinal(seq) {
                m.ack(o);
            }
        }
        self.acked += m.acked_count as u64;
        self.max_marked = self.max_marked.max(side.marks.max_seq());
        self.segments.insert(seg.first_seq, m);
    }

    /// The reader, with `log`'s next seq kept above every seq it marked.
    pub fn finish(self, log: &mut MessageLog) -> LogReader {
        if let Some(seq) = self.max_marked {
            log.continue_after(seq);
        }
        let mut reader = LogReader {
            dir: self.dir,
            in_log_dir: self.in_log_dir,
            segments: self.segments,
            acked: self.acked,
            dir_unsynced: false,
            failed: None,
            scratch: Vec::new(),
        };
        if self.dir_unsynced {
            reader.note_dir_change(log);
        }
        reader
    }
}
