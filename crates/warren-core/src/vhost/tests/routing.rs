//! Routing through the vhost: exchange-to-exchange bindings and their cycle rules, alternate
//! exchanges, the default exchange, admission, and what may be cached.

use super::*;

#[test]
fn default_exchange_routes_to_the_queue_named_by_the_routing_key() {
    let mut f = durable_vhost();
    f.queue("orders");
    assert_eq!(f.route("", "orders"), names(&["orders"]));
    assert!(f.route("", "nope").is_empty());
}

#[test]
fn exchange_to_exchange_binding_routes_through_the_destination_bindings() {
    let mut f = durable_vhost();
    f.exchange("a", "direct");
    f.exchange("b", "fanout");
    let qa = f.queue("qa");
    let qb = f.queue("qb");
    f.bind_queue("a", &qa, "k");
    f.bind_exchange("a", "b", "k");
    f.bind_queue("b", &qb, "");
    assert_eq!(f.route("a", "k"), names(&["qa", "qb"]));
    assert!(f.route("a", "other").is_empty());
}

#[test]
fn cycle_between_two_exchanges_delivers_each_queue_once() {
    let mut f = durable_vhost();
    f.exchange("a", "fanout");
    f.exchange("b", "fanout");
    let qa = f.queue("qa");
    let qb = f.queue("qb");
    f.bind_exchange("a", "b", "");
    f.bind_exchange("b", "a", "");
    f.bind_queue("a", &qa, "");
    f.bind_queue("b", &qb, "");
    assert_eq!(f.route_message("a", &message("k")).0.len(), 2);
    assert_eq!(f.route("a", "k"), names(&["qa", "qb"]));
    assert_eq!(f.route("b", "k"), names(&["qa", "qb"]));
}

#[test]
fn exchange_bound_to_itself_routes_once() {
    let mut f = durable_vhost();
    f.exchange("a", "fanout");
    let q = f.queue("q");
    f.bind_exchange("a", "a", "");
    f.bind_queue("a", &q, "");
    assert_eq!(f.route_message("a", &message("k")).0, names(&["q"]));
}

#[test]
fn long_chain_is_cut_at_the_routing_depth() {
    let mut f = durable_vhost();
    let hops = MAX_ROUTING_DEPTH + 5;
    for i in 0..=hops {
        f.exchange(&format!("x{i}"), "fanout");
    }
    for i in 0..hops {
        f.bind_exchange(&format!("x{i}"), &format!("x{}", i + 1), "");
    }
    let reachable = f.queue("reachable");
    let too_far = f.queue("too-far");
    f.bind_queue(&format!("x{MAX_ROUTING_DEPTH}"), &reachable, "");
    f.bind_queue(&format!("x{}", MAX_ROUTING_DEPTH + 1), &too_far, "");
    assert_eq!(f.route("x0", "k"), names(&["reachable"]));
}

#[test]
fn diamond_enters_the_shared_exchange_once() {
    let mut f = durable_vhost();
    for x in ["top", "left", "right", "bottom"] {
        f.exchange(x, "fanout");
    }
    let q = f.queue("q");
    f.bind_exchange("top", "left", "");
    f.bind_exchange("top", "right", "");
    f.bind_exchange("left", "bottom", "");
    f.bind_exchange("right", "bottom", "");
    f.bind_queue("bottom", &q, "");
    assert_eq!(f.route_message("top", &message("k")).0, names(&["q"]));
}

fn with_argument_alternate(name: &str, kind: &str, ae: &str) -> ExchangeMeta {
    ExchangeMeta {
        arguments: args(&[("alternate-exchange", FieldValue::string(ae))]),
        ..exchange_meta(name, kind)
    }
}

#[test]
fn alternate_exchange_takes_only_what_routed_nowhere() {
    let mut f = durable_vhost();
    f.declare_exchange(with_argument_alternate("main", "direct", "ae")).unwrap();
    f.exchange("ae", "fanout");
    let routed = f.queue("routed");
    let unroutable = f.queue("unroutable");
    f.bind_queue("main", &routed, "k");
    f.bind_queue("ae", &unroutable, "");
    assert_eq!(f.route("main", "k"), names(&["routed"]));
    assert_eq!(f.route("main", "other"), names(&["unroutable"]));
}

#[test]
fn alternate_exchange_argument_wins_over_the_policy() {
    let mut f = durable_vhost();
    f.declare_exchange(with_argument_alternate("main", "direct", "by-argument")).unwrap();
    f.exchange("by-argument", "fanout");
    f.exchange("by-policy", "fanout");
    let qa = f.queue("qa");
    let qp = f.queue("qp");
    f.bind_queue("by-argument", &qa, "");
    f.bind_queue("by-policy", &qp, "");
    f.set_policy("ae", "^main$", serde_json::json!({"alternate-exchange": "by-policy"}));
    assert_eq!(f.route("main", "k"), names(&["qa"]));
}

#[test]
fn policy_alternate_exchange_applies_to_existing_and_later_exchanges_and_clears() {
    let mut f = durable_vhost();
    f.exchange("ae", "fanout");
    let q = f.queue("q");
    f.bind_queue("ae", &q, "");
    f.exchange("before", "direct");
    f.set_policy("ae", "^(before|after)$", serde_json::json!({"alternate-exchange": "ae"}));
    f.exchange("after", "direct");
    assert_eq!(f.route("before", "k"), names(&["q"]));
    assert_eq!(f.route("after", "k"), names(&["q"]));
    f.policies.remove("ae");
    f.vhost.apply_policies(&f.policies);
    assert!(f.route("before", "k").is_empty());
}

#[test]
fn alternate_of_an_alternate_is_followed() {
    let mut f = durable_vhost();
    f.declare_exchange(with_argument_alternate("main", "direct", "ae1")).unwrap();
    f.declare_exchange(with_argument_alternate("ae1", "direct", "ae2")).unwrap();
    f.exchange("ae2", "fanout");
    let q = f.queue("q");
    f.bind_queue("ae2", &q, "");
    assert_eq!(f.route("main", "k"), names(&["q"]));
}

#[test]
fn alternate_exchange_cycle_ends_with_nothing_routed() {
    let mut f = durable_vhost();
    f.declare_exchange(with_argument_alternate("a", "direct", "b")).unwrap();
    f.declare_exchange(with_argument_alternate("b", "direct", "a")).unwrap();
    f.declare_exchange(with_argument_alternate("self", "direct", "self")).unwrap();
    assert!(f.route("a", "k").is_empty());
    assert!(f.route("self", "k").is_empty());
}

#[test]
fn routing_through_an_exchange_binding_counts_as_routed_for_the_alternate() {
    let mut f = durable_vhost();
    f.declare_exchange(with_argument_alternate("main", "direct", "ae")).unwrap();
    f.exchange("ae", "fanout");
    f.exchange("next", "fanout");
    let via_binding = f.queue("via-binding");
    let unroutable = f.queue("unroutable");
    f.bind_exchange("main", "next", "k");
    f.bind_queue("next", &via_binding, "");
    f.bind_queue("ae", &unroutable, "");
    assert_eq!(f.route("main", "k"), names(&["via-binding"]));
    // An exchange binding that leads nowhere is not routed: the alternate takes it.
    let _ = f
        .vhost
        .unbind("next", &Destination::Queue(via_binding), &key(""), &FieldTable::new())
        .unwrap();
    assert_eq!(f.route("main", "k"), names(&["unroutable"]));
}

#[test]
fn missing_alternate_exchange_routes_nowhere() {
    let mut f = durable_vhost();
    f.declare_exchange(with_argument_alternate("main", "direct", "gone")).unwrap();
    assert!(f.route("main", "k").is_empty());
}

#[test]
fn alternate_exchange_name_longer_than_a_short_string_routes_nowhere() {
    let mut f = durable_vhost();
    let long = "x".repeat(300);
    f.declare_exchange(with_argument_alternate("main", "direct", &long)).unwrap();
    assert!(f.route("main", "k").is_empty());
}

#[test]
fn each_queue_is_appended_once_after_what_the_output_held() {
    let mut f = durable_vhost();
    f.exchange("a", "fanout");
    f.exchange("b", "fanout");
    let q = f.queue("q");
    let other = f.queue("other");
    f.bind_queue("a", &q, "");
    f.bind_exchange("a", "b", "");
    f.bind_queue("b", &q, "");
    f.bind_queue("b", &other, "");
    let mut out = vec![q.clone()];
    f.vhost
        .route(f.vhost.exchange("a").unwrap(), &message("k"), admit, &mut out);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], q);
    let mut tail: Vec<_> = out[1..].iter().map(|q| q.name.to_string()).collect();
    tail.sort();
    assert_eq!(tail, names(&["other", "q"]));
}

#[test]
fn result_is_cacheable_unless_a_headers_delayed_or_dedup_exchange_took_part() {
    let mut f = durable_vhost();
    f.exchange("direct", "direct");
    f.exchange("headers", "headers");
    let q = f.queue("q");
    f.bind_queue("direct", &q, "k");
    assert!(f.route_message("direct", &message("k")).1);
    assert!(f.route_message("", &message("q")).1);
    f.bind_exchange("direct", "headers", "k");
    assert!(!f.route_message("direct", &message("k")).1);
    assert!(f.route_message("direct", &message("other")).1);
}

fn delayed_meta(name: &str) -> ExchangeMeta {
    ExchangeMeta {
        arguments: args(&[("x-delayed-type", FieldValue::string("direct"))]),
        ..exchange_meta(name, "x-delayed-message")
    }
}

#[test]
fn held_message_goes_to_the_store_and_skips_the_alternate() {
    let mut f = durable_vhost();
    let store = f.new_handle("delayed");
    let meta = ExchangeMeta {
        arguments: args(&[
            ("x-delayed-type", FieldValue::string("direct")),
            ("alternate-exchange", FieldValue::string("ae")),
        ]),
        ..delayed_meta("delayed")
    };
    let state = TestState {
        delay_store: Some(store),
        drop_all: false,
    };
    f.declare_exchange_with(meta, state).unwrap();
    f.exchange("ae", "fanout");
    let unroutable = f.queue("unroutable");
    f.bind_queue("ae", &unroutable, "");
    let (reached, cacheable) = f.route_message("delayed", &message("k"));
    assert_eq!(reached, names(&["delayed"]));
    assert!(!cacheable);
}

#[test]
fn dropped_duplicate_matches_no_binding_but_reaches_the_alternate() {
    let mut f = durable_vhost();
    let meta = ExchangeMeta {
        arguments: args(&[
            ("x-cache-size", FieldValue::I32(10)),
            ("alternate-exchange", FieldValue::string("ae")),
        ]),
        ..exchange_meta("dedup", "x-message-deduplication")
    };
    let state = TestState {
        delay_store: None,
        drop_all: true,
    };
    f.declare_exchange_with(meta, state).unwrap();
    f.exchange("ae", "fanout");
    let bound = f.queue("bound");
    let unroutable = f.queue("unroutable");
    f.bind_queue("dedup", &bound, "");
    f.bind_queue("ae", &unroutable, "");
    let (reached, cacheable) = f.route_message("dedup", &message("k"));
    assert_eq!(reached, names(&["unroutable"]));
    assert!(!cacheable);
}

#[test]
fn plain_exchanges_are_never_asked_for_admission() {
    let mut f = durable_vhost();
    f.exchange("x", "fanout");
    let q = f.queue("q");
    f.bind_queue("x", &q, "");
    let mut out = Vec::new();
    let ex = f.vhost.exchange("x").unwrap();
    f.vhost.route(
        ex,
        &message("k"),
        |_, _| -> Admission<TestQueue> { panic!("a fanout exchange admits everything") },
        &mut out,
    );
    assert_eq!(out, vec![q]);
}

#[test]
fn headers_exchange_in_a_chain_matches_on_the_message_headers() {
    let mut f = durable_vhost();
    f.exchange("in", "fanout");
    f.exchange("h", "headers");
    let q = f.queue("pdf");
    f.bind_exchange("in", "h", "");
    let _ = f
        .vhost
        .bind(
            "h",
            Destination::Queue(q),
            &key(""),
            &args(&[("format", FieldValue::string("pdf"))]),
        )
        .unwrap();
    let pdf = message_with("k", Some(args(&[("format", FieldValue::string("pdf"))])));
    let zip = message_with("k", Some(args(&[("format", FieldValue::string("zip"))])));
    assert_eq!(f.route_message("in", &pdf).0, names(&["pdf"]));
    assert!(f.route_message("in", &zip).0.is_empty());
}

#[test]
fn a_published_state_is_unaffected_by_later_changes() {
    let mut f = durable_vhost();
    f.exchange("x", "fanout");
    let q = f.queue("q");
    f.bind_queue("x", &q, "");
    let published = f.vhost.clone();
    let _ = f.vhost.forget_queue(&q);
    f.exchange("y", "fanout");
    let mut out = Vec::new();
    published.route(published.exchange("x").unwrap(), &message("k"), admit, &mut out);
    assert_eq!(out, vec![q]);
    assert!(published.exchange("y").is_none());
    assert!(f.route("x", "k").is_empty());
}
