//! The broker's hot path through the codec: splitting published messages out of a read
//! buffer, and writing deliveries into a write buffer. Run with `cargo bench -p warren-amqp`.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use warren_amqp::*;

/// Messages per batch: roughly what one socket read holds under load.
const BATCH: usize = 100;
const BODY: [u8; 64] = [0x42; 64];

fn properties_raw() -> BytesMut {
    let props = BasicProperties {
        content_type: Some("application/json".into()),
        delivery_mode: Some(2),
        ..Default::default()
    };
    let mut raw = BytesMut::new();
    props.encode(&mut raw);
    raw
}

fn publish_batch() -> BytesMut {
    let publish = Method::BasicPublish(BasicPublish {
        exchange: "amq.direct".into(),
        routing_key: "orders.created".into(),
        mandatory: false,
        immediate: false,
    });
    let raw = properties_raw();
    let mut buf = BytesMut::new();
    for _ in 0..BATCH {
        encode_method_with_content(1, &publish, &raw, &BODY, 131072, &mut buf);
    }
    buf
}

fn decode_publish(c: &mut Criterion) {
    let batch = publish_batch();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("publish+header+64B body x100", |b| {
        b.iter_batched_ref(
            || batch.clone(),
            |buf| {
                let mut dec = FrameDecoder::new(131072);
                let mut frames = 0;
                while let Some(frame) = dec.decode(buf).unwrap() {
                    black_box(&frame);
                    frames += 1;
                }
                assert_eq!(frames, 3 * BATCH);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn encode_deliver(c: &mut Criterion) {
    let raw = properties_raw();
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("deliver+header+64B body x100", |b| {
        b.iter(|| {
            out.clear();
            for tag in 0..BATCH as u64 {
                let deliver = Method::BasicDeliver(BasicDeliver {
                    consumer_tag: ShortStr::from_static("amq.ctag-bench"),
                    delivery_tag: tag,
                    redelivered: false,
                    exchange: ShortStr::from_static("amq.direct"),
                    routing_key: ShortStr::from_static("orders.created"),
                });
                encode_method_with_content(1, &deliver, &raw, &BODY, 131072, &mut out);
            }
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group!(benches, decode_publish, encode_deliver);
criterion_main!(benches);
