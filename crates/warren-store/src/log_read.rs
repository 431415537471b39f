//! Reading a [`MessageLog`] back: one message by seq ([`MessageLog::read`]), or forward from
//! a position, one positioned read per call and never across a segment boundary
//! ([`MessageLog::read_from`]). Every record read is checked again (length, CRC32C, layout)
//! and must hold the seq the log's index says it holds. Messages are slices of the read
//! buffer, which lives as long as any of them does.
//!
//! Reads do not change the log: whoever reads keeps its own position (a stream consumer's
//! offset, a queue's index of ready messages).

use crate::fsio;
use crate::message_log::{MessageLog, StoredMessage};
use crate::segment::{self, Segment};
use crate::StoreError;
use bytes::{Bytes, BytesMut};
use std::fs::File;

impl MessageLog {
    /// Reads back the message of `seq` (the broker keeps only an index entry in memory for
    /// messages of a long queue). [`StoreError::NotInLog`] if it was never appended or its
    /// segment was deleted.
    pub fn read(&mut self, seq: u64) -> Result<StoredMessage, StoreError> {
        self.check_usable()?;
        let idx = self
            .segment_index(seq)
            .ok_or(StoreError::NotInLog { seq })?;
        let ordinal = (self.segments[idx].ordinal(seq)).ok_or(StoreError::NotInLog { seq })?;
        let (start, end) = self.segments[idx].span_of(ordinal);
        let record = self.read_span(idx, start, end)?;
        self.decode(idx, ordinal, start, record)
    }

    /// Reads forward from `from`: the records with the lowest seqs at or above it, in seq
    /// order, all from one segment, as many as fit in `max_bytes` (at least one). Empty
    /// when the log holds nothing at or above `from`. Iterate by calling again from the last
    /// seq returned plus one; pass `usize::MAX` to read a segment at a time.
    pub fn read_from(
        &mut self,
        from: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, StoredMessage)>, StoreError> {
        self.check_usable()?;
        let mut idx = self.segment_index(from).unwrap_or(0);
        let first = loop {
            match self.segments.get(idx) {
                None => return Ok(Vec::new()),
                Some(seg) => match seg.ordinal_at_or_after(from) {
                    Some(o) => break o,
                    None => idx += 1,
                },
            }
        };
        let seg = &self.segments[idx];
        let start = seg.span_of(first).0;
        let mut last = first;
        while last + 1 < seg.records() as usize
            && seg.span_of(last + 1).1 - start <= max_bytes as u64
        {
            last += 1;
        }
        let end = seg.span_of(last).1;
        let bytes = self.read_span(idx, start, end)?;
        let mut out = Vec::with_capacity(last - first + 1);
        for ordinal in first..=last {
            let (s, e) = self.segments[idx].span_of(ordinal);
            let record = bytes.slice((s - start) as usize..(e - start) as usize);
            out.push((
                self.segments[idx].seq_at(ordinal),
                self.decode(idx, ordinal, s, record)?,
            ));
        }
        Ok(out)
    }

    /// The bytes `start..end` of segment `idx`, from its file or, for records of the active
    /// segment not yet written out, from the write buffer.
    fn read_span(&mut self, idx: usize, start: u64, end: u64) -> Result<Bytes, StoreError> {
        let seg = &self.segments[idx];
        let first_seq = seg.first_seq;
        let buffered_from = match idx + 1 == self.segments.len() {
            true => seg.file_bytes - self.active_buf.len() as u64,
            false => u64::MAX,
        };
        let in_file = end.min(buffered_from).saturating_sub(start);
        let mut out = BytesMut::with_capacity((end - start) as usize);
        if in_file > 0 {
            let path = self.segment_path(first_seq);
            let file = match &self.read_handle {
                Some((s, f)) if *s == first_seq => f,
                _ => {
                    let f = File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
                    &self.read_handle.insert((first_seq, f)).1
                }
            };
            if in_file == end - start {
                return Ok(Bytes::from(fsio::read_at(
                    file,
                    &path,
                    start,
                    in_file as usize,
                )?));
            }
            out.extend_from_slice(&fsio::read_at(file, &path, start, in_file as usize)?);
        }
        // Records are buffered whole, so the rest of the span is in the buffer.
        let from = (start.max(buffered_from) - buffered_from) as usize;
        let to = (end - buffered_from) as usize;
        out.extend_from_slice(&self.active_buf[from..to]);
        Ok(out.freeze())
    }

    /// Decodes the record at `ordinal` of segment `idx`, which starts at `offset` in its file.
    fn decode(
        &self,
        idx: usize,
        ordinal: usize,
        offset: u64,
        record: Bytes,
    ) -> Result<StoredMessage, StoreError> {
        let seg: &Segment = &self.segments[idx];
        let corrupt = |what: String| StoreError::Corrupt {
            path: self.segment_path(seg.first_seq),
            offset,
            what,
        };
        let (found, message) =
            segment::decode_message_record(record).map_err(|what| corrupt(what.to_string()))?;
        let seq = seg.seq_at(ordinal);
        if found != seq {
            return Err(corrupt(format!("record holds seq {found}, not {seq}")));
        }
        Ok(message)
    }
}
