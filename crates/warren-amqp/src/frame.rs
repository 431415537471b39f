//! Frames: `type:u8 channel:u16 size:u32 payload frame-end(0xCE)`.
//!
//! [`FrameDecoder::decode`] takes whatever the socket gave and returns one frame once it is
//! wholly buffered; body payloads are `Bytes` slices of the read buffer (no copy).
//! The `encode_*` functions append whole frames to an output buffer, writing each payload in
//! place and back-patching its size, so encoding costs nothing beyond growing that buffer.

use crate::wire::{self, Reader};
use crate::{BasicProperties, Error, Method, CLASS_BASIC};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// `AMQP\x00\x00\x09\x01`: what a 0-9-1 client sends first, and what the server answers
/// with (then closes) when the client sent any other header.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
pub const FRAME_END: u8 = 0xCE;
/// Spec: frame-max may not be negotiated below 4096.
pub const FRAME_MIN_SIZE: u32 = 4096;

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
/// Bytes a frame adds around its payload: type, channel, size (7) and frame-end (1).
pub const FRAME_OVERHEAD: usize = 8;
/// class-id, weight and body-size, before the property flags of a content header.
const HEADER_FIXED_LEN: usize = 12;

/// A content header: class `basic` properties plus the body size that follows.
/// `properties_raw` keeps the property flags and list as received, so a broker can forward
/// them unchanged to consumers without re-encoding.
///
/// Only class `basic` has content, so only its properties are decoded; a header of any other
/// class comes back with default `properties` (and its raw bytes), so that the broker can
/// answer as RabbitMQ does (UNEXPECTED_FRAME, the class not matching the method's).
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    pub properties: BasicProperties,
    pub properties_raw: Bytes,
}

/// One decoded frame.
// A content header is large (14 optional properties, ~400 bytes). Boxed, it costs one
// allocation per message; inline, every move of a `Frame` and of the header through the
// broker's publish path copied it, and profiles showed those copies (memmove) as the
// largest single cost of publishing. Boxed wins.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Method {
        channel: u16,
        method: Method,
    },
    Header {
        channel: u16,
        header: Box<ContentHeader>,
    },
    Body {
        channel: u16,
        payload: Bytes,
    },
    Heartbeat {
        channel: u16,
    },
}

impl Frame {
    pub fn channel(&self) -> u16 {
        match *self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Heartbeat { channel } => channel,
        }
    }
}

impl ContentHeader {
    /// Decodes a content-header frame's payload; `properties_raw` is a slice of `payload`.
    #[inline]
    pub fn decode(payload: Bytes) -> Result<ContentHeader, Error> {
        let mut r = Reader::new(&payload);
        let class_id = r.u16("content header class-id")?;
        r.u16("content header weight")?;
        let body_size = r.u64("content header body-size")?;
        let properties_raw = payload.slice(HEADER_FIXED_LEN..);
        let properties = if class_id == CLASS_BASIC {
            BasicProperties::decode(&properties_raw)?
        } else {
            BasicProperties::default()
        };
        Ok(ContentHeader {
            class_id,
            body_size,
            properties,
            properties_raw,
        })
    }
}

/// Splits a byte stream into frames, enforcing the negotiated frame-max.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_size: u32,
}

impl FrameDecoder {
    /// `max_frame_size` counts the whole frame (7-byte header + payload + frame-end), as
    /// frame-max does in `connection.tune`. 0 means no limit other than u32.
    pub fn new(max_frame_size: u32) -> FrameDecoder {
        FrameDecoder { max_frame_size }
    }

    pub fn set_max_frame_size(&mut self, max_frame_size: u32) {
        self.max_frame_size = max_frame_size;
    }

    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Returns the next whole frame and removes it from `buf`, or `Ok(None)` when more bytes
    /// are needed. An oversized frame is refused as soon as its header is read, before its
    /// payload arrives.
    ///
    /// Errors: unknown frame type, oversized frame, bad frame-end or a heartbeat with a
    /// payload are [`Error::Frame`]; a method or content header that does not parse is
    /// [`Error::Syntax`] or [`Error::UnknownMethod`]. After an error the stream is out of
    /// step and the connection must be closed. A heartbeat on a non-zero channel is returned
    /// as is: what to do about it is the broker's call.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        let Some(&frame_type) = buf.first() else {
            return Ok(None);
        };
        if !matches!(
            frame_type,
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
        ) {
            return Err(Error::Frame(format!("unknown frame type {frame_type}")));
        }
        if buf.len() < 7 {
            return Ok(None);
        }
        let channel = u16::from_be_bytes([buf[1], buf[2]]);
        let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
        let frame_len = size as u64 + FRAME_OVERHEAD as u64;
        if self.max_frame_size != 0 && frame_len > self.max_frame_size as u64 {
            return Err(Error::Frame(format!(
                "frame size {frame_len} exceeds frame-max {}",
                self.max_frame_size
            )));
        }
        // On 32-bit targets a 4 GiB frame cannot be buffered at all; refuse rather than wrap.
        let Ok(frame_len) = usize::try_from(frame_len) else {
            return Err(Error::Frame(format!("frame size {frame_len} is too large")));
        };
        if buf.len() < frame_len {
            return Ok(None);
        }
        let end = buf[frame_len - 1];
        if end != FRAME_END {
            return Err(Error::Frame(format!(
                "bad frame-end octet 0x{end:02x} (expected 0xce) after a {size}-byte payload of frame type {frame_type} on channel {channel}"
            )));
        }
        let mut frame = buf.split_to(frame_len);
        frame.advance(7);
        frame.truncate(size as usize);
        let payload = frame.freeze();
        let frame = match frame_type {
            FRAME_METHOD => Frame::Method {
                channel,
                method: Method::decode(payload)?,
            },
            FRAME_HEADER => Frame::Header {
                channel,
                header: Box::new(ContentHeader::decode(payload)?),
            },
            FRAME_BODY => Frame::Body { channel, payload },
            _ if payload.is_empty() => Frame::Heartbeat { channel },
            _ => {
                return Err(Error::Frame(format!(
                    "heartbeat frame with a {size}-byte payload (must be empty)"
                )))
            }
        };
        Ok(Some(frame))
    }
}

/// Appends one method frame.
pub fn encode_method(channel: u16, method: &Method, out: &mut BytesMut) {
    let start = wire::begin_frame(out, FRAME_METHOD, channel);
    method.encode_payload(out);
    wire::end_frame(out, start);
}

/// Appends one content-header frame with already-encoded properties (flags + list), as
/// kept in [`ContentHeader::properties_raw`] or produced by [`BasicProperties::encode`].
pub fn encode_content_header(
    channel: u16,
    class_id: u16,
    body_size: u64,
    properties_raw: &[u8],
    out: &mut BytesMut,
) {
    let size = HEADER_FIXED_LEN + properties_raw.len();
    out.reserve(size + FRAME_OVERHEAD);
    out.put_u8(FRAME_HEADER);
    out.put_u16(channel);
    out.put_u32(size as u32);
    out.put_u16(class_id);
    out.put_u16(0); // weight
    out.put_u64(body_size);
    out.put_slice(properties_raw);
    out.put_u8(FRAME_END);
}

/// Appends one content-header frame of class `basic`, encoding `properties` in place.
pub fn encode_basic_header(
    channel: u16,
    body_size: u64,
    properties: &BasicProperties,
    out: &mut BytesMut,
) {
    let start = wire::begin_frame(out, FRAME_HEADER, channel);
    out.put_u16(CLASS_BASIC);
    out.put_u16(0); // weight
    out.put_u64(body_size);
    properties.encode(out);
    wire::end_frame(out, start);
}

/// Appends the body as as many body frames as `frame_max` requires (none for an empty body).
/// Each frame carries at most `frame_max - 8` bytes; `frame_max` 0 means no limit.
pub fn encode_body_frames(channel: u16, body: &[u8], frame_max: u32, out: &mut BytesMut) {
    if body.is_empty() {
        return;
    }
    let chunk = body_chunk_len(frame_max);
    let frames = body.len().div_ceil(chunk);
    out.reserve(body.len() + frames * FRAME_OVERHEAD);
    for part in body.chunks(chunk) {
        out.put_u8(FRAME_BODY);
        out.put_u16(channel);
        out.put_u32(part.len() as u32);
        out.put_slice(part);
        out.put_u8(FRAME_END);
    }
}

/// Appends a whole message: a content-carrying method (`basic.deliver`, `basic.get-ok`,
/// `basic.return`, `basic.publish`), its `basic` content header with already-encoded
/// properties, and the body frames: what a connection writer sends per delivery.
pub fn encode_method_with_content(
    channel: u16,
    method: &Method,
    properties_raw: &[u8],
    body: &[u8],
    frame_max: u32,
    out: &mut BytesMut,
) {
    debug_assert!(method.has_content(), "{} carries no content", method.name());
    encode_method(channel, method, out);
    encode_content_header(channel, CLASS_BASIC, body.len() as u64, properties_raw, out);
    encode_body_frames(channel, body, frame_max, out);
}

/// Appends `basic.deliver` with its content header and body: what a broker writes per
/// delivered message. Takes the fields by reference so the hot path clones nothing.
#[allow(clippy::too_many_arguments)]
pub fn encode_deliver(
    channel: u16,
    consumer_tag: &[u8],
    delivery_tag: u64,
    redelivered: bool,
    exchange: &[u8],
    routing_key: &[u8],
    properties_raw: &[u8],
    body: &[u8],
    frame_max: u32,
    out: &mut BytesMut,
) {
    let len = 4 + 1 + consumer_tag.len() + 8 + 1 + 1 + exchange.len() + 1 + routing_key.len();
    out.reserve(
        FRAME_OVERHEAD
            + len
            + FRAME_OVERHEAD
            + 14
            + properties_raw.len()
            + FRAME_OVERHEAD
            + body.len(),
    );
    out.put_u8(FRAME_METHOD);
    out.put_u16(channel);
    out.put_u32(len as u32);
    out.put_u16(60);
    out.put_u16(60);
    wire::put_shortstr_bytes(out, consumer_tag);
    out.put_u64(delivery_tag);
    out.put_u8(redelivered as u8);
    wire::put_shortstr_bytes(out, exchange);
    wire::put_shortstr_bytes(out, routing_key);
    out.put_u8(FRAME_END);
    encode_content_header(channel, CLASS_BASIC, body.len() as u64, properties_raw, out);
    encode_body_frames(channel, body, frame_max, out);
}

pub fn encode_heartbeat(out: &mut BytesMut) {
    out.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Largest body payload per frame for a negotiated frame-max (0 = unlimited).
fn body_chunk_len(frame_max: u32) -> usize {
    if frame_max == 0 {
        u32::MAX as usize
    } else {
        // frame-max is at least 4096 once negotiated; never let a bogus value make chunks
        // empty (which would never finish).
        (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1)
    }
}
