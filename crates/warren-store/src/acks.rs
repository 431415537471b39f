//! Ack side files: for each segment of a log, the seqs one reader acked (gone for good, as
//! far as that reader is concerned) and the seqs it was handed (so that recovery can set
//! `redelivered`). What a reader keeps of them in RAM is in [`crate::reader`].
//!
//! # On disk
//!
//! `00000000000000000042.acks` holds one reader's marks for segment
//! `00000000000000000042.seg`, and is deleted after that segment. It lives in the reader's
//! directory: for a classic queue's one reader that is the log's own directory (so a queue's
//! directory holds `.seg` and `.acks` files side by side); each further reader of a log has a
//! directory of its own. It is a concatenation of records (see [`crate::record`]), each one
//! batch of marks of one kind:
//!
//! ```text
//! payload := kind: u8            b'A' = acked, b'D' = delivered
//!            varint(seq_0 - segment_first_seq)
//!            varint(seq_i - seq_{i-1}) ...      seqs strictly increase, so every delta >= 1
//! varint  := LEB128, unsigned, at most 10 bytes
//! ```
//!
//! Delta coding makes the usual batch (consecutive seqs) cost one byte per message. A batch
//! is split into records of at most [`MAX_SEQS_PER_RECORD`] seqs. Marks are idempotent and
//! may name seqs the segment does not hold (a record lost in a crash): recovery ignores those.
//! Every side file is appended to, so any of them may have a torn tail, which is cut.

use crate::fsio;
use crate::record::{put_record, scan, DamageKind, PayloadCheck};
use crate::recovery::settle;
use crate::RecoveryReport;
use std::path::Path;

/// Upper bound on seqs per record, so that one huge purge does not make one huge record.
pub(crate) const MAX_SEQS_PER_RECORD: usize = 64 * 1024;

const KIND_ACKED: u8 = b'A';
const KIND_DELIVERED: u8 = b'D';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Acked,
    Delivered,
}

/// Appends records marking `seqs` (strictly increasing, all `>= base`).
pub(crate) fn put_marks(out: &mut Vec<u8>, mark: Mark, base: u64, seqs: &[u64]) {
    let kind = match mark {
        Mark::Acked => KIND_ACKED,
        Mark::Delivered => KIND_DELIVERED,
    };
    debug_assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    debug_assert!(seqs.first().is_none_or(|&s| s >= base));
    for chunk in seqs.chunks(MAX_SEQS_PER_RECORD) {
        put_record(out, |p| {
            p.push(kind);
            let mut prev = base;
            for &seq in chunk {
                put_varint(p, seq - prev);
                prev = seq;
            }
        });
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(p: &[u8], pos: &mut usize) -> Result<u64, DamageKind> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *p
            .get(*pos)
            .ok_or(DamageKind::BadPayload("varint cut short"))?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err(DamageKind::BadPayload("varint overflows 64 bits"));
        }
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DamageKind::BadPayload("varint longer than 10 bytes"))
}

/// Decodes one payload, calling `f` with each seq in order.
pub(crate) fn decode_marks(
    payload: &[u8],
    base: u64,
    mut f: impl FnMut(u64),
) -> Result<Mark, DamageKind> {
    let mark = match payload.first() {
        Some(&KIND_ACKED) => Mark::Acked,
        Some(&KIND_DELIVERED) => Mark::Delivered,
        _ => return Err(DamageKind::BadPayload("unknown mark kind")),
    };
    let mut pos = 1;
    let mut seq = base;
    let mut first = true;
    while pos < payload.len() {
        let delta = get_varint(payload, &mut pos)?;
        if delta == 0 && !first {
            return Err(DamageKind::BadPayload("seqs do not increase"));
        }
        seq = seq
            .checked_add(delta)
            .ok_or(DamageKind::BadPayload("seq overflows"))?;
        first = false;
        f(seq);
    }
    Ok(mark)
}

/// Collects a side file's marks during recovery.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    base: u64,
    /// Sorted, deduplicated after [`Marks::finish`].
    pub acked: Vec<u64>,
    pub delivered: Vec<u64>,
}

impl Marks {
    pub fn new(base: u64) -> Marks {
        Marks {
            base,
            ..Marks::default()
        }
    }

    /// Sorts and deduplicates (records come in any order, marks may repeat).
    pub fn finish(&mut self) {
        for v in [&mut self.acked, &mut self.delivered] {
            v.sort_unstable();
            v.dedup();
        }
    }

    /// The highest seq any mark names.
    pub fn max_seq(&self) -> Option<u64> {
        self.acked.iter().chain(&self.delivered).copied().max()
    }
}

impl PayloadCheck for Marks {
    const MIN_PAYLOAD_BYTES: usize = 2;

    fn check(&self, payload: &[u8]) -> Result<(), DamageKind> {
        decode_marks(payload, self.base, |_| ()).map(|_| ())
    }

    fn accept(&mut self, _offset: usize, payload: &[u8]) {
        let mut seqs = Vec::new();
        match decode_marks(payload, self.base, |seq| seqs.push(seq)) {
            Ok(Mark::Acked) => self.acked.append(&mut seqs),
            Ok(Mark::Delivered) => self.delivered.append(&mut seqs),
            Err(_) => debug_assert!(false, "accept after a failed check"),
        }
    }
}

/// A side file as recovery read it.
#[derive(Debug)]
pub(crate) struct SideFile {
    pub marks: Marks,
    /// Its length once a torn tail is cut off.
    pub file_bytes: u64,
}

/// Reads the side file at `path` of the segment named `first_seq`, cutting off a torn tail
/// and filing damage into `report`.
pub(crate) fn read_side_file(
    path: &Path,
    first_seq: u64,
    report: &mut RecoveryReport,
) -> Result<SideFile, crate::StoreError> {
    let mut marks = Marks::new(first_seq);
    let buf = fsio::read(path)?;
    let s = scan(&buf, &mut marks);
    marks.finish();
    let file_bytes = settle(path, &buf, &s, true, report)?;
    Ok(SideFile { marks, file_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_acks_cost_one_byte_each() {
        let mut out = Vec::new();
        let seqs: Vec<u64> = (1000..1100).collect();
        put_marks(&mut out, Mark::Acked, 1000, &seqs);
        assert_eq!(out.len(), 8 + 1 + 100);
    }

    #[test]
    fn marks_round_trip_including_large_gaps() {
        let mut out = Vec::new();
        let acked = [5u64, 6, 7, 1 << 40, u64::MAX];
        put_marks(&mut out, Mark::Acked, 5, &acked);
        put_marks(&mut out, Mark::Delivered, 5, &[6, 9]);
        put_marks(&mut out, Mark::Delivered, 5, &[6]);
        let mut marks = Marks::new(5);
        let s = scan(&out, &mut marks);
        assert!(s.damage.is_empty() && s.tail.is_none());
        marks.finish();
        assert_eq!(marks.acked, acked);
        assert_eq!(marks.delivered, vec![6, 9]);
        assert_eq!(marks.max_seq(), Some(u64::MAX));
    }

    #[test]
    fn huge_batch_is_split_into_bounded_records() {
        let mut out = Vec::new();
        let seqs: Vec<u64> = (0..(MAX_SEQS_PER_RECORD as u64 * 2 + 1)).collect();
        put_marks(&mut out, Mark::Acked, 0, &seqs);
        let mut marks = Marks::new(0);
        scan(&out, &mut marks);
        marks.finish();
        assert_eq!(marks.acked, seqs);
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let mut p = vec![KIND_ACKED];
        p.extend_from_slice(&[0xff; 10]);
        p.push(0x01);
        assert!(decode_marks(&p, 0, |_| ()).is_err());
        let mut p = vec![KIND_ACKED];
        p.extend_from_slice(&[0xff; 9]);
        p.push(0x02);
        assert!(decode_marks(&p, 0, |_| ()).is_err(), "bit 64 set");
    }
}
