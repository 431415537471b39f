//! The queue's per-message cycle, as its machine runs it: enqueue a batch (which dispatches
//! to a consumer within its prefetch), report it written, ack.
//! `cargo bench -p warren-core --bench queue`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;
use warren_amqp::{BasicProperties, ShortStr};
use warren_core::args::QueueArgs;
use warren_core::queue::{
    Command, ConsumerId, ConsumerSpec, Effect, Incoming, QueueConfig, QueueMachine, SessionId,
    Settlement,
};
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

fn consumer(no_ack: bool) -> ConsumerSpec {
    ConsumerSpec {
        id: ConsumerId(1),
        tag: ShortStr::from("c"),
        session: SessionId(1),
        no_ack,
        prefetch: 0,
        exclusive: false,
        priority: 0,
        window: 4096,
        session_credit: None,
    }
}

fn queue_with(no_ack: bool) -> QueueMachine {
    let mut q = QueueMachine::new(QueueConfig {
        name: ShortStr::from("bench"),
        vhost: "/".into(),
        durable: false,
        auto_delete: false,
        args: QueueArgs::default(),
    });
    q.apply(0, Command::Consume(consumer(no_ack)));
    q
}

fn batch(msg: &Arc<Message>) -> Command {
    Command::Enqueue(
        (0..BATCH)
            .map(|_| Incoming {
                message: msg.clone(),
                confirm: None,
            })
            .collect(),
    )
}

fn cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(BATCH as u64));
    let msg = message();
    group.bench_function("enqueue_dispatch_ack_1000", |b| {
        b.iter_batched(
            || (queue_with(false), batch(&msg), Vec::with_capacity(BATCH + 8)),
            |(mut q, cmd, mut effects)| {
                q.apply(0, cmd);
                q.drain_effects(&mut effects);
                let seqs = effects
                    .iter()
                    .filter_map(|e| match e {
                        Effect::Deliver { delivery, .. } => Some(delivery.seq),
                        _ => None,
                    })
                    .collect();
                let n = BATCH as u32;
                q.apply(0, Command::Written { consumer: ConsumerId(1), n });
                q.apply(0, Command::Settle { seqs, how: Settlement::Ack });
                q
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("enqueue_dispatch_noack_1000", |b| {
        b.iter_batched(
            || (queue_with(true), batch(&msg), Vec::with_capacity(BATCH + 8)),
            |(mut q, cmd, mut effects)| {
                q.apply(0, cmd);
                q.drain_effects(&mut effects);
                let n = BATCH as u32;
                q.apply(0, Command::Written { consumer: ConsumerId(1), n });
                (q, effects)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, cycle);
criterion_main!(benches);
