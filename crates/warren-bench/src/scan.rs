//! Reads the frames that come once per message (`basic.deliver`, its content header and
//! body, publisher confirms) in place in the read buffer, taking only the fields the bench
//! needs; every other frame, and anything malformed, is left to the codec's `FrameDecoder`.
//!
//! Why not the codec for everything: its owned frames are right for a broker, which keeps
//! them, but a profile of the bench showed that decoding them (a `Bytes` per frame and per
//! short string, with their atomic reference counts, and moving a large `Frame` value) was
//! over half of the bench's CPU, and a client that costs the broker's machine CPU measures
//! itself. The layouts read here are the spec's, as the codec writes them (see the tests).

use warren_amqp::{CLASS_BASIC, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_METHOD, FRAME_OVERHEAD};

const METHOD_DELIVER: u16 = 60;
const METHOD_ACK: u16 = 80;
const METHOD_NACK: u16 = 120;
/// Frame header: type (1), channel (2), size (4).
const FRAME_HEADER_BYTES: usize = 7;

/// A per-message frame, borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hot<'a> {
    Deliver {
        channel: u16,
        delivery_tag: u64,
    },
    Header {
        channel: u16,
        body_size: u64,
    },
    Body {
        channel: u16,
        payload: &'a [u8],
    },
    /// `basic.ack` (nack false) or `basic.nack` from the broker: a publisher confirm.
    Confirm {
        channel: u16,
        delivery_tag: u64,
        multiple: bool,
        nack: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek<'a> {
    /// The first frame of the buffer, and its length in bytes.
    Hot(Hot<'a>, usize),
    /// A whole frame of another kind, or a malformed one: for the codec.
    Other,
    /// The first frame is not wholly buffered yet.
    Incomplete,
}

/// Looks at the frame at the start of `buf`. `frame_max` is the negotiated limit (0 = none).
#[inline]
pub fn peek(buf: &[u8], frame_max: u32) -> Peek<'_> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Peek::Incomplete;
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    let len = size + FRAME_OVERHEAD;
    if frame_max != 0 && len > frame_max as usize {
        return Peek::Other;
    }
    if buf.len() < len {
        return Peek::Incomplete;
    }
    if buf[len - 1] != FRAME_END {
        return Peek::Other;
    }
    let payload = &buf[FRAME_HEADER_BYTES..len - 1];
    let hot = match kind {
        FRAME_BODY => Some(Hot::Body { channel, payload }),
        FRAME_HEADER => be_u64(payload, 4).map(|body_size| Hot::Header { channel, body_size }),
        FRAME_METHOD => method(channel, payload),
        _ => None,
    };
    match hot {
        Some(hot) => Peek::Hot(hot, len),
        None => Peek::Other,
    }
}

fn method(channel: u16, payload: &[u8]) -> Option<Hot<'_>> {
    if be_u16(payload, 0)? != CLASS_BASIC {
        return None;
    }
    match be_u16(payload, 2)? {
        METHOD_DELIVER => {
            let tag_len = *payload.get(4)? as usize;
            Some(Hot::Deliver {
                channel,
                delivery_tag: be_u64(payload, 5 + tag_len)?,
            })
        }
        method @ (METHOD_ACK | METHOD_NACK) => Some(Hot::Confirm {
            channel,
            delivery_tag: be_u64(payload, 4)?,
            multiple: payload.get(12)? & 1 != 0,
            nack: method == METHOD_NACK,
        }),
        _ => None,
    }
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use warren_amqp::{
        encode_basic_header, encode_body_frames, encode_method, BasicAck, BasicDeliver, BasicNack,
        BasicProperties, Method, ShortStr,
    };

    fn deliver(tag: u64) -> Method {
        Method::BasicDeliver(BasicDeliver {
            consumer_tag: ShortStr::from_static("ctag-17"),
            delivery_tag: tag,
            redelivered: true,
            exchange: ShortStr::from_static("amq.direct"),
            routing_key: ShortStr::from_static("orders"),
        })
    }

    #[test]
    fn delivery_frames_written_by_the_codec_are_read_in_place() {
        let mut buf = BytesMut::new();
        encode_method(3, &deliver(0x0102_0304_0506_0708), &mut buf);
        let deliver_len = buf.len();
        let properties = BasicProperties {
            delivery_mode: Some(2),
            ..Default::default()
        };
        encode_basic_header(3, 5, &properties, &mut buf);
        encode_body_frames(3, b"hello", 131_072, &mut buf);
        let Peek::Hot(hot, len) = peek(&buf, 131_072) else {
            panic!("deliver not recognised")
        };
        assert_eq!(
            (hot, len),
            (
                Hot::Deliver {
                    channel: 3,
                    delivery_tag: 0x0102_0304_0506_0708
                },
                deliver_len
            )
        );
        let rest = &buf[len..];
        let Peek::Hot(hot, len) = peek(rest, 131_072) else {
            panic!("header not recognised")
        };
        assert_eq!(
            hot,
            Hot::Header {
                channel: 3,
                body_size: 5
            }
        );
        let Peek::Hot(hot, len2) = peek(&rest[len..], 131_072) else {
            panic!("body not recognised")
        };
        assert_eq!(
            hot,
            Hot::Body {
                channel: 3,
                payload: b"hello"
            }
        );
        assert_eq!(len + len2, rest.len());
    }

    #[test]
    fn confirms_are_read_with_their_multiple_bit() {
        let mut buf = BytesMut::new();
        encode_method(
            1,
            &Method::BasicAck(BasicAck {
                delivery_tag: 42,
                multiple: true,
            }),
            &mut buf,
        );
        let Peek::Hot(hot, len) = peek(&buf, 0) else {
            panic!()
        };
        assert_eq!(
            hot,
            Hot::Confirm {
                channel: 1,
                delivery_tag: 42,
                multiple: true,
                nack: false
            }
        );
        let mut buf = BytesMut::new();
        encode_method(
            1,
            &Method::BasicNack(BasicNack {
                delivery_tag: 7,
                multiple: false,
                requeue: true,
            }),
            &mut buf,
        );
        assert_eq!(
            peek(&buf, 0),
            Peek::Hot(
                Hot::Confirm {
                    channel: 1,
                    delivery_tag: 7,
                    multiple: false,
                    nack: true
                },
                buf.len()
            )
        );
        assert!(len > 0);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut buf = BytesMut::new();
        encode_method(3, &deliver(1), &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(peek(&buf[..cut], 0), Peek::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn other_methods_and_malformed_frames_are_left_to_the_codec() {
        let mut buf = BytesMut::new();
        encode_method(0, &Method::ConnectionCloseOk, &mut buf);
        assert_eq!(peek(&buf, 0), Peek::Other);
        let mut bad_end = BytesMut::new();
        encode_method(3, &deliver(1), &mut bad_end);
        let last = bad_end.len() - 1;
        bad_end[last] = 0;
        assert_eq!(peek(&bad_end, 0), Peek::Other);
        let mut oversized = BytesMut::new();
        encode_body_frames(1, &[0; 5000], 0, &mut oversized);
        assert_eq!(peek(&oversized, 4096), Peek::Other);
        // A deliver cut short inside its payload (size field says so): the codec reports it.
        let truncated = [FRAME_METHOD, 0, 1, 0, 0, 0, 5, 0, 60, 0, 60, 9, FRAME_END];
        assert_eq!(peek(&truncated, 0), Peek::Other);
    }
}
