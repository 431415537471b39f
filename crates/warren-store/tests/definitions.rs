//! DefinitionStore: durable puts and deletes, cascading binding removal, compaction, and
//! recovery from a torn or damaged change log.

mod common;

use bytes::Bytes;
use common::{temp_dir, truncate};
use std::path::Path;
use warren_amqp::{Decimal, FieldTable, FieldValue};
use warren_store::{
    BindingDef, DefinitionChange, DefinitionStore, Definitions, ExchangeDef, PolicyDef, QueueDef,
    StoreError,
};

fn exchange(vhost: &str, name: &str) -> ExchangeDef {
    let mut arguments = FieldTable::new();
    arguments.insert("alternate-exchange", FieldValue::string("ae"));
    ExchangeDef {
        vhost: vhost.into(),
        name: name.into(),
        kind: "topic".into(),
        durable: true,
        auto_delete: false,
        internal: name.starts_with("internal"),
        arguments,
    }
}

fn queue(vhost: &str, name: &str, log_id: u64) -> QueueDef {
    let mut nested = FieldTable::new();
    nested.insert("count", FieldValue::I64(3));
    let mut arguments = FieldTable::new();
    arguments.insert("x-max-length", FieldValue::I32(1000));
    arguments.insert(
        "x-ratio",
        FieldValue::Decimal(Decimal {
            scale: 3,
            value: 1500,
        }),
    );
    arguments.insert(
        "x-blob",
        FieldValue::ByteArray(Bytes::from_static(&[0, 255, 7])),
    );
    arguments.insert(
        "x-list",
        FieldValue::Array(vec![FieldValue::Table(nested), FieldValue::F64(0.5)]),
    );
    QueueDef {
        vhost: vhost.into(),
        name: name.into(),
        auto_delete: false,
        arguments,
        log_id,
    }
}

fn binding(vhost: &str, source: &str, kind: &str, destination: &str, key: &str) -> BindingDef {
    BindingDef {
        vhost: vhost.into(),
        source: source.into(),
        destination_kind: kind.into(),
        destination: destination.into(),
        routing_key: key.into(),
        arguments: FieldTable::new(),
    }
}

fn reopen(dir: &Path) -> (DefinitionStore, Definitions) {
    DefinitionStore::open(dir).expect("open definitions")
}

#[test]
fn puts_and_deletes_survive_restart() {
    let dir = temp_dir();
    let (mut store, defs) = reopen(dir.path());
    assert_eq!(defs, Definitions::default());
    store
        .apply(&[
            DefinitionChange::PutExchange(exchange("/", "events")),
            DefinitionChange::PutExchange(exchange("/", "gone")),
            DefinitionChange::PutQueue(queue("/", "orders", 1)),
            DefinitionChange::PutQueue(queue("other", "orders", 2)),
            DefinitionChange::PutBinding(binding("/", "events", "queue", "orders", "order.*")),
        ])
        .unwrap();
    store
        .apply(&[DefinitionChange::DeleteExchange {
            vhost: "/".into(),
            name: "gone".into(),
        }])
        .unwrap();
    let expected = store.definitions();
    drop(store);

    let (_, defs) = reopen(dir.path());
    assert_eq!(defs, expected);
    assert_eq!(defs.exchanges, vec![exchange("/", "events")]);
    assert_eq!(
        defs.queues,
        vec![queue("/", "orders", 1), queue("other", "orders", 2)]
    );
    assert_eq!(
        defs.bindings,
        vec![binding("/", "events", "queue", "orders", "order.*")]
    );
}

#[test]
fn put_replaces_a_definition_with_the_same_name() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    store
        .apply(&[DefinitionChange::PutQueue(queue("/", "q", 1))])
        .unwrap();
    store
        .apply(&[DefinitionChange::PutQueue(queue("/", "q", 2))])
        .unwrap();
    drop(store);
    let (_, defs) = reopen(dir.path());
    assert_eq!(defs.queues, vec![queue("/", "q", 2)]);
}

#[test]
fn deleting_a_queue_drops_the_bindings_to_it_and_only_those() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    store
        .apply(&[
            DefinitionChange::PutQueue(queue("/", "q", 1)),
            DefinitionChange::PutQueue(queue("/", "keep", 2)),
            DefinitionChange::PutBinding(binding("/", "amq.direct", "queue", "q", "a")),
            DefinitionChange::PutBinding(binding("/", "amq.direct", "queue", "q", "b")),
            DefinitionChange::PutBinding(binding("/", "amq.direct", "queue", "keep", "q")),
            // Same name, but an exchange destination, and a queue of that name in another vhost.
            DefinitionChange::PutBinding(binding("/", "amq.direct", "exchange", "q", "c")),
            DefinitionChange::PutBinding(binding("v2", "amq.direct", "queue", "q", "d")),
        ])
        .unwrap();
    store
        .apply(&[DefinitionChange::DeleteQueue {
            vhost: "/".into(),
            name: "q".into(),
        }])
        .unwrap();
    drop(store);
    let (_, defs) = reopen(dir.path());
    let keys: Vec<&str> = defs
        .bindings
        .iter()
        .map(|b| b.routing_key.as_str())
        .collect();
    assert_eq!(keys, vec!["c", "q", "d"]);
    assert_eq!(defs.queues, vec![queue("/", "keep", 2)]);
}

#[test]
fn deleting_an_exchange_drops_bindings_from_and_to_it() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    store
        .apply(&[
            DefinitionChange::PutExchange(exchange("/", "x")),
            DefinitionChange::PutExchange(exchange("/", "y")),
            DefinitionChange::PutBinding(binding("/", "x", "queue", "q", "from-x")),
            DefinitionChange::PutBinding(binding("/", "y", "exchange", "x", "to-x")),
            DefinitionChange::PutBinding(binding("/", "y", "queue", "q", "kept")),
        ])
        .unwrap();
    store
        .apply(&[DefinitionChange::DeleteExchange {
            vhost: "/".into(),
            name: "x".into(),
        }])
        .unwrap();
    drop(store);
    let (_, defs) = reopen(dir.path());
    let keys: Vec<&str> = defs
        .bindings
        .iter()
        .map(|b| b.routing_key.as_str())
        .collect();
    assert_eq!(keys, vec!["kept"]);
}

#[test]
fn bindings_differing_only_in_arguments_are_distinct() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    let plain = binding("/", "amq.headers", "queue", "q", "");
    let mut with_args = plain.clone();
    with_args
        .arguments
        .insert("x-match", FieldValue::string("any"));
    store
        .apply(&[
            DefinitionChange::PutBinding(plain.clone()),
            DefinitionChange::PutBinding(with_args.clone()),
        ])
        .unwrap();
    store
        .apply(&[DefinitionChange::DeleteBinding(plain)])
        .unwrap();
    drop(store);
    let (_, defs) = reopen(dir.path());
    assert_eq!(defs.bindings, vec![with_args]);
}

#[test]
fn torn_tail_of_the_change_log_is_cut_at_every_byte_offset() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    store
        .apply(&[DefinitionChange::PutQueue(queue("/", "a", 1))])
        .unwrap();
    let before = store.definitions();
    let log = dir.path().join("definitions.log");
    let intact = std::fs::metadata(&log).unwrap().len();
    store
        .apply(&[
            DefinitionChange::PutQueue(queue("/", "b", 2)),
            DefinitionChange::PutBinding(binding("/", "amq.direct", "queue", "b", "b")),
        ])
        .unwrap();
    let full = std::fs::metadata(&log).unwrap().len();
    drop(store);
    let original = std::fs::read(&log).unwrap();
    for cut in intact..full {
        std::fs::write(&log, &original[..cut as usize]).unwrap();
        let (mut store, defs) = reopen(dir.path());
        assert_eq!(
            defs, before,
            "cut at {cut}: the torn transaction is all or nothing"
        );
        assert_eq!(
            std::fs::metadata(&log).unwrap().len(),
            intact,
            "cut at {cut}"
        );
        // Appending after the cut works and is recovered.
        store
            .apply(&[DefinitionChange::PutQueue(queue("/", "c", 3))])
            .unwrap();
        drop(store);
        let (_, defs) = reopen(dir.path());
        assert_eq!(defs.queues.len(), 2, "cut at {cut}");
    }
}

#[test]
fn damage_before_the_end_of_the_change_log_refuses_to_open() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    for i in 0..3 {
        store
            .apply(&[DefinitionChange::PutQueue(queue("/", &format!("q{i}"), i))])
            .unwrap();
    }
    drop(store);
    let log = dir.path().join("definitions.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[12] ^= 1;
    std::fs::write(&log, bytes).unwrap();
    match DefinitionStore::open(dir.path()) {
        Err(StoreError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, log);
            assert_eq!(offset, 0);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn compaction_keeps_the_state_and_empties_the_log() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    for i in 0..200u64 {
        store
            .apply(&[DefinitionChange::PutQueue(queue("/", &format!("q{i}"), i))])
            .unwrap();
        if i % 2 == 0 {
            store
                .apply(&[DefinitionChange::DeleteQueue {
                    vhost: "/".into(),
                    name: format!("q{i}"),
                }])
                .unwrap();
        }
    }
    store.compact().unwrap();
    assert_eq!(store.log_bytes(), 0);
    store
        .apply(&[DefinitionChange::PutExchange(exchange("/", "after"))])
        .unwrap();
    let expected = store.definitions();
    assert_eq!(expected.queues.len(), 100);
    drop(store);
    let (_, defs) = reopen(dir.path());
    assert_eq!(defs, expected);
}

#[test]
fn log_grows_past_the_threshold_and_compacts_by_itself() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    let mut compacted = false;
    let long = "q".repeat(200);
    for i in 0..6000u64 {
        let name = format!("{long}-{}", i % 50);
        store
            .apply(&[DefinitionChange::PutQueue(queue("/", &name, i))])
            .unwrap();
        compacted |= store.log_bytes() < 1000;
    }
    assert!(compacted);
    assert!(store.log_bytes() < warren_store::COMPACT_MIN_LOG_BYTES);
    let expected = store.definitions();
    drop(store);
    assert!(dir.path().join("definitions.snapshot").exists());
    let (_, defs) = reopen(dir.path());
    assert_eq!(defs, expected);
}

#[test]
fn crash_between_snapshot_rename_and_log_truncation_replays_nothing_twice() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    store
        .apply(&[DefinitionChange::PutQueue(queue("/", "a", 1))])
        .unwrap();
    store
        .apply(&[DefinitionChange::PutBinding(binding(
            "/",
            "amq.direct",
            "queue",
            "a",
            "k",
        ))])
        .unwrap();
    let log = dir.path().join("definitions.log");
    let stale_log = std::fs::read(&log).unwrap();
    store.compact().unwrap();
    // Deleting after the snapshot: if the stale log were replayed the binding would return.
    store
        .apply(&[DefinitionChange::DeleteBinding(binding(
            "/",
            "amq.direct",
            "queue",
            "a",
            "k",
        ))])
        .unwrap();
    store.compact().unwrap();
    drop(store);
    std::fs::write(&log, &stale_log).unwrap();
    let (mut store, defs) = reopen(dir.path());
    assert_eq!(defs.queues, vec![queue("/", "a", 1)]);
    assert!(defs.bindings.is_empty());
    store
        .apply(&[DefinitionChange::PutQueue(queue("/", "b", 2))])
        .unwrap();
    drop(store);
    let (_, defs) = reopen(dir.path());
    assert_eq!(defs.queues.len(), 2);
}

#[test]
fn damaged_snapshot_refuses_to_open() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    store
        .apply(&[DefinitionChange::PutQueue(queue("/", "a", 1))])
        .unwrap();
    store.compact().unwrap();
    drop(store);
    let snapshot = dir.path().join("definitions.snapshot");
    let len = std::fs::metadata(&snapshot).unwrap().len();
    truncate(&snapshot, len - 1);
    assert!(matches!(
        DefinitionStore::open(dir.path()),
        Err(StoreError::Corrupt { .. })
    ));
}

fn policy(name: &str, priority: &str) -> PolicyDef {
    PolicyDef {
        vhost: "/".into(),
        name: name.into(),
        pattern: "^orders\\.".into(),
        apply_to: "queues".into(),
        priority: priority.into(),
        definition: r#"{"max-length":10,"overflow":"reject-publish"}"#.into(),
    }
}

#[test]
fn policies_survive_reopen_and_compaction_and_are_replaced_by_name() {
    let dir = temp_dir();
    let (mut store, _) = reopen(dir.path());
    store
        .apply(&[DefinitionChange::PutPolicy(policy("a", "0"))])
        .unwrap();
    store
        .apply(&[
            DefinitionChange::PutPolicy(policy("b", "1")),
            DefinitionChange::PutPolicy(policy("a", "7")),
        ])
        .unwrap();
    drop(store);
    let (mut store, defs) = reopen(dir.path());
    assert_eq!(defs.policies, vec![policy("a", "7"), policy("b", "1")]);
    store
        .apply(&[DefinitionChange::DeletePolicy {
            vhost: "/".into(),
            name: "b".into(),
        }])
        .unwrap();
    store.compact().unwrap();
    drop(store);
    let (_, defs) = reopen(dir.path());
    assert_eq!(defs.policies, vec![policy("a", "7")]);
}
