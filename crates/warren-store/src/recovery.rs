//! Opening a [`MessageLog`]: rebuilding its index from its segment files, one segment at a
//! time, and handing back the records its owner wants (a classic queue: those its reader has
//! not acked, see [`crate::QueueLog::open_with`]). Also the report of what was found and the
//! damage policy, which readers' side files share.
//!
//! Segments are read whole (one `read` each, no per-record system calls) and scanned with
//! [`crate::record::scan`]. Records handed back are slices of the segment's read buffer, so
//! recovery allocates per segment, not per message; when less than half of a segment is
//! kept its kept records are first copied into a compact buffer, so that a few survivors do
//! not pin a whole segment's worth of memory.
//!
//! Damage policy (the scanner tells a damaged tail from damage in the middle):
//! - the tail of the newest segment, and of any side file, is a torn write that was never
//!   synced: it is cut off (the file truncated) and logged with `tracing::warn`;
//! - anything else (damage in the middle of a file, a damaged tail in an older segment,
//!   which was fdatasynced before its successor was created) is reported in
//!   [`RecoveryReport::damaged`] with file and offset, the damaged bytes skipped and every
//!   intact record recovered.

use crate::fsio;
use crate::message_log::{LogConfig, MessageLog, StoredMessage};
use crate::record::{scan, DamageKind, PayloadCheck, Scan};
use crate::segment::{self, FieldLengths, LogFile, MessageLayout, Segment};
use crate::StoreError;
use bytes::Bytes;
use std::collections::{BTreeSet, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warren_amqp::ShortStr;

/// A message handed back by [`crate::QueueLog::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredMessage {
    pub seq: u64,
    pub message: StoredMessage,
    /// A delivery mark for it was durable: it may have reached a consumer before the crash.
    pub redelivered: bool,
}

/// Damage found by recovery and not repaired (a torn tail is repaired, so it is not here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    /// Where the damaged bytes start in the file.
    pub offset: u64,
    /// How many bytes were passed over.
    pub skipped_bytes: u64,
    pub what: DamageKind,
}

/// What opening a log or a reader found.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub damaged: Vec<Damage>,
    /// Bytes cut off the ends of files as torn writes (segment and side files).
    pub torn_tail_bytes: u64,
    /// Segment files read.
    pub segments: usize,
    /// Messages handed back (for a queue: appended and not acked).
    pub messages: u64,
    pub duration: Duration,
}

impl RecoveryReport {
    pub(crate) fn log_damage(&self) {
        for d in &self.damaged {
            tracing::error!(file = %d.path.display(), offset = d.offset, skipped_bytes = d.skipped_bytes, what = %d.what, "damaged record in queue log skipped");
        }
    }
}

impl MessageLog {
    /// Opens (creating if missing) the log in `dir` and rebuilds its index; hands nothing
    /// back (read what is needed with [`MessageLog::read_from`]). Side files in `dir` are
    /// left to their reader ([`crate::LogReader::open`]). See the module docs for damage.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(MessageLog, RecoveryReport), StoreError> {
        let started = Instant::now();
        let mut report = RecoveryReport::default();
        let mut recovery = LogRecovery::start(dir)?;
        while recovery.next_segment(&mut report, |_| false)?.is_some() {}
        let mut log = recovery.finish(config)?;
        let r = log.sync_dir_if_needed();
        log.guard(r)?;
        report.duration = started.elapsed();
        report.log_damage();
        Ok((log, report))
    }
}

/// Opening a log, one segment at a time (see the module docs).
pub(crate) struct LogRecovery {
    dir: PathBuf,
    /// Segment names in seq order.
    names: Vec<u64>,
    /// How many of them have been read.
    read: usize,
    segments: VecDeque<Segment>,
    next_seq: u64,
}

impl LogRecovery {
    /// Creates `dir` if missing and lists its segments.
    pub fn start(dir: &Path) -> Result<LogRecovery, StoreError> {
        fsio::create_dir_durable(dir)?;
        let (names, _) = list_log_files(dir)?;
        Ok(LogRecovery {
            dir: dir.to_path_buf(),
            names: names.into_iter().collect(),
            read: 0,
            segments: VecDeque::new(),
            next_seq: 0,
        })
    }

    pub fn has_segment(&self, first_seq: u64) -> bool {
        self.names.binary_search(&first_seq).is_ok()
    }

    /// The segment [`LogRecovery::next_segment`] reads next.
    pub fn peek(&self) -> Option<u64> {
        self.names.get(self.read).copied()
    }

    /// The segment the last [`LogRecovery::next_segment`] read.
    pub fn last_segment(&self) -> &Segment {
        self.segments.back().expect("a segment was read")
    }

    /// Reads and scans the next segment; returns the records for which `keep(seq)` is true
    /// (asked in seq order), or `None` once every segment has been read.
    pub fn next_segment(
        &mut self,
        report: &mut RecoveryReport,
        keep: impl FnMut(u64) -> bool,
    ) -> Result<Option<Kept>, StoreError> {
        let Some(first_seq) = self.peek() else {
            return Ok(None);
        };
        self.read += 1;
        // Names order the segments: each one's seqs lie between its name and the next's.
        let range = SeqRange {
            lo: first_seq,
            hi: self.peek().unwrap_or(u64::MAX),
        };
        let newest = self.peek().is_none();
        let (seg, kept) = recover_segment(&self.dir, first_seq, range, newest, keep, report)?;
        let last = seg.last_seq();
        self.next_seq = (self.next_seq.max(first_seq)).max(last.map_or(0, |l| l + 1));
        self.segments.push_back(seg);
        report.segments += 1;
        report.messages += kept.live.len() as u64;
        Ok(Some(kept))
    }

    /// The log, once every segment was read: the newest segment becomes the active one
    /// (created if there is none) and is fdatasynced, since it may hold records a crashed
    /// process wrote but never synced, which are about to be handed out: whatever `open`
    /// returns survives a second crash. The directory fsync is left to the caller (the log's
    /// `dir_unsynced`), so that one fsync covers this and its readers' changes.
    pub fn finish(mut self, config: LogConfig) -> Result<MessageLog, StoreError> {
        debug_assert!(self.peek().is_none());
        let active_seq = match self.segments.back() {
            Some(seg) => seg.first_seq,
            None => {
                self.segments.push_back(Segment::new(self.next_seq));
                self.next_seq
            }
        };
        let active_path = self.dir.join(segment::segment_file_name(active_seq));
        let (active_file, created) = fsio::open_append(&active_path)?;
        fsio::sync_data(&active_file, &active_path)?;
        let mut log =
            MessageLog::from_parts(self.dir, config, self.segments, active_file, self.next_seq);
        log.dir_unsynced = created;
        Ok(log)
    }
}

/// The segment and side files in `dir`, by first seq; other files are left alone.
pub(crate) fn list_log_files(dir: &Path) -> Result<(BTreeSet<u64>, BTreeSet<u64>), StoreError> {
    let mut segments = BTreeSet::new();
    let mut acks = BTreeSet::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        match entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            Some(LogFile::Segment(seq)) => segments.insert(seq),
            Some(LogFile::Acks(seq)) => acks.insert(seq),
            None => continue,
        };
    }
    Ok((segments, acks))
}

/// Files damage into the report and cuts a torn tail (if `cut_tail`); returns the file's
/// length afterwards.
pub(crate) fn settle(
    path: &Path,
    buf: &[u8],
    s: &Scan,
    cut_tail: bool,
    report: &mut RecoveryReport,
) -> Result<u64, StoreError> {
    for d in &s.damage {
        report.damaged.push(Damage {
            path: path.to_path_buf(),
            offset: d.offset as u64,
            skipped_bytes: d.skipped as u64,
            what: d.kind,
        });
    }
    let Some((offset, kind)) = s.tail else {
        return Ok(buf.len() as u64);
    };
    let cut = (buf.len() - offset) as u64;
    if !cut_tail {
        report.damaged.push(Damage {
            path: path.to_path_buf(),
            offset: offset as u64,
            skipped_bytes: cut,
            what: kind,
        });
        return Ok(buf.len() as u64);
    }
    tracing::warn!(file = %path.display(), offset, bytes = cut, what = %kind, "cutting off torn tail (an unsynced write)");
    fsio::truncate(path, offset as u64)?;
    report.torn_tail_bytes += cut;
    Ok(offset as u64)
}

/// Seqs a segment's records must fall in: `lo..hi`.
#[derive(Clone, Copy)]
struct SeqRange {
    lo: u64,
    hi: u64,
}

/// A record the scan keeps: 32 bytes, enough to slice its fields.
struct Live {
    seq: u64,
    payload_start: usize,
    payload_len: u32,
    lengths: FieldLengths,
}

/// The scan's view of one segment: checks seq order, builds the segment's index, keeps the
/// records `keep` asks for.
struct SegmentScan<K> {
    range: SeqRange,
    prev: Option<u64>,
    keep: K,
    segment: Segment,
    live: Vec<Live>,
    live_bytes: usize,
}

impl<K: FnMut(u64) -> bool> PayloadCheck for SegmentScan<K> {
    const MIN_PAYLOAD_BYTES: usize = segment::MIN_MESSAGE_PAYLOAD_BYTES;

    fn check(&self, payload: &[u8]) -> Result<(), DamageKind> {
        let seq = segment::decode_message(payload)?.seq;
        if seq < self.range.lo || seq >= self.range.hi {
            return Err(DamageKind::BadPayload("seq outside the segment's range"));
        }
        if self.prev.is_some_and(|p| seq <= p) {
            return Err(DamageKind::BadPayload(
                "seq not above the previous record's",
            ));
        }
        Ok(())
    }

    fn accept(&mut self, offset: usize, payload: &[u8]) {
        let Ok(layout) = segment::decode_message(payload) else {
            debug_assert!(false, "accept after a failed check");
            return;
        };
        let seq = layout.seq;
        self.prev = Some(seq);
        self.segment.push(seq, offset as u64);
        if !(self.keep)(seq) {
            return;
        }
        self.live.push(Live {
            seq,
            payload_start: offset + crate::record::RECORD_HEADER_BYTES,
            payload_len: payload.len() as u32,
            lengths: layout.lengths(),
        });
        self.live_bytes += payload.len();
    }
}

/// Advances a sorted slice past every seq below `seq`; true if it then starts with `seq`.
pub(crate) fn skip_to(sorted: &mut &[u64], seq: u64) -> bool {
    let n = sorted.partition_point(|&s| s < seq);
    *sorted = &sorted[n..];
    sorted.first() == Some(&seq)
}

fn recover_segment(
    dir: &Path,
    first_seq: u64,
    range: SeqRange,
    newest: bool,
    keep: impl FnMut(u64) -> bool,
    report: &mut RecoveryReport,
) -> Result<(Segment, Kept), StoreError> {
    let path = dir.join(segment::segment_file_name(first_seq));
    let mut buf = fsio::read(&path)?;
    let mut s = SegmentScan {
        range,
        prev: None,
        keep,
        segment: Segment::new(first_seq),
        live: Vec::new(),
        live_bytes: 0,
    };
    let scanned = scan(&buf, &mut s);
    // Only the newest segment can hold an unsynced write: older ones were fdatasynced
    // before their successor was created.
    let file_bytes = settle(&path, &buf, &scanned, newest, report)?;
    buf.truncate(file_bytes as usize);
    let SegmentScan {
        mut segment,
        mut live,
        live_bytes,
        ..
    } = s;
    segment.file_bytes = file_bytes;

    let bytes = if live_bytes * 2 < buf.len() {
        let mut compact = Vec::with_capacity(live_bytes);
        for l in &mut live {
            let start = compact.len();
            compact
                .extend_from_slice(&buf[l.payload_start..l.payload_start + l.payload_len as usize]);
            l.payload_start = start;
        }
        drop(buf);
        Bytes::from(compact)
    } else {
        Bytes::from(buf)
    };
    Ok((segment, Kept { bytes, live }))
}

/// The records of one segment that recovery kept, as slices of one buffer.
pub(crate) struct Kept {
    bytes: Bytes,
    live: Vec<Live>,
}

impl Kept {
    /// Hands each kept record to `f`, in seq order.
    pub fn for_each(self, mut f: impl FnMut(u64, StoredMessage)) {
        let bytes = self.bytes;
        for l in self.live {
            let payload = &bytes[l.payload_start..l.payload_start + l.payload_len as usize];
            let layout = MessageLayout::from_lengths(l.lengths, l.seq, payload);
            let at =
                |r: Range<usize>| bytes.slice(l.payload_start + r.start..l.payload_start + r.end);
            let short = |r| ShortStr::from_bytes(at(r)).expect("UTF-8 checked during the scan");
            f(
                l.seq,
                StoredMessage {
                    exchange: short(layout.exchange),
                    routing_key: short(layout.routing_key),
                    properties_raw: at(layout.properties),
                    body: at(layout.body),
                    enqueued_ms: layout.enqueued_ms,
                },
            );
        }
    }
}
