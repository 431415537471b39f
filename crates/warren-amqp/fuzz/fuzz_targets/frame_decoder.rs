//! Feeds arbitrary bytes to `FrameDecoder` in arbitrary chunks. It must never panic, and
//! every frame it accepts must encode to bytes that decode and encode to the same bytes
//! (compared as bytes, since a float field may hold a NaN, which never equals itself).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren_amqp::{
    encode_body_frames, encode_content_header, encode_heartbeat, encode_method, BasicProperties,
    Frame, FrameDecoder,
};

fuzz_target!(|data: &[u8]| {
    // First two bytes choose the frame-max (0 = unlimited) and the read chunk size, so the
    // fuzzer explores limits and partial reads too.
    let (frame_max, chunk, input) = match data {
        [a, b, rest @ ..] => (u32::from(*a) * 64, usize::from(*b).max(1), rest),
        _ => return,
    };
    let mut decoder = FrameDecoder::new(frame_max);
    let mut buf = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => check_round_trip(&frame),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

fn check_round_trip(frame: &Frame) {
    let first = encode(frame);
    if first.is_empty() {
        return; // an empty body frame encodes to nothing
    }
    let mut buf = first.clone();
    let again = FrameDecoder::new(0)
        .decode(&mut buf)
        .expect("re-encoded frame decodes")
        .expect("re-encoded frame is whole");
    assert!(buf.is_empty());
    assert_eq!(encode(&again), first);
    if let Frame::Header { header, .. } = frame {
        // The decoded properties, encoded afresh, must survive a round trip as well.
        let mut props = BytesMut::new();
        header.properties.encode(&mut props);
        let back = BasicProperties::decode(&props.clone().freeze()).expect("properties decode");
        let mut props_again = BytesMut::new();
        back.encode(&mut props_again);
        assert_eq!(props_again, props);
    }
}

fn encode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    match frame {
        Frame::Method { channel, method } => encode_method(*channel, method, &mut out),
        Frame::Header { channel, header } => encode_content_header(
            *channel,
            header.class_id,
            header.body_size,
            &header.properties_raw,
            &mut out,
        ),
        Frame::Body { channel, payload } => encode_body_frames(*channel, payload, 0, &mut out),
        Frame::Heartbeat { channel } => {
            encode_heartbeat(&mut out);
            out[1..3].copy_from_slice(&channel.to_be_bytes());
        }
    }
    out
}
