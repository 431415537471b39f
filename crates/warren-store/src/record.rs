//! Record framing, shared by every file the store writes, and the scanner that reads it back
//! and tells intact records from damage.
//!
//! # On disk
//!
//! ```text
//! record := len: u32 LE | crc: u32 LE | payload: [u8; len]
//! crc    := CRC32C (Castagnoli) of payload
//! ```
//!
//! A file is a plain concatenation of records, with no header and no padding: what a payload
//! means is up to the file (segment, ack side file, definitions log); the framing only says
//! where a record ends and whether its bytes are the ones written.
//!
//! # Reading back
//!
//! [`scan`] walks a file's bytes and sorts them into intact records, damage in the middle
//! (reported, skipped) and a damaged tail (everything from some offset to the end that holds
//! no intact record: a torn write, whose handling is up to the caller). A record counts as
//! intact when its length is plausible, its CRC matches and the file's own [`PayloadCheck`]
//! accepts its payload (a segment also insists on increasing seqs). After a damaged record
//! the scanner resumes at the next intact record: right after the damaged one if its length
//! still frames an intact successor, else at the first offset where an intact record starts
//! (a byte-by-byte search, cheap because almost every offset fails the length test).

use std::fmt;

/// Bytes of a record's `len` + `crc` header.
pub const RECORD_HEADER_BYTES: usize = 8;

/// The largest payload a record may carry (the length is a u32; keeping a margin below it
/// leaves room for the header without overflow anywhere).
pub const MAX_PAYLOAD_BYTES: usize = (u32::MAX - 64) as usize;

/// Why bytes at some offset are not an intact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// Fewer than the 8 header bytes left before the end of the file.
    TruncatedHeader,
    /// A length too small for this file's payloads.
    BadLength(u32),
    /// A length that runs past the end of the file.
    TruncatedRecord(u32),
    /// The payload's CRC32C does not match the header's.
    BadChecksum,
    /// CRC matched but the payload does not decode, or breaks the file's ordering rule.
    BadPayload(&'static str),
    /// A file whose header is not the expected one (definitions snapshot).
    BadHeader,
}

impl fmt::Display for DamageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DamageKind::TruncatedHeader => {
                write!(f, "record header cut short by the end of the file")
            }
            DamageKind::BadLength(len) => write!(f, "implausible record length {len}"),
            DamageKind::TruncatedRecord(len) => {
                write!(f, "record of length {len} runs past the end of the file")
            }
            DamageKind::BadChecksum => write!(f, "CRC32C mismatch"),
            DamageKind::BadPayload(why) => write!(f, "undecodable payload: {why}"),
            DamageKind::BadHeader => write!(f, "not a Warren store file (bad header)"),
        }
    }
}

/// Appends one record to `out`; `write_payload` appends the payload. Returns the record's
/// total size. The caller keeps payloads under [`MAX_PAYLOAD_BYTES`].
pub fn put_record(out: &mut Vec<u8>, write_payload: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    write_payload(out);
    let len = out.len() - start - RECORD_HEADER_BYTES;
    debug_assert!(len <= MAX_PAYLOAD_BYTES);
    let crc = crc32c::crc32c(&out[start + RECORD_HEADER_BYTES..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// What a file's payloads must satisfy beyond their CRC, and where accepted ones go.
pub trait PayloadCheck {
    /// The smallest payload this file can hold: shorter lengths are damage.
    const MIN_PAYLOAD_BYTES: usize;
    /// Whether a CRC-clean payload is acceptable *next*; must not change state, since the
    /// scanner also tries it on candidates it may then reject.
    fn check(&self, payload: &[u8]) -> Result<(), DamageKind>;
    /// Takes an accepted record; `offset` is where its header starts in the file.
    fn accept(&mut self, offset: usize, payload: &[u8]);
}

/// Damage found in the middle of a file: `skipped` bytes from `offset` were passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MidDamage {
    pub offset: usize,
    pub skipped: usize,
    pub kind: DamageKind,
}

/// The result of [`scan`]: accepted records went to the [`PayloadCheck`].
#[derive(Debug, Default)]
pub struct Scan {
    pub damage: Vec<MidDamage>,
    /// From this offset to the end there is no intact record; `None` if the file ends
    /// cleanly after its last record.
    pub tail: Option<(usize, DamageKind)>,
}

/// Scans `buf` (a whole file) record by record; see the module docs.
pub fn scan<P: PayloadCheck>(buf: &[u8], check: &mut P) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0;
    while pos < buf.len() {
        match try_record(buf, pos, check) {
            Ok(len) => {
                check.accept(
                    pos,
                    &buf[pos + RECORD_HEADER_BYTES..pos + RECORD_HEADER_BYTES + len],
                );
                pos += RECORD_HEADER_BYTES + len;
            }
            Err(kind) => {
                // A record whose length still frames an intact successor is skipped exactly;
                // otherwise search for the next intact record.
                let framed_next = framed_len(buf, pos, P::MIN_PAYLOAD_BYTES)
                    .map(|len| pos + RECORD_HEADER_BYTES + len)
                    .filter(|&next| next < buf.len() && try_record(buf, next, check).is_ok());
                let next = framed_next.or_else(|| resync(buf, pos + 1, check));
                match next {
                    Some(next) => {
                        out.damage.push(MidDamage {
                            offset: pos,
                            skipped: next - pos,
                            kind,
                        });
                        pos = next;
                    }
                    None => {
                        out.tail = Some((pos, kind));
                        break;
                    }
                }
            }
        }
    }
    out
}

/// The payload length at `pos` if it is plausible and fits in `buf`.
fn framed_len(buf: &[u8], pos: usize, min_payload: usize) -> Option<usize> {
    let header = buf.get(pos..pos + RECORD_HEADER_BYTES)?;
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
    let fits = len <= buf.len() - pos - RECORD_HEADER_BYTES;
    (len >= min_payload && len <= MAX_PAYLOAD_BYTES && fits).then_some(len)
}

/// Checks the record at `pos`, returning its payload length.
fn try_record<P: PayloadCheck>(buf: &[u8], pos: usize, check: &P) -> Result<usize, DamageKind> {
    let left = buf.len() - pos;
    if left < RECORD_HEADER_BYTES {
        return Err(DamageKind::TruncatedHeader);
    }
    let len_raw = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap());
    let len = len_raw as usize;
    if len < P::MIN_PAYLOAD_BYTES || len > MAX_PAYLOAD_BYTES {
        return Err(DamageKind::BadLength(len_raw));
    }
    if len > left - RECORD_HEADER_BYTES {
        return Err(DamageKind::TruncatedRecord(len_raw));
    }
    let crc = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().unwrap());
    let payload = &buf[pos + RECORD_HEADER_BYTES..pos + RECORD_HEADER_BYTES + len];
    if crc32c::crc32c(payload) != crc {
        return Err(DamageKind::BadChecksum);
    }
    check.check(payload)?;
    Ok(len)
}

/// The first offset at or after `from` where an intact record starts.
fn resync<P: PayloadCheck>(buf: &[u8], from: usize, check: &P) -> Option<usize> {
    let last_start = buf
        .len()
        .checked_sub(RECORD_HEADER_BYTES + P::MIN_PAYLOAD_BYTES)?;
    (from..=last_start).find(|&p| try_record(buf, p, check).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Payloads are 4-byte big-endian counters that must increase.
    #[derive(Default)]
    struct Counters {
        last: Option<u32>,
        seen: Vec<(usize, u32)>,
    }

    impl PayloadCheck for Counters {
        const MIN_PAYLOAD_BYTES: usize = 4;
        fn check(&self, payload: &[u8]) -> Result<(), DamageKind> {
            let n = u32::from_be_bytes(payload[..4].try_into().unwrap());
            match self.last {
                Some(last) if n <= last => Err(DamageKind::BadPayload("counter went backwards")),
                _ => Ok(()),
            }
        }
        fn accept(&mut self, offset: usize, payload: &[u8]) {
            let n = u32::from_be_bytes(payload[..4].try_into().unwrap());
            self.last = Some(n);
            self.seen.push((offset, n));
        }
    }

    fn file(n: u32, extra: usize) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for i in 1..=n {
            offsets.push(buf.len());
            put_record(&mut buf, |p| {
                p.extend_from_slice(&i.to_be_bytes());
                p.extend(std::iter::repeat_n(0xAB, extra));
            });
        }
        (buf, offsets)
    }

    fn counters(c: &Counters) -> Vec<u32> {
        c.seen.iter().map(|&(_, n)| n).collect()
    }

    #[test]
    fn clean_file_yields_every_record_and_no_tail() {
        let (buf, offsets) = file(5, 3);
        let mut c = Counters::default();
        let s = scan(&buf, &mut c);
        assert!(s.damage.is_empty());
        assert_eq!(s.tail, None);
        assert_eq!(counters(&c), vec![1, 2, 3, 4, 5]);
        assert_eq!(c.seen.iter().map(|&(o, _)| o).collect::<Vec<_>>(), offsets);
    }

    #[test]
    fn flipped_payload_byte_skips_exactly_that_record() {
        let (mut buf, offsets) = file(5, 3);
        buf[offsets[2] + RECORD_HEADER_BYTES + 5] ^= 0x01;
        let mut c = Counters::default();
        let s = scan(&buf, &mut c);
        assert_eq!(counters(&c), vec![1, 2, 4, 5]);
        assert_eq!(
            s.damage,
            vec![MidDamage {
                offset: offsets[2],
                skipped: offsets[3] - offsets[2],
                kind: DamageKind::BadChecksum
            }]
        );
        assert_eq!(s.tail, None);
    }

    #[test]
    fn corrupt_length_in_the_middle_resyncs_on_the_next_record() {
        let (mut buf, offsets) = file(6, 10);
        buf[offsets[1]..offsets[1] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut c = Counters::default();
        let s = scan(&buf, &mut c);
        assert_eq!(counters(&c), vec![1, 3, 4, 5, 6]);
        assert_eq!(s.damage.len(), 1);
        assert_eq!(s.damage[0].offset, offsets[1]);
        assert_eq!(s.damage[0].kind, DamageKind::BadLength(u32::MAX));
        assert_eq!(s.tail, None);
    }

    #[test]
    fn cut_last_record_is_a_tail_at_its_start() {
        let (buf, offsets) = file(3, 20);
        for cut in offsets[2] + 1..buf.len() {
            let mut c = Counters::default();
            let s = scan(&buf[..cut], &mut c);
            assert_eq!(counters(&c), vec![1, 2], "cut at {cut}");
            assert_eq!(s.tail.map(|t| t.0), Some(offsets[2]), "cut at {cut}");
            assert!(s.damage.is_empty());
        }
    }

    #[test]
    fn zeroed_tail_is_a_tail() {
        let (mut buf, _) = file(3, 2);
        let end = buf.len();
        buf.extend(std::iter::repeat_n(0u8, 4096));
        let mut c = Counters::default();
        let s = scan(&buf, &mut c);
        assert_eq!(counters(&c), vec![1, 2, 3]);
        assert_eq!(s.tail, Some((end, DamageKind::BadLength(0))));
    }

    #[test]
    fn record_that_breaks_the_payload_rule_is_damage() {
        let mut buf = Vec::new();
        for n in [1u32, 2, 2, 3] {
            put_record(&mut buf, |p| p.extend_from_slice(&n.to_be_bytes()));
        }
        let mut c = Counters::default();
        let s = scan(&buf, &mut c);
        assert_eq!(counters(&c), vec![1, 2, 3]);
        assert_eq!(s.damage.len(), 1);
        assert_eq!(
            s.damage[0].kind,
            DamageKind::BadPayload("counter went backwards")
        );
    }
}
