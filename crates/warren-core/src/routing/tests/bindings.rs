//! Binding identity and bookkeeping, common to all exchange types.

use super::*;

fn args_ab() -> FieldTable {
    table(&[("a", FieldValue::I32(1)), ("b", FieldValue::I32(2))])
}

fn args_ba() -> FieldTable {
    table(&[("b", FieldValue::I32(2)), ("a", FieldValue::I32(1))])
}

#[test]
fn binding_twice_is_a_no_op() {
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ] {
        let mut router = Router::new(kind);
        assert!(router.bind(&key("k"), &args_ab(), "q"));
        assert!(!router.bind(&key("k"), &args_ab(), "q"), "{kind:?}");
        assert_eq!(router.len(), 1);
    }
}

#[test]
fn argument_order_does_not_make_a_new_binding() {
    // RabbitMQ 3.10 lists one binding after binding {a,b} and {b,a}.
    let mut router = Router::new(ExchangeKind::Topic);
    assert!(router.bind(&key("k"), &args_ab(), "q"));
    assert!(!router.bind(&key("k"), &args_ba(), "q"));
    assert!(router.unbind(&key("k"), &args_ba(), &"q"));
    assert!(router.is_empty());
}

#[test]
fn argument_value_types_make_distinct_bindings() {
    // RabbitMQ 3.10 keeps `signedint 1`, `long 1` and `double 1.0` as three bindings.
    let mut router = Router::new(ExchangeKind::Topic);
    assert!(router.bind(&key("k"), &table(&[("a", FieldValue::I32(1))]), "q"));
    assert!(router.bind(&key("k"), &table(&[("a", FieldValue::I64(1))]), "q"));
    assert!(router.bind(&key("k"), &table(&[("a", FieldValue::F64(1.0))]), "q"));
    assert_eq!(router.len(), 3);
    assert!(router.unbind(&key("k"), &table(&[("a", FieldValue::I64(1))]), &"q"));
    let left: Vec<_> = router
        .bindings()
        .map(|(_, args, _)| args.get("a").cloned())
        .collect();
    assert_eq!(
        left,
        vec![Some(FieldValue::I32(1)), Some(FieldValue::F64(1.0))]
    );
}

#[test]
fn routing_key_and_destination_are_part_of_identity() {
    let mut router = Router::new(ExchangeKind::Headers);
    assert!(router.bind(&key("k1"), &no_args(), "q1"));
    assert!(router.bind(&key("k2"), &no_args(), "q1"));
    assert!(router.bind(&key("k1"), &no_args(), "q2"));
    assert_eq!(router.len(), 3);
}

#[test]
fn nan_argument_can_be_unbound() {
    let nan = table(&[("a", FieldValue::F64(f64::NAN))]);
    let mut router = Router::new(ExchangeKind::Direct);
    assert!(router.bind(&key("k"), &nan, "q"));
    assert!(!router.bind(&key("k"), &nan, "q"));
    assert!(router.unbind(&key("k"), &nan, &"q"));
}

#[test]
fn unbinding_a_missing_binding_reports_false_and_changes_nothing() {
    let mut router = router_with(ExchangeKind::Direct, &[("k", "q")]);
    assert!(!router.unbind(&key("k"), &args_ab(), &"q"));
    assert!(!router.unbind(&key("other"), &no_args(), &"q"));
    assert!(!router.unbind(&key("k"), &no_args(), &"q2"));
    assert_eq!(router.len(), 1);
    assert_eq!(route(&router, "k", None), vec!["q"]);
}

#[test]
fn remove_destination_drops_all_its_bindings_and_counts_them() {
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ] {
        let mut router = Router::new(kind);
        router.bind(&key("a"), &no_args(), "q1");
        router.bind(&key("a"), &args_ab(), "q1");
        router.bind(&key("#"), &no_args(), "q1");
        router.bind(&key("a"), &no_args(), "q2");
        assert_eq!(router.remove_destination(&"q1"), 3, "{kind:?}");
        assert_eq!(router.remove_destination(&"q1"), 0);
        assert!(!router.has_destination(&"q1"));
        assert!(router.has_destination(&"q2"));
        assert_eq!(router.len(), 1);
        assert_eq!(route(&router, "a", None), vec!["q2"], "{kind:?}");
    }
}

#[test]
fn has_destination_does_not_see_a_neighbouring_destination() {
    let router = router_with(ExchangeKind::Direct, &[("k", "q1"), ("k", "q3")]);
    assert!(router.has_destination(&"q1"));
    assert!(!router.has_destination(&"q2"));
    assert!(router.has_destination(&"q3"));
    assert!(!router.has_destination(&"q0"));
}

#[test]
fn bindings_lists_every_binding_with_sorted_arguments() {
    let mut router = Router::new(ExchangeKind::Direct);
    router.bind(&key("k"), &args_ba(), "q2");
    router.bind(&key("k"), &no_args(), "q1");
    router.bind(&key("j"), &no_args(), "q1");
    let mut listed: Vec<(String, Vec<String>, &str)> = router
        .bindings()
        .map(|(k, a, d)| {
            (
                k.to_string(),
                a.iter().map(|(k, _)| k.to_string()).collect(),
                *d,
            )
        })
        .collect();
    listed.sort();
    let expected = vec![
        ("j".to_string(), vec![], "q1"),
        ("k".to_string(), vec![], "q1"),
        (
            "k".to_string(),
            vec!["a".to_string(), "b".to_string()],
            "q2",
        ),
    ];
    assert_eq!(listed, expected);
}

#[test]
fn cloned_router_is_an_independent_snapshot() {
    let mut router = router_with(ExchangeKind::Topic, &[("a.*", "q1")]);
    let snapshot = router.clone();
    router.bind(&key("#"), &no_args(), "q2");
    router.unbind(&key("a.*"), &no_args(), &"q1");
    assert_eq!(route(&snapshot, "a.b", None), vec!["q1"]);
    assert_eq!(route(&router, "a.b", None), vec!["q2"]);
}

#[test]
fn snapshot_survives_heavy_churn_on_the_original() {
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ] {
        let mut router: Router<u32> = Router::new(kind);
        for i in 0..2000u32 {
            router.bind(&key(&format!("k.{}", i % 300)), &no_args(), i % 700);
        }
        let snapshot = router.clone();
        let before = route(&snapshot, "k.7", None);
        let listed_before = snapshot.bindings().count();
        for i in 0..700u32 {
            router.remove_destination(&i);
        }
        assert!(router.is_empty(), "{kind:?}");
        assert_eq!(route(&snapshot, "k.7", None), before, "{kind:?}");
        assert_eq!(snapshot.bindings().count(), listed_before);
        assert_eq!(snapshot.len(), 2000);
    }
}
