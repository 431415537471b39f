//! Encoding what goes to a client with a message: `basic.deliver` and the content frames
//! (after `basic.get-ok` and `basic.return`), from a message as the broker keeps it. The
//! properties go out exactly as the publisher encoded them, the body without a copy.

use bytes::BytesMut;
use warren_amqp::{encode_body_frames, encode_content_header, CLASS_BASIC};
use warren_core::queue::Delivery;
use warren_core::Message;

/// Writes `basic.deliver` with the message's content.
pub(super) fn write_delivery(
    out: &mut BytesMut,
    ch: u16,
    consumer_tag: &[u8],
    delivery_tag: u64,
    d: &Delivery,
    frame_max: u32,
) {
    let m = &d.message;
    warren_amqp::encode_deliver(
        ch,
        consumer_tag,
        delivery_tag,
        d.redelivered,
        m.exchange.as_bytes(),
        m.routing_key.as_bytes(),
        &m.properties_raw,
        &m.body,
        frame_max,
        out,
    );
}

/// Writes a message's content header and body frames.
pub(super) fn write_content(out: &mut BytesMut, ch: u16, m: &Message, frame_max: u32) {
    encode_content_header(ch, CLASS_BASIC, m.body.len() as u64, &m.properties_raw, out);
    encode_body_frames(ch, &m.body, frame_max, out);
}
