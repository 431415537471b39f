//! Segment files, which hold a log's messages, and [`Segment`], all that the log keeps in RAM
//! about one of them.
//!
//! # On disk
//!
//! A log directory holds segment files named after the lowest seq they may contain,
//! zero-padded so that name order is seq order: `00000000000000000042.seg`. Every seq in a
//! segment is at least its name and below the next segment's name; within a segment seqs
//! strictly increase (they need not be contiguous: the broker numbers transient messages
//! too, and those never reach the log). A segment is a concatenation of records (see
//! [`crate::record`]) whose payload is one message:
//!
//! ```text
//! payload := seq: u64 LE
//!            kind: u8                      1 = message, 2 = message with enqueue time;
//!                                          other values are reserved (streams)
//!            [enqueued_ms: u64 LE]         kind 2 only: ms since the Unix epoch (TTLs)
//!            exchange_len: u8, exchange    UTF-8, as published
//!            routing_key_len: u8, routing_key
//!            properties_len: u32 LE, properties_raw   the content header's property bytes
//!            body_len: u32 LE, body
//! ```
//!
//! Only the newest segment (the *active* one) is appended to; it is closed and a new one
//! started when the next record would take it past `segment_size_bytes`. A segment says
//! nothing about who has read or acked its messages: that is each reader's, in its side
//! files (see [`crate::acks`] and [`crate::reader`]).
//!
//! # In RAM
//!
//! Per segment: its name, the seqs it holds as runs of consecutive seqs (one run when seqs
//! are contiguous, 16 bytes per further gap), a record count, the file size, and where each
//! record starts in the file (4 bytes per record, so that one message can be read back by
//! seq). Nothing else: bodies stay with the broker (or on disk). A record's *ordinal* (its
//! position in the file, from 0) is what readers index their per-record bits by.

use crate::record::DamageKind;
use crate::StoredMessage;
use bytes::Bytes;
use std::ops::Range;

/// `kind` byte of a message record.
const KIND_MESSAGE: u8 = 1;
/// `kind` byte of a message record that carries its enqueue time.
const KIND_TIMED_MESSAGE: u8 = 2;

/// seq + kind + the two short-string lengths + the two long lengths.
pub(crate) const MIN_MESSAGE_PAYLOAD_BYTES: usize = 8 + 1 + 1 + 1 + 4 + 4;

pub(crate) fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

pub(crate) fn acks_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.acks")
}

/// What a file in a log directory is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFile {
    Segment(u64),
    Acks(u64),
}

pub(crate) fn parse_file_name(name: &str) -> Option<LogFile> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq = stem.parse().ok()?;
    match ext {
        "seg" => Some(LogFile::Segment(seq)),
        "acks" => Some(LogFile::Acks(seq)),
        _ => None,
    }
}

pub(crate) fn message_payload_len(msg: &StoredMessage) -> usize {
    MIN_MESSAGE_PAYLOAD_BYTES
        + if msg.enqueued_ms.is_some() { 8 } else { 0 }
        + msg.exchange.len()
        + msg.routing_key.len()
        + msg.properties_raw.len()
        + msg.body.len()
}

/// The size of the record [`encode_message`] makes of `msg`, header included; refused if its
/// payload would pass the record size limit.
pub(crate) fn message_record_len(msg: &StoredMessage) -> Result<u64, crate::StoreError> {
    use crate::record::{MAX_PAYLOAD_BYTES, RECORD_HEADER_BYTES};
    let payload_len = message_payload_len(msg);
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(crate::StoreError::MessageTooLarge {
            bytes: payload_len as u64,
            max_bytes: MAX_PAYLOAD_BYTES as u64,
        });
    }
    Ok((RECORD_HEADER_BYTES + payload_len) as u64)
}

/// Appends a message payload; the caller has checked that the lengths fit their fields
/// (`ShortStr` guarantees ≤ 255; the record limit keeps the rest under 4 GiB).
pub(crate) fn encode_message(out: &mut Vec<u8>, seq: u64, msg: &StoredMessage) {
    out.reserve(message_payload_len(msg));
    out.extend_from_slice(&seq.to_le_bytes());
    match msg.enqueued_ms {
        None => out.push(KIND_MESSAGE),
        Some(ms) => {
            out.push(KIND_TIMED_MESSAGE);
            out.extend_from_slice(&ms.to_le_bytes());
        }
    }
    out.push(msg.exchange.len() as u8);
    out.extend_from_slice(msg.exchange.as_bytes());
    out.push(msg.routing_key.len() as u8);
    out.extend_from_slice(msg.routing_key.as_bytes());
    out.extend_from_slice(&(msg.properties_raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&msg.properties_raw);
    out.extend_from_slice(&(msg.body.len() as u32).to_le_bytes());
    out.extend_from_slice(&msg.body);
}

/// Where a message's fields are within its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageLayout {
    pub seq: u64,
    pub enqueued_ms: Option<u64>,
    pub exchange: Range<usize>,
    pub routing_key: Range<usize>,
    pub properties: Range<usize>,
    pub body: Range<usize>,
}

impl MessageLayout {
    /// The layout of a payload already checked by [`decode_message`], from the field
    /// lengths that are not implied by the payload's length (so recovery can keep a few
    /// bytes per live record instead of the whole layout) and the payload itself (for the
    /// enqueue time).
    pub fn from_lengths(lengths: FieldLengths, seq: u64, payload: &[u8]) -> MessageLayout {
        let payload_len = payload.len();
        let (enqueued_ms, start) = if lengths.timed {
            let ms = u64::from_le_bytes(payload[9..17].try_into().expect("checked by decode"));
            (Some(ms), 18)
        } else {
            (None, 10)
        };
        let exchange = start..start + lengths.exchange as usize;
        let routing_key = exchange.end + 1..exchange.end + 1 + lengths.routing_key as usize;
        let properties = routing_key.end + 4..routing_key.end + 4 + lengths.properties as usize;
        let body = properties.end + 4..payload_len;
        MessageLayout {
            seq,
            enqueued_ms,
            exchange,
            routing_key,
            properties,
            body,
        }
    }

    pub fn lengths(&self) -> FieldLengths {
        FieldLengths {
            timed: self.enqueued_ms.is_some(),
            exchange: self.exchange.len() as u8,
            routing_key: self.routing_key.len() as u8,
            properties: self.properties.len() as u32,
        }
    }
}

/// The lengths of a message's variable fields, body excepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldLengths {
    /// The record carries an enqueue time (kind 2).
    pub timed: bool,
    pub exchange: u8,
    pub routing_key: u8,
    pub properties: u32,
}

/// Decodes a payload's layout, checking every length and that the short strings are UTF-8.
pub(crate) fn decode_message(p: &[u8]) -> Result<MessageLayout, DamageKind> {
    let bad = DamageKind::BadPayload;
    if p.len() < MIN_MESSAGE_PAYLOAD_BYTES {
        return Err(bad("message payload too short"));
    }
    let seq = u64::from_le_bytes(p[0..8].try_into().unwrap());
    let (enqueued_ms, mut pos) = match p[8] {
        KIND_MESSAGE => (None, 9),
        KIND_TIMED_MESSAGE => {
            let b = p.get(9..17).ok_or(bad("enqueue time past the end"))?;
            (Some(u64::from_le_bytes(b.try_into().unwrap())), 17)
        }
        _ => return Err(bad("unknown record kind")),
    };
    let mut field = |width: usize| -> Result<Range<usize>, DamageKind> {
        let len = match width {
            1 => *p.get(pos).ok_or(bad("field length past the end"))? as usize,
            _ => {
                let b = p
                    .get(pos..pos + 4)
                    .ok_or(bad("field length past the end"))?;
                u32::from_le_bytes(b.try_into().unwrap()) as usize
            }
        };
        let start = pos + width;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= p.len())
            .ok_or(bad("field runs past the end of the record"))?;
        pos = end;
        Ok(start..end)
    };
    let exchange = field(1)?;
    let routing_key = field(1)?;
    let properties = field(4)?;
    let body = field(4)?;
    if pos != p.len() {
        return Err(bad("bytes after the body"));
    }
    if std::str::from_utf8(&p[exchange.clone()]).is_err()
        || std::str::from_utf8(&p[routing_key.clone()]).is_err()
    {
        return Err(bad("exchange or routing key is not UTF-8"));
    }
    Ok(MessageLayout {
        seq,
        enqueued_ms,
        exchange,
        routing_key,
        properties,
        body,
    })
}

/// Decodes one whole record (header and payload, as written by [`crate::record::put_record`]
/// with an [`encode_message`] payload), checking its length and CRC32C: a message read back
/// from disk at a known place. The fields are slices of `record`.
pub(crate) fn decode_message_record(record: Bytes) -> Result<(u64, StoredMessage), DamageKind> {
    use crate::record::RECORD_HEADER_BYTES;
    if record.len() < RECORD_HEADER_BYTES {
        return Err(DamageKind::TruncatedHeader);
    }
    let len = u32::from_le_bytes(record[0..4].try_into().unwrap());
    let crc = u32::from_le_bytes(record[4..8].try_into().unwrap());
    if record.len() != RECORD_HEADER_BYTES + len as usize {
        return Err(DamageKind::TruncatedRecord(len));
    }
    let payload = record.slice(RECORD_HEADER_BYTES..);
    if crc32c::crc32c(&payload) != crc {
        return Err(DamageKind::BadChecksum);
    }
    let layout = decode_message(&payload)?;
    let short = |r: Range<usize>| {
        warren_amqp::ShortStr::from_bytes(payload.slice(r)).expect("UTF-8 checked by decode")
    };
    let message = StoredMessage {
        exchange: short(layout.exchange.clone()),
        routing_key: short(layout.routing_key.clone()),
        properties_raw: payload.slice(layout.properties.clone()),
        body: payload.slice(layout.body.clone()),
        enqueued_ms: layout.enqueued_ms,
    };
    Ok((layout.seq, message))
}

/// A run of consecutive seqs stored at consecutive ordinals.
#[derive(Debug, Clone, Copy)]
struct Run {
    first_seq: u64,
    first_ordinal: u32,
    len: u32,
}

/// The RAM state of one segment (see the module docs for what it costs).
#[derive(Debug)]
pub(crate) struct Segment {
    /// The segment's name: every seq in it is at least this.
    pub first_seq: u64,
    runs: Vec<Run>,
    records: u32,
    /// Where each record starts in the file, by ordinal (for reading one message back).
    offsets: Vec<u32>,
    /// Size of the segment file, counting records still in the write buffer.
    pub file_bytes: u64,
}

impl Segment {
    pub fn new(first_seq: u64) -> Segment {
        Segment {
            first_seq,
            runs: Vec::new(),
            records: 0,
            offsets: Vec::new(),
            file_bytes: 0,
        }
    }

    pub fn records(&self) -> u32 {
        self.records
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.runs.last().map(|r| r.first_seq + r.len as u64 - 1)
    }

    /// Registers the next record, which starts at `offset` in the file; `seq` must be above
    /// every seq already in the segment.
    pub fn push(&mut self, seq: u64, offset: u64) {
        debug_assert!(offset <= u32::MAX as u64, "segments are capped at 4 GiB");
        self.offsets.push(offset as u32);
        debug_assert!(seq >= self.first_seq);
        debug_assert!(self.last_seq().is_none_or(|last| seq > last));
        match self.runs.last_mut() {
            Some(run) if run.first_seq + run.len as u64 == seq => run.len += 1,
            _ => self.runs.push(Run {
                first_seq: seq,
                first_ordinal: self.records,
                len: 1,
            }),
        }
        self.records += 1;
    }

    /// The ordinal of `seq`'s record, if `seq` is in this segment.
    pub fn ordinal(&self, seq: u64) -> Option<usize> {
        let idx = self.runs.partition_point(|r| r.first_seq <= seq);
        let run = self.runs.get(idx.checked_sub(1)?)?;
        let offset = seq - run.first_seq;
        (offset < run.len as u64).then(|| run.first_ordinal as usize + offset as usize)
    }

    /// The ordinal of the first record whose seq is at least `seq`, if any.
    pub fn ordinal_at_or_after(&self, seq: u64) -> Option<usize> {
        let idx = self
            .runs
            .partition_point(|r| r.first_seq + r.len as u64 <= seq);
        let run = self.runs.get(idx)?;
        Some(run.first_ordinal as usize + seq.saturating_sub(run.first_seq) as usize)
    }

    /// The seq of the record at `ordinal` (which must be below [`Segment::records`]).
    pub fn seq_at(&self, ordinal: usize) -> u64 {
        let idx = self
            .runs
            .partition_point(|r| r.first_ordinal as usize <= ordinal)
            - 1;
        let run = self.runs[idx];
        run.first_seq + (ordinal - run.first_ordinal as usize) as u64
    }

    /// Where the record at `ordinal` lies in the file: `start..end` (header included).
    pub fn span_of(&self, ordinal: usize) -> (u64, u64) {
        let start = self.offsets[ordinal] as u64;
        let end = self
            .offsets
            .get(ordinal + 1)
            .map_or(self.file_bytes, |&next| next as u64);
        (start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &'static [u8]) -> StoredMessage {
        StoredMessage {
            exchange: "amq.direct".into(),
            routing_key: "orders.eu".into(),
            properties_raw: Bytes::from_static(&[0x80, 0x00, 0x0a]),
            body: Bytes::from_static(body),
            enqueued_ms: None,
        }
    }

    #[test]
    fn message_payload_round_trips_through_its_layout() {
        let m = msg(b"hello");
        let mut out = Vec::new();
        encode_message(&mut out, 77, &m);
        assert_eq!(out.len(), message_payload_len(&m));
        let l = decode_message(&out).unwrap();
        assert_eq!(MessageLayout::from_lengths(l.lengths(), 77, &out), l);
        assert_eq!(l.seq, 77);
        assert_eq!(&out[l.exchange], b"amq.direct");
        assert_eq!(&out[l.routing_key], b"orders.eu");
        assert_eq!(&out[l.properties], &[0x80, 0x00, 0x0a]);
        assert_eq!(&out[l.body], b"hello");
    }

    #[test]
    fn enqueue_time_round_trips_and_old_records_have_none() {
        let mut m = msg(b"timed");
        m.enqueued_ms = Some(1_700_000_000_123);
        let mut out = Vec::new();
        encode_message(&mut out, 5, &m);
        assert_eq!(out.len(), message_payload_len(&m));
        let l = decode_message(&out).unwrap();
        assert_eq!(l.enqueued_ms, Some(1_700_000_000_123));
        assert_eq!(MessageLayout::from_lengths(l.lengths(), 5, &out), l);
        assert_eq!(&out[l.body], b"timed");
        for cut in 0..out.len() {
            assert!(decode_message(&out[..cut]).is_err(), "cut at {cut}");
        }
        let mut plain = Vec::new();
        encode_message(&mut plain, 5, &msg(b"x"));
        assert_eq!(decode_message(&plain).unwrap().enqueued_ms, None);
    }

    #[test]
    fn payload_with_inconsistent_lengths_is_rejected() {
        let mut out = Vec::new();
        encode_message(&mut out, 1, &msg(b"hello"));
        for cut in 0..out.len() {
            assert!(decode_message(&out[..cut]).is_err(), "cut at {cut}");
        }
        out.push(0);
        assert!(decode_message(&out).is_err());
    }

    #[test]
    fn file_names_sort_by_seq_and_parse_back() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert!(segment_file_name(9) < segment_file_name(10));
        assert_eq!(
            parse_file_name(&segment_file_name(u64::MAX)),
            Some(LogFile::Segment(u64::MAX))
        );
        assert_eq!(parse_file_name(&acks_file_name(7)), Some(LogFile::Acks(7)));
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("00000000000000000042.tmp"), None);
    }

    #[test]
    fn seqs_with_gaps_map_to_ordinals_and_back() {
        let mut s = Segment::new(10);
        for (i, seq) in [10, 11, 12, 20, 21, 500].into_iter().enumerate() {
            s.push(seq, i as u64 * 100);
        }
        s.file_bytes = 600;
        assert_eq!(s.runs.len(), 3);
        assert_eq!(s.ordinal(13), None, "not in the segment");
        assert_eq!(s.ordinal(9), None);
        assert_eq!(s.ordinal(11), Some(1));
        assert_eq!(s.ordinal(500), Some(5));
        for o in 0..6 {
            assert_eq!(s.ordinal(s.seq_at(o)), Some(o));
        }
        assert_eq!(s.ordinal_at_or_after(0), Some(0));
        assert_eq!(s.ordinal_at_or_after(13), Some(3));
        assert_eq!(s.ordinal_at_or_after(21), Some(4));
        assert_eq!(s.ordinal_at_or_after(22), Some(5));
        assert_eq!(s.ordinal_at_or_after(501), None);
        assert_eq!(s.span_of(3), (300, 400));
        assert_eq!(
            s.span_of(5),
            (500, 600),
            "the last record ends at the file's end"
        );
        assert_eq!(s.last_seq(), Some(500));
    }
}
