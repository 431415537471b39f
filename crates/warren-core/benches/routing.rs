//! Routing cost per message with large binding tables: topic and direct with 100,000
//! bindings, headers with 1,000. Destinations are queue names (`ShortStr`), as the server's
//! are, so the cost of cloning them into the output is included.
//!
//! Run with `cargo bench -p warren-core --bench routing` (add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use warren_amqp::{FieldTable, FieldValue, ShortStr};
use warren_core::routing::{ExchangeKind, Router};

const REGIONS: usize = 20;
const SERVICES: usize = 50;
const EVENTS: [&str; 8] = [
    "created", "updated", "deleted", "paid", "shipped", "failed", "retried", "closed",
];
const KEYS_PER_RUN: usize = 1024;

fn queue(i: usize) -> ShortStr {
    ShortStr::from(format!("q-{i}"))
}

/// 100,000 topic bindings shaped like `region.service.event.id`: mostly exact keys, some with
/// `*` in the event or id position, a few with `#`; a typical key matches one or two.
fn topic_router(rng: &mut StdRng) -> Router<ShortStr> {
    let mut router = Router::new(ExchangeKind::Topic);
    let no_args = FieldTable::new();
    let mut i = 0;
    while router.len() < 100_000 {
        let region = format!("region{}", rng.gen_range(0..REGIONS));
        let service = format!("svc{}", rng.gen_range(0..SERVICES));
        let event = EVENTS[rng.gen_range(0..EVENTS.len())];
        let id = rng.gen_range(0..10_000);
        let pattern = match rng.gen_range(0..100) {
            0..=69 => format!("{region}.{service}.{event}.{id}"),
            70..=84 => format!("{region}.{service}.*.{id}"),
            85..=94 => format!("{region}.{service}.{event}.*"),
            95..=97 => format!("{region}.#.{event}.{id}"),
            _ => format!("#.{id}"),
        };
        router.bind(
            &ShortStr::from(pattern.as_str()),
            &no_args,
            queue(i % 20_000),
        );
        i += 1;
    }
    router
}

fn topic_keys(rng: &mut StdRng) -> Vec<String> {
    (0..KEYS_PER_RUN)
        .map(|_| {
            format!(
                "region{}.svc{}.{}.{}",
                rng.gen_range(0..REGIONS),
                rng.gen_range(0..SERVICES),
                EVENTS[rng.gen_range(0..EVENTS.len())],
                rng.gen_range(0..10_000)
            )
        })
        .collect()
}

fn bench_topic(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    let router = topic_router(&mut rng);
    let keys = topic_keys(&mut rng);
    let mut group = c.benchmark_group("topic_100k_bindings");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::new();
    let mut matched = 0usize;
    for k in &keys {
        out.clear();
        router.route(k, None, &mut out);
        matched += out.len();
    }
    eprintln!(
        "topic: {:.1} destinations per key on average",
        matched as f64 / keys.len() as f64
    );
    let mut n = 0;
    group.bench_function("route_region.svc.event.id", |b| {
        b.iter(|| {
            out.clear();
            router.route(black_box(&keys[n % KEYS_PER_RUN]), None, &mut out);
            n += 1;
            black_box(out.len())
        })
    });
    // A worst case for naive `#` matching: a long key of one repeated word.
    let long_key = vec!["a"; 64].join(".");
    let mut hashy = router.clone();
    for (i, p) in ["#.a.#.a.#.a", "#.#.#.a", "*.#.*.#.a.#", "a.#.a.#.a.#.b"]
        .iter()
        .enumerate()
    {
        hashy.bind(&ShortStr::from(*p), &FieldTable::new(), queue(i));
    }
    group.bench_function("route_64_word_key_against_hash_patterns", |b| {
        b.iter(|| {
            out.clear();
            hashy.route(black_box(&long_key), None, &mut out);
            black_box(out.len())
        })
    });
    group.finish();

    // What a binding change costs the server: it clones the table into a new snapshot, then
    // the next change copies the nodes it touches.
    let mut group = c.benchmark_group("topic_100k_bindings_changes");
    group.bench_function("clone", |b| b.iter(|| black_box(router.clone())));
    let mut changing = router.clone();
    let key = ShortStr::from("region1.svc2.paid.*");
    let dest = queue(1);
    group.bench_function("bind_unbind_without_snapshot", |b| {
        b.iter(|| {
            changing.bind(&key, &FieldTable::new(), dest.clone());
            changing.unbind(&key, &FieldTable::new(), &dest)
        })
    });
    group.bench_function("snapshot_then_bind_unbind", |b| {
        b.iter(|| {
            let snapshot = changing.clone();
            changing.bind(&key, &FieldTable::new(), dest.clone());
            changing.unbind(&key, &FieldTable::new(), &dest);
            snapshot
        })
    });
    group.finish();
}

fn bench_direct(c: &mut Criterion) {
    let mut router = Router::new(ExchangeKind::Direct);
    let no_args = FieldTable::new();
    // The default exchange's shape: every queue bound under its own name.
    for i in 0..100_000 {
        router.bind(&queue(i), &no_args, queue(i));
    }
    let mut rng = StdRng::seed_from_u64(11);
    let keys: Vec<String> = (0..KEYS_PER_RUN)
        .map(|_| format!("q-{}", rng.gen_range(0..110_000)))
        .collect();
    let mut group = c.benchmark_group("direct_100k_bindings");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::new();
    let mut n = 0;
    group.bench_function("route_queue_name", |b| {
        b.iter(|| {
            out.clear();
            router.route(black_box(&keys[n % KEYS_PER_RUN]), None, &mut out);
            n += 1;
            black_box(out.len())
        })
    });
    group.finish();
}

fn headers_table(entries: &[(&str, FieldValue)]) -> FieldTable {
    let mut table = FieldTable::new();
    for (k, v) in entries {
        table.insert(*k, v.clone());
    }
    table
}

fn bench_headers(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(13);
    let mut router = Router::new(ExchangeKind::Headers);
    let formats = ["pdf", "zip", "csv", "json", "xml"];
    for i in 0..1_000 {
        let mode = if i % 3 == 0 { "any" } else { "all" };
        let mut entries = vec![
            ("x-match", FieldValue::string(mode)),
            (
                "format",
                FieldValue::string(formats[rng.gen_range(0..formats.len())]),
            ),
            (
                "type",
                FieldValue::string(&format!("report{}", rng.gen_range(0..40))),
            ),
        ];
        if i % 2 == 0 {
            entries.push(("priority", FieldValue::I32(rng.gen_range(0..5))));
        }
        router.bind(&ShortStr::from(""), &headers_table(&entries), queue(i));
    }
    let messages: Vec<FieldTable> = (0..KEYS_PER_RUN)
        .map(|_| {
            headers_table(&[
                (
                    "format",
                    FieldValue::string(formats[rng.gen_range(0..formats.len())]),
                ),
                (
                    "type",
                    FieldValue::string(&format!("report{}", rng.gen_range(0..40))),
                ),
                ("priority", FieldValue::I64(rng.gen_range(0..5))),
                (
                    "trace-id",
                    FieldValue::string("0af7651916cd43dd8448eb211c80319c"),
                ),
                ("x-retries", FieldValue::I32(0)),
            ])
        })
        .collect();
    let mut group = c.benchmark_group("headers_1k_bindings");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::new();
    let mut n = 0;
    group.bench_function("route_5_headers", |b| {
        b.iter(|| {
            out.clear();
            router.route("", Some(black_box(&messages[n % KEYS_PER_RUN])), &mut out);
            n += 1;
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_topic, bench_direct, bench_headers);
criterion_main!(benches);
