//! The vhost model's costs on the publish path and under binding churn: routing a message
//! through `VHostState::route` (direct to one queue, and through an exchange-to-exchange
//! binding), and a binding change as the server makes it on a topic exchange of 100,000
//! bindings: clone the published state, bind, publish the clone.
//!
//! Run with `cargo bench -p warren-core --bench vhost` (add `-- --quick` for a short run).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use warren_amqp::{BasicProperties, FieldTable, ShortStr};
use warren_core::entity::ExchangeMeta;
use warren_core::exchange_type::ExchangeType;
use warren_core::policy::PolicySet;
use warren_core::vhost::{
    Admission, Destination, ExchangeDeclaration, QueueHandle, VHostState,
};
use warren_core::Message;

/// A queue handle as the server's: a shared allocation compared by id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Queue(Arc<(u64, ShortStr)>);

impl QueueHandle for Queue {
    fn name(&self) -> &ShortStr {
        &self.0 .1
    }
}

type Model = VHostState<Queue, ()>;

fn queue(i: u64) -> Queue {
    Queue(Arc::new((i, ShortStr::from(format!("q-{i}")))))
}

fn declare(vhost: &mut Model, name: &str, kind: &str) {
    let meta = ExchangeMeta {
        name: ShortStr::from(name),
        kind: ExchangeType::parse(kind).unwrap(),
        durable: false,
        auto_delete: false,
        internal: false,
        arguments: FieldTable::new(),
    };
    match vhost.check_exchange_declaration(&meta).unwrap() {
        ExchangeDeclaration::New(new) => {
            vhost.insert_exchange(new, (), &PolicySet::new());
        }
        ExchangeDeclaration::Existing(_) => {}
    }
}

fn add_queue(vhost: &mut Model, q: &Queue) {
    let meta = warren_core::entity::QueueMeta {
        name: q.name().clone(),
        durable: false,
        exclusive_owner: None,
        auto_delete: false,
        arguments: FieldTable::new(),
    };
    match vhost.check_queue_declaration(&meta, false, 1).unwrap() {
        warren_core::vhost::QueueDeclaration::New(new) => vhost.insert_queue(new, q.clone()),
        warren_core::vhost::QueueDeclaration::Existing(_) => {}
    }
}

fn message(key: &str) -> Message {
    Message {
        exchange: ShortStr::from(""),
        routing_key: ShortStr::from(key),
        properties: BasicProperties::default(),
        properties_raw: Bytes::new(),
        body: Bytes::new(),
    }
}

fn admit(_: &warren_core::vhost::Exchange<Queue, ()>, _: &Message) -> Admission<Queue> {
    Admission::Route
}

fn topic_key(i: u64) -> ShortStr {
    ShortStr::from(format!("region{}.svc{}.ev.{i}", i % 20, i % 50))
}

fn bench_route(c: &mut Criterion) {
    let mut vhost = Model::new("/", false);
    declare(&mut vhost, "direct", "direct");
    declare(&mut vhost, "entry", "direct");
    declare(&mut vhost, "fanout", "fanout");
    let q = queue(1);
    add_queue(&mut vhost, &q);
    let key = ShortStr::from("k");
    let none = FieldTable::new();
    let _ = vhost.bind("direct", Destination::Queue(q.clone()), &key, &none).unwrap();
    let _ = vhost
        .bind("entry", Destination::Exchange(ShortStr::from("fanout")), &key, &none)
        .unwrap();
    let _ = vhost.bind("fanout", Destination::Queue(q), &key, &none).unwrap();
    let m = message("k");
    let mut group = c.benchmark_group("vhost_route");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::new();
    for (name, exchange) in [
        ("direct_to_one_queue", "direct"),
        ("through_an_exchange_binding", "entry"),
    ] {
        let ex = vhost.exchange(exchange).unwrap().clone();
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(vhost.route(&ex, black_box(&m), admit, &mut out));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_binding_churn(c: &mut Criterion) {
    let mut vhost = Model::new("/", false);
    declare(&mut vhost, "topic", "topic");
    let queues: Vec<Queue> = (0..1000).map(queue).collect();
    for q in &queues {
        add_queue(&mut vhost, q);
    }
    let none = FieldTable::new();
    // 100,000 bindings declared in a row, each change published as the server does.
    let mut published = Arc::new(vhost);
    let started = Instant::now();
    for i in 0..100_000u64 {
        let mut next = (*published).clone();
        let dest = Destination::Queue(queues[(i % 1000) as usize].clone());
        let _ = next.bind("topic", dest, &topic_key(i), &none).unwrap();
        published = Arc::new(next);
    }
    eprintln!(
        "vhost: 100,000 topic bindings declared in a row, each published: {:?}",
        started.elapsed()
    );
    let mut group = c.benchmark_group("vhost_topic_100k_bindings_changes");
    let dest = Destination::Queue(queues[1].clone());
    let key = ShortStr::from("region1.svc2.paid.*");
    group.bench_function("bind_then_unbind_each_published", |b| {
        b.iter(|| {
            let mut next = (*published).clone();
            let _ = next.bind("topic", dest.clone(), &key, &none).unwrap();
            published = Arc::new(next);
            let mut next = (*published).clone();
            let _ = next.unbind("topic", &dest, &key, &none).unwrap();
            published = Arc::new(next);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_route, bench_binding_churn);
criterion_main!(benches);
