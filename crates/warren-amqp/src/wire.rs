//! Low-level reading and writing of AMQP's primitive domains (octet, short, long, longlong,
//! shortstr, longstr, packed bits) and of frame envelopes.
//!
//! [`Reader`] is a cursor over a `Bytes` payload: string and byte fields come out as slices of
//! that payload (a reference-count increment, never a copy), and every read is bounds-checked
//! so that a truncated or hostile payload yields [`Error::Syntax`], never a panic.
//! The writers append to a `BytesMut` and never allocate beyond growing it; lengths that are
//! only known after the fact (frame size, table size) are back-patched in place.

use crate::{Error, ShortStr, FRAME_END};
use bytes::{BufMut, Bytes, BytesMut};

/// Builds the `Error::Syntax` for a read that ran past the end of its payload.
#[cold]
fn truncated(what: &str, needed: usize, pos: usize, left: usize) -> Error {
    Error::Syntax(format!(
        "truncated {what}: needs {needed} bytes at offset {pos}, only {left} left"
    ))
}

/// A bounds-checked cursor over one payload (a method's arguments, a property list, a table).
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a Bytes) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Fails if anything is left: AMQP payloads have no padding, so leftover bytes mean the
    /// peer and we disagree about the layout (RabbitMQ refuses them too).
    pub(crate) fn finish(&self, what: &str) -> Result<(), Error> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(Error::Syntax(format!(
                "{n} unexpected bytes after the last field of {what}"
            ))),
        }
    }

    #[inline]
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Error> {
        let buf: &'a [u8] = self.buf;
        if n > self.remaining() {
            return Err(truncated(what, n, self.pos, self.remaining()));
        }
        let s = &buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Error> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, Error> {
        Ok(self.array::<1>(what)?[0])
    }

    #[inline]
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A slice of the payload, sharing its allocation.
    #[inline]
    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<Bytes, Error> {
        let start = self.pos;
        self.take(n, what)?;
        Ok(self.buf.slice(start..self.pos))
    }

    /// A short string (octet length + UTF-8 bytes), sharing the payload's allocation.
    #[inline]
    pub(crate) fn shortstr(&mut self, what: &str) -> Result<ShortStr, Error> {
        let len = self.u8(what)? as usize;
        let b = self.bytes(len, what)?;
        ShortStr::from_bytes(b).ok_or_else(|| not_utf8(what))
    }

    /// Skips a reserved short string without looking at its contents.
    pub(crate) fn skip_shortstr(&mut self, what: &str) -> Result<(), Error> {
        let len = self.u8(what)? as usize;
        self.take(len, what).map(|_| ())
    }

    /// A long string (long length + bytes), sharing the payload's allocation.
    #[inline]
    pub(crate) fn longstr(&mut self, what: &str) -> Result<Bytes, Error> {
        let len = self.u32(what)? as usize;
        self.bytes(len, what)
    }

    /// Skips a reserved long string without looking at its contents.
    pub(crate) fn skip_longstr(&mut self, what: &str) -> Result<(), Error> {
        let len = self.u32(what)? as usize;
        self.take(len, what).map(|_| ())
    }
}

#[cold]
fn not_utf8(what: &str) -> Error {
    Error::Syntax(format!("{what} is not valid UTF-8"))
}

/// Packs up to 8 consecutive bit fields into one octet, the first field in the lowest bit.
#[inline]
pub(crate) fn pack_bits(bits: &[bool]) -> u8 {
    debug_assert!(bits.len() <= 8);
    bits.iter()
        .enumerate()
        .fold(0u8, |acc, (i, &b)| acc | ((b as u8) << i))
}

/// Bit `i` (0 = first field) of a packed bit octet.
#[inline]
pub(crate) fn bit(octet: u8, i: u8) -> bool {
    octet & (1 << i) != 0
}

#[inline]
pub(crate) fn put_shortstr(out: &mut BytesMut, s: &ShortStr) {
    put_shortstr_bytes(out, s.as_bytes());
}

/// For bytes already known to be at most 255 long (a `ShortStr`'s, or a literal).
#[inline]
pub(crate) fn put_shortstr_bytes(out: &mut BytesMut, s: &[u8]) {
    debug_assert!(s.len() <= ShortStr::MAX_LEN);
    out.put_u8(s.len() as u8);
    out.put_slice(s);
}

#[inline]
pub(crate) fn put_longstr(out: &mut BytesMut, s: &[u8]) {
    debug_assert!(s.len() <= u32::MAX as usize, "long string over 4 GiB");
    out.put_u32(s.len() as u32);
    out.put_slice(s);
}

/// Writes a placeholder long (u32) and returns where the counted bytes start, for
/// [`patch_len`] once they are written.
#[inline]
pub(crate) fn begin_len(out: &mut BytesMut) -> usize {
    out.put_u32(0);
    out.len()
}

/// Back-patches the placeholder written by [`begin_len`] with the number of bytes since.
#[inline]
pub(crate) fn patch_len(out: &mut BytesMut, start: usize) {
    let len = out.len() - start;
    debug_assert!(len <= u32::MAX as usize);
    out[start - 4..start].copy_from_slice(&(len as u32).to_be_bytes());
}

/// Writes a frame header with a placeholder size; returns where the payload starts.
#[inline]
pub(crate) fn begin_frame(out: &mut BytesMut, frame_type: u8, channel: u16) -> usize {
    out.put_u8(frame_type);
    out.put_u16(channel);
    begin_len(out)
}

/// Back-patches the frame size and appends the frame-end octet.
#[inline]
pub(crate) fn end_frame(out: &mut BytesMut, payload_start: usize) {
    patch_len(out, payload_start);
    out.put_u8(FRAME_END);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_first_field_into_lowest_bit() {
        assert_eq!(pack_bits(&[true, false, false]), 0b001);
        assert_eq!(pack_bits(&[false, true, true]), 0b110);
        assert_eq!(pack_bits(&[true; 8]), 0xff);
        assert!(bit(0b100, 2) && !bit(0b100, 1));
    }

    #[test]
    fn reads_past_the_end_are_syntax_errors_that_say_where() {
        let b = Bytes::from_static(&[0, 1, 2]);
        let mut r = Reader::new(&b);
        assert_eq!(r.u16("class-id").unwrap(), 1);
        let err = r.u32("frame-max").unwrap_err();
        assert_eq!(
            err,
            Error::Syntax("truncated frame-max: needs 4 bytes at offset 2, only 1 left".into())
        );
        // A failed read consumes nothing.
        assert_eq!(r.u8("x").unwrap(), 2);
        assert!(r.is_empty());
    }

    #[test]
    fn huge_declared_lengths_fail_without_overflow() {
        let b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1]);
        let mut r = Reader::new(&b);
        assert!(matches!(r.longstr("response"), Err(Error::Syntax(_))));
    }

    #[test]
    fn shortstr_slices_share_the_payload_and_reject_bad_utf8() {
        let b = Bytes::from_static(b"\x03abc\x02\xff\xfe");
        let mut r = Reader::new(&b);
        let s = r.shortstr("exchange").unwrap();
        assert_eq!(s, "abc");
        assert_eq!(s.as_bytes().as_ptr(), b[1..].as_ptr());
        assert_eq!(
            r.shortstr("routing-key").unwrap_err(),
            Error::Syntax("routing-key is not valid UTF-8".into())
        );
    }

    #[test]
    fn leftover_bytes_are_refused() {
        let b = Bytes::from_static(&[1, 2]);
        let mut r = Reader::new(&b);
        r.u8("a").unwrap();
        assert!(
            matches!(r.finish("basic.ack"), Err(Error::Syntax(t)) if t.contains("1 unexpected"))
        );
    }

    #[test]
    fn frame_size_is_back_patched() {
        let mut out = BytesMut::new();
        let start = begin_frame(&mut out, 1, 7);
        out.put_slice(b"hello");
        end_frame(&mut out, start);
        assert_eq!(&out[..], b"\x01\x00\x07\x00\x00\x00\x05hello\xce");
    }
}
