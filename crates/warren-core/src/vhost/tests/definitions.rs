//! Definition changes: predeclared exchanges, redeclaration, deletion, binding idempotence,
//! the auto-delete cascade, durable bindings, and what each change asks to persist.

use super::*;

fn stored_binding(source: &str, dest: Destination<ShortStr>, k: &str) -> Binding {
    Binding {
        source: key(source),
        destination: dest,
        routing_key: key(k),
        arguments: FieldTable::new(),
    }
}

fn queue_end(name: &str) -> Destination<ShortStr> {
    Destination::Queue(key(name))
}

fn exchange_end(name: &str) -> Destination<ShortStr> {
    Destination::Exchange(key(name))
}

#[test]
fn a_new_vhost_has_the_predeclared_durable_exchanges() {
    let f = durable_vhost();
    assert_eq!(
        f.exchange_names(),
        names(&["", "amq.direct", "amq.fanout", "amq.headers", "amq.match", "amq.topic"])
    );
    let topic = f.vhost.exchange("amq.topic").unwrap();
    assert!(topic.meta.durable && !topic.meta.auto_delete && !topic.meta.internal);
    assert_eq!(topic.meta.kind.as_str(), "topic");
    assert_eq!(f.vhost.exchange("amq.match").unwrap().meta.kind.as_str(), "headers");
}

#[test]
fn predeclared_exchanges_cannot_be_deleted() {
    let mut f = durable_vhost();
    let err = f.vhost.delete_exchange("amq.direct", false).err().unwrap();
    assert_eq!(err.reply_code(), ReplyCode::AccessRefused);
    assert_eq!(
        err.reply_text(),
        "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
    );
    let err = f.vhost.delete_exchange("", false).err().unwrap();
    assert_eq!(
        err.reply_text(),
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
    assert!(f.vhost.exchange("amq.direct").is_some());
}

#[test]
fn new_exchange_with_a_reserved_name_is_refused_but_a_predeclared_one_redeclares() {
    let mut f = durable_vhost();
    let err = f.declare_exchange(exchange_meta("amq.mine", "direct")).unwrap_err();
    assert_eq!(err.reply_code(), ReplyCode::AccessRefused);
    assert_eq!(
        err.reply_text(),
        "ACCESS_REFUSED - exchange name 'amq.mine' contains reserved prefix 'amq.*'"
    );
    assert_eq!(f.declare_exchange(exchange_meta("amq.direct", "direct")), Ok(vec![]));
    let err = f.declare_exchange(exchange_meta("amq.direct", "fanout")).unwrap_err();
    assert_eq!(err.reply_code(), ReplyCode::PreconditionFailed);
}

#[test]
fn declaring_the_default_exchange_is_refused() {
    let mut f = durable_vhost();
    let err = f.declare_exchange(exchange_meta("", "direct")).unwrap_err();
    assert_eq!(err.reply_code(), ReplyCode::AccessRefused);
}

#[test]
fn durable_exchange_is_persisted_once_and_transient_ones_never() {
    let mut f = durable_vhost();
    let meta = exchange_meta("x", "topic");
    assert_eq!(
        f.declare_exchange(meta.clone()),
        Ok(vec![DefinitionChange::PutExchange(meta.clone())])
    );
    assert_eq!(f.declare_exchange(meta), Ok(vec![]));
    let transient = ExchangeMeta {
        durable: false,
        ..exchange_meta("t", "topic")
    };
    assert_eq!(f.declare_exchange(transient), Ok(vec![]));
    let mut f = transient_vhost();
    assert_eq!(f.declare_exchange(exchange_meta("x", "topic")), Ok(vec![]));
}

#[test]
fn inequivalent_exchange_redeclaration_names_the_argument() {
    let mut f = durable_vhost();
    f.exchange("x", "direct");
    let err = f
        .declare_exchange(ExchangeMeta {
            durable: false,
            ..exchange_meta("x", "direct")
        })
        .unwrap_err();
    assert_eq!(
        err.reply_text(),
        "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'x' in vhost '/': received 'false' but current is 'true'"
    );
}

#[test]
fn new_exchange_arguments_are_validated_in_the_plugin_words() {
    let mut f = durable_vhost();
    let err = f
        .declare_exchange(exchange_meta("d", "x-delayed-message"))
        .unwrap_err();
    assert_eq!(
        err.reply_text(),
        "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"
    );
    assert!(f.vhost.exchange("d").is_none());
}

#[test]
fn deleting_an_exchange_if_unused_refuses_one_with_bindings() {
    let mut f = durable_vhost();
    f.exchange("x", "direct");
    let q = f.queue("q");
    f.bind_queue("x", &q, "k");
    let err = f.vhost.delete_exchange("x", true).err().unwrap();
    assert_eq!(err.reply_code(), ReplyCode::PreconditionFailed);
    assert_eq!(err.reply_text(), "PRECONDITION_FAILED - exchange 'x' in vhost '/' in use");
    let applied = f.vhost.delete_exchange("x", false).unwrap();
    assert_eq!(applied.changes, vec![DefinitionChange::DeleteExchange(key("x"))]);
    assert_eq!(applied.removed_exchanges.len(), 1);
    assert!(f.vhost.exchange("x").is_none());
}

#[test]
fn deleting_a_missing_exchange_is_not_found() {
    let mut f = durable_vhost();
    let err = f.vhost.delete_exchange("nope", false).err().unwrap();
    assert_eq!(err.reply_text(), "NOT_FOUND - no exchange 'nope' in vhost '/'");
}

#[test]
fn deleting_an_exchange_removes_bindings_to_it_and_cascades_to_auto_delete_sources() {
    let mut f = durable_vhost();
    f.auto_delete_exchange("source", "fanout");
    f.exchange("kept", "fanout");
    f.exchange("dest", "fanout");
    f.bind_exchange("source", "dest", "");
    f.bind_exchange("kept", "dest", "");
    let applied = f.vhost.delete_exchange("dest", false).unwrap();
    assert_eq!(
        applied.changes,
        vec![
            DefinitionChange::DeleteExchange(key("dest")),
            DefinitionChange::DeleteExchange(key("source")),
        ]
    );
    assert_eq!(applied.removed_exchanges.len(), 2);
    assert!(f.vhost.exchange("source").is_none());
    let kept = f.vhost.exchange("kept").unwrap();
    assert!(!kept.has_bindings());
}

#[test]
fn deleting_a_queue_removes_its_bindings() {
    let mut f = durable_vhost();
    f.exchange("x", "direct");
    let q = f.queue("q");
    let other = f.queue("other");
    f.bind_queue("x", &q, "a");
    f.bind_queue("x", &q, "b");
    f.bind_queue("x", &other, "a");
    let applied = f.vhost.forget_queue(&q);
    assert_eq!(applied.changes, vec![DefinitionChange::DeleteQueue(key("q"))]);
    assert!(applied.removed_exchanges.is_empty());
    assert!(f.vhost.queue("q").is_none());
    assert_eq!(f.vhost.exchange("x").unwrap().binding_count(), 1);
    assert_eq!(f.route("x", "a"), names(&["other"]));
}

#[test]
fn auto_delete_exchange_goes_with_its_last_queue_and_the_cascade_follows_exchange_bindings() {
    let mut f = durable_vhost();
    f.auto_delete_exchange("inner", "fanout");
    f.auto_delete_exchange("outer", "fanout");
    f.exchange("plain", "fanout");
    let q = f.queue("q");
    f.bind_queue("inner", &q, "");
    f.bind_exchange("outer", "inner", "");
    f.bind_exchange("plain", "inner", "");
    let applied = f.vhost.forget_queue(&q);
    let mut changes = applied.changes.clone();
    changes.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        changes,
        vec![
            DefinitionChange::DeleteExchange(key("inner")),
            DefinitionChange::DeleteExchange(key("outer")),
            DefinitionChange::DeleteQueue(key("q")),
        ]
    );
    assert_eq!(applied.changes[0], DefinitionChange::DeleteQueue(key("q")));
    assert_eq!(applied.removed_exchanges.len(), 2);
    assert!(f.vhost.exchange("inner").is_none() && f.vhost.exchange("outer").is_none());
    assert!(!f.vhost.exchange("plain").unwrap().has_bindings());
}

#[test]
fn auto_delete_exchange_goes_when_its_last_binding_is_unbound() {
    let mut f = durable_vhost();
    f.auto_delete_exchange("x", "direct");
    let q = f.queue("q");
    f.bind_queue("x", &q, "a");
    f.bind_queue("x", &q, "b");
    let dest = Destination::Queue(q);
    let applied = f.vhost.unbind("x", &dest, &key("a"), &FieldTable::new()).unwrap();
    assert_eq!(
        applied.changes,
        vec![DefinitionChange::DeleteBinding(stored_binding("x", queue_end("q"), "a"))]
    );
    assert!(f.vhost.exchange("x").is_some());
    let applied = f.vhost.unbind("x", &dest, &key("b"), &FieldTable::new()).unwrap();
    assert_eq!(
        applied.changes,
        vec![
            DefinitionChange::DeleteBinding(stored_binding("x", queue_end("q"), "b")),
            DefinitionChange::DeleteExchange(key("x")),
        ]
    );
    assert!(f.vhost.exchange("x").is_none());
}

#[test]
fn an_auto_delete_exchange_never_bound_stays() {
    let mut f = durable_vhost();
    f.auto_delete_exchange("x", "direct");
    let q = f.queue("q");
    let _ = f.vhost.forget_queue(&q);
    assert!(f.vhost.exchange("x").is_some());
}

#[test]
fn binding_durable_ends_in_a_durable_vhost_is_persisted_once() {
    let mut f = durable_vhost();
    f.exchange("x", "direct");
    f.exchange("y", "fanout");
    let q = f.queue("q");
    assert_eq!(
        f.bind("x", Destination::Queue(q.clone()), "k"),
        vec![DefinitionChange::PutBinding(stored_binding("x", queue_end("q"), "k"))]
    );
    assert_eq!(f.bind("x", Destination::Queue(q), "k"), vec![]);
    assert_eq!(
        f.bind("x", to_exchange("y"), "k"),
        vec![DefinitionChange::PutBinding(stored_binding("x", exchange_end("y"), "k"))]
    );
}

#[test]
fn binding_with_a_transient_end_is_not_persisted() {
    let mut f = durable_vhost();
    f.exchange("durable", "direct");
    f.declare_exchange(ExchangeMeta {
        durable: false,
        ..exchange_meta("transient", "direct")
    })
    .unwrap();
    let durable_q = f.queue("dq");
    let (transient_q, changes) = f
        .declare_queue(
            QueueMeta {
                durable: false,
                ..queue_meta("tq")
            },
            false,
        )
        .unwrap();
    assert_eq!(changes, vec![]);
    assert_eq!(f.bind("durable", Destination::Queue(transient_q.clone()), "k"), vec![]);
    assert_eq!(f.bind("transient", Destination::Queue(durable_q), "k"), vec![]);
    assert_eq!(f.bind("durable", to_exchange("transient"), "k"), vec![]);
    assert_eq!(f.bind("transient", to_exchange("durable"), "k"), vec![]);
    // Deleting transient things persists nothing either.
    assert!(f.vhost.forget_queue(&transient_q).changes.is_empty());
    assert!(f.vhost.delete_exchange("transient", false).unwrap().changes.is_empty());
}

#[test]
fn exclusive_queue_is_never_durable_nor_its_bindings() {
    let mut f = durable_vhost();
    f.exchange("x", "direct");
    let (q, changes) = f
        .declare_queue(
            QueueMeta {
                exclusive_owner: Some(1),
                ..queue_meta("mine")
            },
            false,
        )
        .unwrap();
    assert_eq!(changes, vec![]);
    assert!(!f.vhost.queue_entry("mine").unwrap().durable);
    assert_eq!(f.bind("x", Destination::Queue(q.clone()), "k"), vec![]);
    assert!(f.vhost.forget_queue(&q).changes.is_empty());
}

#[test]
fn nothing_is_persisted_in_a_vhost_without_storage() {
    let mut f = transient_vhost();
    f.exchange("x", "direct");
    let (q, changes) = f.declare_queue(queue_meta("q"), false).unwrap();
    assert_eq!(changes, vec![]);
    assert!(!f.vhost.queue_entry("q").unwrap().durable);
    assert_eq!(f.bind("x", Destination::Queue(q.clone()), "k"), vec![]);
    assert!(f.vhost.forget_queue(&q).changes.is_empty());
    assert!(f.vhost.delete_exchange("x", false).unwrap().changes.is_empty());
}

#[test]
fn durable_queue_declaration_is_persisted_with_its_definition() {
    let mut f = durable_vhost();
    let meta = queue_meta("q");
    let (_, changes) = f.declare_queue(meta.clone(), false).unwrap();
    assert_eq!(changes, vec![DefinitionChange::PutQueue(meta.clone())]);
    let (_, changes) = f.declare_queue(meta, false).unwrap();
    assert_eq!(changes, vec![]);
}

#[test]
fn restored_definitions_ask_for_nothing_to_persist() {
    let mut f = durable_vhost();
    let new = NewQueue::restored(queue_meta("q"));
    assert!(new.is_durable() && new.changes().is_empty());
    let behaviour = ExchangeBehaviour::plain(ExchangeKind::Direct);
    let new = NewExchange::restored(exchange_meta("x", "direct"), behaviour);
    assert!(new.changes().is_empty());
    f.vhost.insert_exchange(new, TestState::default(), &f.policies);
    let q = f.new_handle("q");
    f.vhost.insert_queue(NewQueue::restored(queue_meta("q")), q.clone());
    let dest = Destination::Queue(q);
    assert!(f.vhost.restore_binding("x", dest.clone(), &key("k"), &FieldTable::new()));
    assert!(!f.vhost.restore_binding("gone", dest, &key("k"), &FieldTable::new()));
    assert_eq!(f.route("x", "k"), names(&["q"]));
}

#[test]
fn queue_redeclaration_checks_equivalence_and_passive_finds_or_fails() {
    let mut f = durable_vhost();
    let q = f.queue("q");
    let (again, _) = f.declare_queue(queue_meta("q"), false).unwrap();
    assert_eq!(again, q);
    let err = f
        .declare_queue(
            QueueMeta {
                durable: false,
                ..queue_meta("q")
            },
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.reply_text(),
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but current is 'true'"
    );
    // Passive ignores the flags.
    let passive = QueueMeta {
        durable: false,
        ..queue_meta("q")
    };
    assert_eq!(f.declare_queue(passive, true).unwrap().0, q);
    let err = f.declare_queue(queue_meta("nope"), true).unwrap_err();
    assert_eq!(err.reply_text(), "NOT_FOUND - no queue 'nope' in vhost '/'");
    assert!(f.vhost.queue("nope").is_none());
}

#[test]
fn new_queue_arguments_are_validated() {
    let mut f = durable_vhost();
    let meta = QueueMeta {
        arguments: args(&[("x-max-length", FieldValue::I32(-1))]),
        ..queue_meta("q")
    };
    let err = f.declare_queue(meta, false).unwrap_err();
    assert_eq!(err.reply_code(), ReplyCode::PreconditionFailed);
    assert!(f.vhost.queue("q").is_none());
}

#[test]
fn binding_checks_the_destination_then_the_source_then_the_arguments() {
    let mut f = durable_vhost();
    f.exchange("h", "headers");
    let q = f.queue("q");
    let e = |r: Result<Applied<TestQueue, TestState>, BrokerError>| r.err().unwrap().reply_text();
    let no_args = FieldTable::new();
    assert_eq!(
        e(f.vhost.bind("nope", to_exchange("missing"), &key(""), &no_args)),
        "NOT_FOUND - no exchange 'missing' in vhost '/'"
    );
    assert_eq!(
        e(f.vhost.bind("nope", to_exchange(""), &key(""), &no_args)),
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
    assert_eq!(
        e(f.vhost.bind("nope", Destination::Queue(q.clone()), &key(""), &no_args)),
        "NOT_FOUND - no exchange 'nope' in vhost '/'"
    );
    assert_eq!(
        e(f.vhost.bind("", Destination::Queue(q.clone()), &key(""), &no_args)),
        "ACCESS_REFUSED - operation not permitted on the default exchange"
    );
    let bad = args(&[("x-match", FieldValue::string("some"))]);
    let err = f
        .vhost
        .bind("h", Destination::Queue(q.clone()), &key(""), &bad)
        .err()
        .unwrap();
    assert_eq!(err.reply_code(), ReplyCode::PreconditionFailed);
    // A handle the vhost no longer lists (deleted meanwhile) cannot be bound.
    let _ = f.vhost.forget_queue(&q);
    assert_eq!(
        e(f.vhost.bind("h", Destination::Queue(q), &key(""), &no_args)),
        "NOT_FOUND - no queue 'q' in vhost '/'"
    );
}

#[test]
fn unbinding_what_is_not_there_succeeds_and_changes_nothing() {
    let mut f = durable_vhost();
    f.exchange("x", "direct");
    let q = f.queue("q");
    let no_args = FieldTable::new();
    let dest = Destination::Queue(q.clone());
    let unbind = |f: &mut Fixture, source: &str, dest: &Destination<TestQueue>| {
        f.vhost
            .unbind(source, dest, &key("k"), &no_args)
            .map(|a| a.changes)
    };
    assert_eq!(unbind(&mut f, "x", &dest), Ok(vec![]));
    assert_eq!(unbind(&mut f, "missing", &dest), Ok(vec![]));
    assert_eq!(unbind(&mut f, "x", &to_exchange("missing")), Ok(vec![]));
    assert_eq!(
        unbind(&mut f, "", &dest).unwrap_err().reply_code(),
        ReplyCode::AccessRefused
    );
    assert_eq!(
        unbind(&mut f, "x", &to_exchange("")).unwrap_err().reply_code(),
        ReplyCode::AccessRefused
    );
    f.bind_queue("x", &q, "k");
    let _ = f.vhost.forget_queue(&q);
    assert_eq!(unbind(&mut f, "x", &dest), Ok(vec![]));
}

#[test]
fn unbinding_an_exchange_binding_persists_its_deletion() {
    let mut f = durable_vhost();
    f.exchange("x", "direct");
    f.exchange("y", "direct");
    f.bind_exchange("x", "y", "k");
    let applied = f
        .vhost
        .unbind("x", &to_exchange("y"), &key("k"), &FieldTable::new())
        .unwrap();
    assert_eq!(
        applied.changes,
        vec![DefinitionChange::DeleteBinding(stored_binding("x", exchange_end("y"), "k"))]
    );
    assert!(!f.vhost.exchange("x").unwrap().has_bindings());
}

#[test]
fn a_failed_persist_leaves_the_published_state_as_it_was() {
    let mut f = durable_vhost();
    f.exchange("x", "direct");
    let q = f.queue("q");
    let published = f.vhost.clone();
    let mut next = published.clone();
    let applied = next
        .bind("x", Destination::Queue(q), &key("k"), &FieldTable::new())
        .unwrap();
    assert_eq!(applied.changes.len(), 1);
    drop(next);
    assert!(!published.exchange("x").unwrap().has_bindings());
}
