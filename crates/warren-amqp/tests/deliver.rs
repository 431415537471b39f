//! `encode_deliver` (the broker's per-delivery fast path) writes exactly what the general
//! method + content encoders write.

use bytes::{Bytes, BytesMut};
use warren_amqp::{
    encode_deliver, encode_method_with_content, BasicDeliver, BasicProperties, Method, ShortStr,
};

fn both(
    tag: &str,
    dtag: u64,
    redelivered: bool,
    ex: &str,
    rk: &str,
    body_len: usize,
    frame_max: u32,
) {
    let mut props = BasicProperties::default();
    props.delivery_mode = Some(2);
    props.content_type = Some(ShortStr::from("text/plain"));
    let mut raw = BytesMut::new();
    props.encode(&mut raw);
    let body: Vec<u8> = (0..body_len).map(|i| i as u8).collect();

    let mut general = BytesMut::new();
    let deliver = BasicDeliver {
        consumer_tag: ShortStr::from(tag),
        delivery_tag: dtag,
        redelivered,
        exchange: ShortStr::from(ex),
        routing_key: ShortStr::from(rk),
    };
    encode_method_with_content(
        7,
        &Method::BasicDeliver(deliver),
        &raw,
        &body,
        frame_max,
        &mut general,
    );

    let mut fast = BytesMut::new();
    encode_deliver(
        7,
        tag.as_bytes(),
        dtag,
        redelivered,
        ex.as_bytes(),
        rk.as_bytes(),
        &raw,
        &body,
        frame_max,
        &mut fast,
    );
    assert_eq!(Bytes::from(general), Bytes::from(fast));
}

#[test]
fn fast_deliver_encoding_matches_the_general_encoder() {
    both("amq.ctag-abc", 1, false, "", "q", 0, 131072);
    both("c", u64::MAX, true, "amq.topic", "a.b.c", 64, 131072);
    both(
        &"t".repeat(255),
        42,
        false,
        &"e".repeat(255),
        &"k".repeat(255),
        10_000,
        4096,
    );
}
