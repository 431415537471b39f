//! Opening a [`QueueLog`]: rebuilding it from its segment and side files, and handing back
//! every message that was appended and not acked, in seq order.
//!
//! Segments are read whole (one `read` each, no per-record system calls), scanned with
//! [`crate::record::scan`] and merged with their side file's sorted marks. Recovered messages
//! are slices of the segment's read buffer, so recovery allocates per segment, not per
//! message; when most of a segment is acked its live records are first copied into a
//! compact buffer, so that a few survivors do not pin a whole segment's worth of memory.
//!
//! Damage policy (the scanner tells a damaged tail from damage in the middle):
//! - the tail of the newest segment, and of any side file, is a torn write that was never
//!   synced: it is cut off (the file truncated) and logged with `tracing::warn`;
//! - anything else (damage in the middle of a file, a damaged tail in an older segment,
//!   which was fdatasynced before its successor was created) is reported in
//!   [`RecoveryReport::damaged`] with file and offset, the damaged bytes skipped and every
//!   intact record recovered.

use crate::acks::Marks;
use crate::fsio;
use crate::queue_log::{QueueLog, QueueLogConfig, StoredMessage};
use crate::record::{scan, DamageKind, PayloadCheck, Scan};
use crate::segment::{self, FieldLengths, LogFile, MessageLayout, Segment};
use crate::StoreError;
use bytes::Bytes;
use std::collections::{BTreeSet, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warren_amqp::ShortStr;

/// A message handed back by [`QueueLog::open`].
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

/// What [`QueueLog::open`] found.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub damaged: Vec<Damage>,
    /// Bytes cut off the ends of files as torn writes (segment and side files).
    pub torn_tail_bytes: u64,
    /// Segment files read.
    pub segments: usize,
    /// Messages recovered (appended and not acked).
    pub messages: u64,
    pub duration: Duration,
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
        fsio::create_dir_durable(dir)?;
        let (segment_names, acks_names) = list_log_files(dir)?;
        let mut dir_unsynced = false;
        for orphan in acks_names.difference(&segment_names) {
            // Left behind by a reclaim interrupted between its two deletions.
            fsio::remove_file(&dir.join(segment::acks_file_name(*orphan)))?;
            dir_unsynced = true;
        }

        let mut report = RecoveryReport::default();
        let mut segments = VecDeque::new();
        let mut next_seq = 0u64;
        let names: Vec<u64> = segment_names.into_iter().collect();
        for (i, &first_seq) in names.iter().enumerate() {
            let newest = i + 1 == names.len();
            let marks = read_marks(dir, first_seq, &mut report)?;
            // Names order the segments: each one's seqs lie between its name and the next's.
            let range = SeqRange {
                lo: first_seq,
                hi: names.get(i + 1).copied().unwrap_or(u64::MAX),
            };
            let mut seg = recover_segment(
                dir,
                first_seq,
                range,
                newest,
                &marks,
                &mut each,
                &mut report,
            )?;
            seg.acks_file_bytes = marks.file_bytes;
            let last = seg.last_seq();
            next_seq = next_seq
                .max(first_seq)
                .max(last.map_or(0, |l| l + 1))
                .max(marks.marks.max_seq().map_or(0, |m| m.saturating_add(1)));
            segments.push_back(seg);
        }
        report.segments = names.len();

        let active_seq = match segments.back() {
            Some(seg) => seg.first_seq,
            None => {
                segments.push_back(Segment::new(next_seq));
                dir_unsynced = true;
                next_seq
            }
        };
        let active_path = dir.join(segment::segment_file_name(active_seq));
        let (active_file, created) = fsio::open_append(&active_path)?;
        // The newest segment may hold records a crashed process wrote but never synced; they
        // are about to be handed out, so make them durable first: whatever `open` returns
        // survives a second crash.
        fsio::sync_data(&active_file, &active_path)?;
        if dir_unsynced || created {
            fsio::sync_dir(dir)?;
        }
        let mut log =
            QueueLog::from_parts(dir.to_path_buf(), config, segments, active_file, next_seq);
        log.reclaim()?;
        if log.dir_unsynced {
            fsio::sync_dir(dir)?;
            log.dir_unsynced = false;
        }

        report.duration = started.elapsed();
        for d in &report.damaged {
            tracing::error!(file = %d.path.display(), offset = d.offset, skipped_bytes = d.skipped_bytes, what = %d.what, "damaged record in queue log skipped");
        }
        tracing::debug!(dir = %dir.display(), segments = report.segments, messages = report.messages, duration_ms = report.duration.as_millis() as u64, "queue log recovered");
        Ok((log, report))
    }
}

/// The segment and side files in `dir`, by first seq; other files are left alone.
fn list_log_files(dir: &Path) -> Result<(BTreeSet<u64>, BTreeSet<u64>), StoreError> {
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

struct SideFile {
    marks: Marks,
    file_bytes: u64,
}

/// Reads a segment's side file (if any), cutting off a torn tail.
fn read_marks(
    dir: &Path,
    first_seq: u64,
    report: &mut RecoveryReport,
) -> Result<SideFile, StoreError> {
    let path = dir.join(segment::acks_file_name(first_seq));
    let mut marks = Marks::new(first_seq);
    if !path.exists() {
        return Ok(SideFile {
            marks,
            file_bytes: 0,
        });
    }
    let buf = fsio::read(&path)?;
    let s = scan(&buf, &mut marks);
    marks.finish();
    // Side files of every segment are appended to, so any of them can have a torn tail.
    let file_bytes = settle(&path, &buf, &s, true, report)?;
    Ok(SideFile { marks, file_bytes })
}

/// Files damage into the report and cuts a torn tail (if `cut_tail`); returns the file's
/// length afterwards.
fn settle(
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

/// A live (not acked) record found by the scan: 32 bytes, enough to slice its fields.
struct Live {
    seq: u64,
    payload_start: usize,
    payload_len: u32,
    lengths: FieldLengths,
    redelivered: bool,
}

/// The scan's view of one segment: checks seq order, merges the side file's sorted marks.
struct SegmentScan<'m> {
    range: SeqRange,
    prev: Option<u64>,
    acked: &'m [u64],
    delivered: &'m [u64],
    segment: Segment,
    live: Vec<Live>,
    live_bytes: usize,
}

impl PayloadCheck for SegmentScan<'_> {
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
        if skip_to(&mut self.acked, seq) {
            self.segment.ack(seq);
            return;
        }
        let redelivered = skip_to(&mut self.delivered, seq);
        self.live.push(Live {
            seq,
            payload_start: offset + crate::record::RECORD_HEADER_BYTES,
            payload_len: payload.len() as u32,
            lengths: layout.lengths(),
            redelivered,
        });
        self.live_bytes += payload.len();
    }
}

/// Advances a sorted slice past every seq below `seq`; true if it then starts with `seq`.
fn skip_to(sorted: &mut &[u64], seq: u64) -> bool {
    let n = sorted.partition_point(|&s| s < seq);
    *sorted = &sorted[n..];
    sorted.first() == Some(&seq)
}

fn recover_segment(
    dir: &Path,
    first_seq: u64,
    range: SeqRange,
    newest: bool,
    marks: &SideFile,
    out: &mut impl FnMut(RecoveredMessage),
    report: &mut RecoveryReport,
) -> Result<Segment, StoreError> {
    let path = dir.join(segment::segment_file_name(first_seq));
    let mut buf = fsio::read(&path)?;
    let mut s = SegmentScan {
        range,
        prev: None,
        acked: &marks.marks.acked,
        delivered: &marks.marks.delivered,
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
    report.messages += live.len() as u64;
    for l in live {
        let payload = &bytes[l.payload_start..l.payload_start + l.payload_len as usize];
        let layout = MessageLayout::from_lengths(l.lengths, l.seq, payload);
        let at = |r: Range<usize>| bytes.slice(l.payload_start + r.start..l.payload_start + r.end);
        let short = |r| ShortStr::from_bytes(at(r)).expect("UTF-8 checked during the scan");
        out(RecoveredMessage {
            seq: l.seq,
            message: StoredMessage {
                exchange: short(layout.exchange),
                routing_key: short(layout.routing_key),
                properties_raw: at(layout.properties),
                body: at(layout.body),
                enqueued_ms: layout.enqueued_ms,
            },
            redelivered: l.redelivered,
        });
    }
    Ok(segment)
}
