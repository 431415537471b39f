//! The publish path allocates nothing per message beyond what the decoded values own, and
//! the delivery path nothing beyond the output buffer: counted with a test allocator.

use bytes::BytesMut;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use warren_amqp::*;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn publish_frames(buf: &mut BytesMut) {
    let props = BasicProperties {
        content_type: Some("application/json".into()),
        delivery_mode: Some(2),
        message_id: Some("m-1".into()),
        ..Default::default()
    };
    let publish = Method::BasicPublish(BasicPublish {
        exchange: "amq.direct".into(),
        routing_key: "orders".into(),
        mandatory: false,
        immediate: false,
    });
    let mut raw = BytesMut::new();
    props.encode(&mut raw);
    encode_method_with_content(1, &publish, &raw, &[0x42; 64], 131072, buf);
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocations_during(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(8))));
    assert_eq!(n, 1);
}

/// The only allocation is the boxed content header, one per message (see `Frame::Header`).
#[test]
fn decoding_publish_header_and_body_allocates_only_the_boxed_header() {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    for _ in 0..10 {
        publish_frames(&mut buf);
    }
    let mut dec = FrameDecoder::new(131072);
    // The first split of a fresh BytesMut turns its storage into a shared one (one
    // allocation per read buffer, not per frame).
    let first = dec.decode(&mut buf).unwrap().unwrap();
    let mut frames = Vec::with_capacity(64);
    let n = allocations_during(|| {
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            frames.push(f);
        }
    });
    assert_eq!(frames.len(), 29);
    assert!(matches!(first, Frame::Method { .. }));
    let headers = frames
        .iter()
        .filter(|f| matches!(f, Frame::Header { .. }))
        .count();
    assert_eq!(headers, 10);
    assert_eq!(n, headers, "allocations while decoding 29 frames");
}

#[test]
fn encoding_deliver_header_and_body_into_a_reserved_buffer_does_not_allocate() {
    let deliver = Method::BasicDeliver(BasicDeliver {
        consumer_tag: "amq.ctag-1".into(),
        delivery_tag: 7,
        redelivered: false,
        exchange: "amq.direct".into(),
        routing_key: "orders".into(),
    });
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    let mut raw = BytesMut::new();
    props.encode(&mut raw);
    let body = [0x42u8; 64];
    let mut out = BytesMut::with_capacity(64 * 1024);
    let n = allocations_during(|| {
        for _ in 0..100 {
            encode_method_with_content(1, &deliver, &raw, &body, 131072, &mut out);
        }
        encode_heartbeat(&mut out);
    });
    assert_eq!(n, 0);
}
