//! The queue's per-message cycle: enqueue, dispatch to a consumer within its prefetch, ack.
//! `cargo bench -p warren-core --bench queue`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;
use warren_amqp::{BasicProperties, ShortStr};
use warren_core::queue::{ChannelKey, ConsumerId, ConsumerSpec, QueueState, Seq};
use warren_core::Message;

const BATCH: usize = 1000;

fn message() -> Arc<Message> {
    Arc::new(Message {
        exchange: ShortStr::from(""),
        routing_key: ShortStr::from("bench"),
        properties: BasicProperties::default(),
        properties_raw: Bytes::from_static(&[0, 0]),
        body: Bytes::from(vec![0u8; 64]),
    })
}

fn consumer(no_ack: bool) -> ConsumerSpec<()> {
    ConsumerSpec {
        id: ConsumerId(1),
        tag: ShortStr::from("c"),
        owner: ChannelKey {
            connection: 1,
            channel: 1,
        },
        no_ack,
        prefetch: 0,
        exclusive: false,
        channel_credit: None,
        priority: 0,
        sink: (),
    }
}

fn cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(BATCH as u64));
    let msg = message();
    group.bench_function("enqueue_dispatch_ack_1000", |b| {
        b.iter_batched(
            || {
                let mut q = QueueState::new();
                q.add_consumer(consumer(false), "queue 'bench'").unwrap();
                q
            },
            |mut q| {
                let mut seqs: Vec<Seq> = Vec::with_capacity(BATCH);
                for _ in 0..BATCH {
                    q.publish(msg.clone(), 0);
                }
                q.dispatch(|_, d| seqs.push(d.seq));
                q.credit(ConsumerId(1), BATCH as u32);
                q.ack(&seqs, |_| {});
                q
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("enqueue_dispatch_noack_1000", |b| {
        b.iter_batched(
            || {
                let mut q = QueueState::new();
                q.add_consumer(consumer(true), "queue 'bench'").unwrap();
                q
            },
            |mut q| {
                for _ in 0..BATCH {
                    q.publish(msg.clone(), 0);
                }
                q.dispatch(|_, _| {});
                q.credit(ConsumerId(1), BATCH as u32);
                q
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, cycle);
criterion_main!(benches);
