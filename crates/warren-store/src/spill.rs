//! [`Spill`]: the scratch files where a queue pages out messages that have no other copy on
//! disk (transient messages, and persistent ones in a transient queue), so that a backlog
//! larger than memory keeps only a small index entry per message in RAM.
//!
//! A spill is a directory of numbered segment files written with the log's record framing
//! ([`crate::record`]) and message payloads ([`crate::segment`]). A message is addressed by
//! its *place*, `segment << 32 | offset`, which the broker keeps in its index entry. Unlike a
//! [`crate::QueueLog`], a spill is never synced and never recovered: it holds nothing that
//! was promised durable, and it is emptied when opened. A segment file is deleted as soon as
//! its last message has been read back for good ([`Spill::release`]); the active segment is
//! truncated instead, so a drained queue keeps no spill bytes on disk.
//!
//! Architecture invariant: plain blocking std I/O, as the rest of the store.

use crate::fsio;
use crate::record::{put_record, RECORD_HEADER_BYTES};
use crate::segment;
use crate::{StoreError, StoredMessage};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Records waiting in the write buffer beyond this are written out.
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Bytes read past the expected record size on a read, so that one read usually suffices.
const READ_SLACK_BYTES: usize = 512;

#[derive(Debug)]
struct SpillSegment {
    /// Messages written here and not yet released.
    live: u32,
    /// Bytes written to the file plus bytes buffered for it.
    bytes: u64,
}

/// One queue's spill directory; see the module docs.
#[derive(Debug)]
pub struct Spill {
    dir: PathBuf,
    segment_size_bytes: u64,
    segments: BTreeMap<u32, SpillSegment>,
    active: u32,
    active_file: File,
    /// Records of the active segment not yet written to its file.
    buf: Vec<u8>,
    /// A read handle on the segment last read from (not the active one).
    reader: Option<(u32, File)>,
}

impl Spill {
    /// Creates the spill in `dir`, removing whatever an earlier run left there.
    pub fn open(dir: &Path, segment_size_bytes: u64) -> Result<Spill, StoreError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| StoreError::io("remove directory", dir, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
        let active_file = create(&dir.join(file_name(0)))?;
        let mut segments = BTreeMap::new();
        segments.insert(0, SpillSegment { live: 0, bytes: 0 });
        Ok(Spill {
            dir: dir.to_path_buf(),
            segment_size_bytes: segment_size_bytes.clamp(1, u32::MAX as u64),
            segments,
            active: 0,
            active_file,
            buf: Vec::new(),
            reader: None,
        })
    }

    /// Messages written and not released.
    pub fn live_messages(&self) -> u64 {
        self.segments.values().map(|s| s.live as u64).sum()
    }

    /// Bytes the spill holds on disk or in its buffer.
    pub fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum()
    }

    /// Writes a message out (`seq` is kept in the record as a check) and returns its place.
    pub fn append(&mut self, seq: u64, msg: &StoredMessage) -> Result<u64, StoreError> {
        let record_bytes = segment::message_record_len(msg)?;
        let active = &self.segments[&self.active];
        if active.bytes > 0 && active.bytes + record_bytes > self.segment_size_bytes {
            self.roll()?;
        }
        put_record(&mut self.buf, |out| segment::encode_message(out, seq, msg));
        let active = self.segments.get_mut(&self.active).expect("active segment");
        let place = (self.active as u64) << 32 | active.bytes;
        active.bytes += record_bytes;
        active.live += 1;
        if self.buf.len() >= WRITE_BUFFER_BYTES {
            self.write_buf()?;
        }
        Ok(place)
    }

    /// Reads back the message at `place`; `body_size` (its body's length) lets one read
    /// usually fetch the whole record. The message stays in the spill until released.
    pub fn read(&mut self, place: u64, body_size: usize) -> Result<StoredMessage, StoreError> {
        let (number, offset) = ((place >> 32) as u32, place & u32::MAX as u64);
        let seg = self
            .segments
            .get(&number)
            .ok_or_else(|| self.bad(number, offset, "no such spill segment".into()))?;
        let record = if number == self.active && offset >= seg.bytes - self.buf.len() as u64 {
            let at = (offset - (seg.bytes - self.buf.len() as u64)) as usize;
            let header = self
                .buf
                .get(at..at + RECORD_HEADER_BYTES)
                .ok_or_else(|| self.bad(number, offset, "place past the end".into()))?;
            let len =
                RECORD_HEADER_BYTES + u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
            let bytes = self
                .buf
                .get(at..at + len)
                .ok_or_else(|| self.bad(number, offset, "record past the end".into()))?;
            Bytes::copy_from_slice(bytes)
        } else {
            // What is in the file (the active segment's tail may still be in the buffer).
            let file_len = if number == self.active {
                seg.bytes - self.buf.len() as u64
            } else {
                seg.bytes
            };
            let path = self.dir.join(file_name(number));
            if number != self.active && self.reader.as_ref().is_none_or(|(n, _)| *n != number) {
                let f = File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
                self.reader = Some((number, f));
            }
            let file = match &self.reader {
                Some((n, f)) if *n == number => f,
                _ => &self.active_file,
            };
            let guess = (RECORD_HEADER_BYTES
                + segment::MIN_MESSAGE_PAYLOAD_BYTES
                + body_size
                + READ_SLACK_BYTES) as u64;
            let first = guess.min(file_len.saturating_sub(offset)) as usize;
            let mut bytes = fsio::read_at(file, &path, offset, first)?;
            if bytes.len() < RECORD_HEADER_BYTES {
                return Err(self.bad(number, offset, "record header past the end".into()));
            }
            let len =
                RECORD_HEADER_BYTES + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
            if len > bytes.len() {
                let rest =
                    fsio::read_at(file, &path, offset + bytes.len() as u64, len - bytes.len())?;
                bytes.extend_from_slice(&rest);
            }
            bytes.truncate(len);
            Bytes::from(bytes)
        };
        let (_, message) = segment::decode_message_record(record)
            .map_err(|what| self.bad(number, offset, what.to_string()))?;
        Ok(message)
    }

    /// The message at `place` is no longer needed; a segment whose messages are all released
    /// is deleted (the active one truncated).
    pub fn release(&mut self, place: u64) -> Result<(), StoreError> {
        let number = (place >> 32) as u32;
        let Some(seg) = self.segments.get_mut(&number) else {
            return Ok(());
        };
        seg.live = seg.live.saturating_sub(1);
        if seg.live > 0 {
            return Ok(());
        }
        if number == self.active {
            self.buf.clear();
            seg.bytes = 0;
            let path = self.dir.join(file_name(number));
            self.active_file
                .set_len(0)
                .map_err(|e| StoreError::io("truncate", &path, e))?;
        } else {
            self.segments.remove(&number);
            if self.reader.as_ref().is_some_and(|(n, _)| *n == number) {
                self.reader = None;
            }
            fsio::remove_file(&self.dir.join(file_name(number)))?;
        }
        Ok(())
    }

    /// Removes the spill directory.
    pub fn destroy(self) -> Result<(), StoreError> {
        let Spill {
            dir,
            active_file,
            reader,
            ..
        } = self;
        drop((active_file, reader));
        std::fs::remove_dir_all(&dir).map_err(|e| StoreError::io("remove directory", &dir, e))
    }

    fn write_buf(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(file_name(self.active));
        fsio::write_all(&mut self.active_file, &path, &self.buf)?;
        self.buf.clear();
        if self.buf.capacity() > 4 * WRITE_BUFFER_BYTES {
            self.buf.shrink_to(WRITE_BUFFER_BYTES);
        }
        Ok(())
    }

    /// Closes the active segment and starts the next (deleting the old one if nothing in it
    /// is live).
    fn roll(&mut self) -> Result<(), StoreError> {
        self.write_buf()?;
        let next = self.active + 1;
        let file = create(&self.dir.join(file_name(next)))?;
        let old = self.active;
        self.active_file = file;
        self.active = next;
        self.segments
            .insert(next, SpillSegment { live: 0, bytes: 0 });
        if self.segments[&old].live == 0 {
            self.segments.remove(&old);
            fsio::remove_file(&self.dir.join(file_name(old)))?;
        }
        Ok(())
    }

    fn bad(&self, number: u32, offset: u64, what: String) -> StoreError {
        StoreError::Corrupt {
            path: self.dir.join(file_name(number)),
            offset,
            what,
        }
    }
}

fn file_name(number: u32) -> String {
    format!("{number:010}.spill")
}

fn create(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::io("create", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: Vec<u8>) -> StoredMessage {
        StoredMessage {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            properties_raw: Bytes::from_static(&[0x10, 0x00, 0x02]),
            body: Bytes::from(body),
            enqueued_ms: None,
        }
    }

    #[test]
    fn messages_come_back_from_buffer_and_files_and_space_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::open(&dir.path().join("s"), 64 << 10).unwrap();
        let mut places = Vec::new();
        for i in 0..300u64 {
            // Sizes vary around and above the read slack, so some reads need a second read.
            let body = vec![i as u8; (i as usize * 37) % 3000];
            places.push((spill.append(i, &msg(body.clone())).unwrap(), body));
        }
        assert!(spill.segments.len() > 3, "rolled into several segments");
        for (place, body) in &places {
            assert_eq!(spill.read(*place, body.len()).unwrap().body, &body[..]);
            // A wrong size hint only costs a second read.
            assert_eq!(spill.read(*place, 0).unwrap().body, &body[..]);
        }
        assert_eq!(spill.live_messages(), 300);
        for (place, _) in &places {
            spill.release(*place).unwrap();
        }
        assert_eq!(spill.live_messages(), 0);
        assert_eq!(spill.bytes(), 0);
        let files = std::fs::read_dir(dir.path().join("s")).unwrap().count();
        assert_eq!(files, 1, "only the (truncated) active segment is left");
    }

    #[test]
    fn records_just_before_the_buffered_tail_of_the_active_segment_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::open(&dir.path().join("s"), 64 << 20).unwrap();
        let mut places = Vec::new();
        // Past the write buffer's size: part of the active segment is in the file, the rest
        // still buffered, and reads near the boundary must not run past the file's end.
        for i in 0..40u64 {
            let body = vec![i as u8; 60_000];
            places.push((spill.append(i, &msg(body.clone())).unwrap(), body));
        }
        assert!(!spill.buf.is_empty() && spill.bytes() > spill.buf.len() as u64);
        for (place, body) in &places {
            assert_eq!(spill.read(*place, body.len()).unwrap().body, &body[..]);
        }
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_wrong_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill::open(&dir.path().join("s"), 1 << 20).unwrap();
        let place = spill.append(1, &msg(vec![7; 100])).unwrap();
        spill.write_buf().unwrap();
        let path = dir.path().join("s").join(file_name(0));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let err = spill.read(place, 100).unwrap_err();
        assert!(err.to_string().contains("CRC32C"), "{err}");
    }

    #[test]
    fn opening_empties_what_a_previous_run_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut spill = Spill::open(&path, 1 << 20).unwrap();
        spill.append(1, &msg(vec![1; 10])).unwrap();
        spill.write_buf().unwrap();
        drop(spill);
        let spill = Spill::open(&path, 1 << 20).unwrap();
        assert_eq!(spill.bytes(), 0);
        assert_eq!(std::fs::metadata(path.join(file_name(0))).unwrap().len(), 0);
    }
}
