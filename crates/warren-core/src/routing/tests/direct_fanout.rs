use super::*;

#[test]
fn direct_routes_on_exact_routing_key_equality() {
    let router = router_with(
        ExchangeKind::Direct,
        &[("a", "q1"), ("a.b", "q2"), ("A", "q3"), ("", "q4")],
    );
    assert_eq!(route(&router, "a", None), vec!["q1"]);
    assert_eq!(route(&router, "a.b", None), vec!["q2"]);
    assert_eq!(route(&router, "A", None), vec!["q3"]);
    assert_eq!(route(&router, "", None), vec!["q4"]);
    assert!(route(&router, "a ", None).is_empty());
    assert!(route(&router, "*", None).is_empty());
}

#[test]
fn direct_does_not_treat_wildcards_specially() {
    let router = router_with(ExchangeKind::Direct, &[("#", "q1"), ("*", "q2")]);
    assert!(route(&router, "a", None).is_empty());
    assert_eq!(route(&router, "#", None), vec!["q1"]);
}

#[test]
fn direct_yields_a_destination_once_when_bound_twice_with_different_arguments() {
    let mut router = Router::new(ExchangeKind::Direct);
    assert!(router.bind(&key("k"), &no_args(), "q"));
    assert!(router.bind(&key("k"), &table(&[("a", FieldValue::I32(1))]), "q"));
    assert_eq!(router.len(), 2);
    assert_eq!(route(&router, "k", None), vec!["q"]);
}

#[test]
fn direct_keeps_routing_while_another_binding_of_the_pair_remains() {
    let mut router = Router::new(ExchangeKind::Direct);
    let args = table(&[("a", FieldValue::I32(1))]);
    router.bind(&key("k"), &no_args(), "q");
    router.bind(&key("k"), &args, "q");
    assert!(router.unbind(&key("k"), &no_args(), &"q"));
    assert_eq!(route(&router, "k", None), vec!["q"]);
    assert!(router.unbind(&key("k"), &args, &"q"));
    assert!(route(&router, "k", None).is_empty());
}

#[test]
fn direct_ignores_message_headers() {
    let router = router_with(ExchangeKind::Direct, &[("k", "q")]);
    let headers = table(&[("k", FieldValue::string("x"))]);
    assert_eq!(route(&router, "k", Some(&headers)), vec!["q"]);
    assert!(route(&router, "other", Some(&headers)).is_empty());
}

#[test]
fn fanout_routes_to_every_destination_whatever_the_key() {
    let router = router_with(
        ExchangeKind::Fanout,
        &[("", "q1"), ("ignored", "q2"), ("other", "q2")],
    );
    assert_eq!(route(&router, "", None), vec!["q1", "q2"]);
    assert_eq!(route(&router, "anything.at.all", None), vec!["q1", "q2"]);
}

#[test]
fn fanout_stops_routing_to_a_destination_once_its_last_binding_is_gone() {
    let mut router = router_with(
        ExchangeKind::Fanout,
        &[("a", "q1"), ("b", "q1"), ("c", "q2")],
    );
    router.unbind(&key("a"), &no_args(), &"q1");
    assert_eq!(route(&router, "x", None), vec!["q1", "q2"]);
    router.unbind(&key("b"), &no_args(), &"q1");
    assert_eq!(route(&router, "x", None), vec!["q2"]);
}

#[test]
fn route_appends_after_what_the_caller_left_in_the_vector() {
    let router = router_with(ExchangeKind::Fanout, &[("", "q1")]);
    let mut out = vec!["q1", "earlier"];
    router.route("x", None, &mut out);
    assert_eq!(out, vec!["q1", "earlier", "q1"]);
}

#[test]
fn exchange_kind_parses_rabbitmq_type_names_case_sensitively() {
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ] {
        assert_eq!(ExchangeKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(ExchangeKind::parse("Direct"), None);
    assert_eq!(ExchangeKind::parse("x-delayed-message"), None);
    assert_eq!(ExchangeKind::parse(""), None);
}
