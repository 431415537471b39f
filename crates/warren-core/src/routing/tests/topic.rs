//! Topic edge cases; every expectation here agrees with RabbitMQ 3.10.

use super::*;

fn matches(pattern: &str, routing_key: &str) -> bool {
    let router = router_with(ExchangeKind::Topic, &[(pattern, "q")]);
    !route(&router, routing_key, None).is_empty()
}

fn assert_matches(pattern: &str, yes: &[&str], no: &[&str]) {
    for k in yes {
        assert!(matches(pattern, k), "{pattern:?} should match {k:?}");
    }
    for k in no {
        assert!(!matches(pattern, k), "{pattern:?} should not match {k:?}");
    }
}

#[test]
fn literal_pattern_matches_only_the_same_key() {
    assert_matches("a.b", &["a.b"], &["a", "a.b.c", "a.bb", "b.a", ""]);
}

#[test]
fn empty_routing_key_has_no_words() {
    assert_matches("", &[""], &["a", ".", " "]);
    assert_matches("#", &[""], &[]);
    assert_matches("#.#", &[""], &[]);
    assert_matches("*", &[], &[""]);
    assert_matches("#.*", &[], &[""]);
    assert_matches(".", &[], &[""]);
}

#[test]
fn hash_alone_matches_every_key_including_the_empty_one() {
    assert_matches("#", &["", "a", ".", "..", "a.b.c", "a..b", "*", "#"], &[]);
}

#[test]
fn star_matches_exactly_one_possibly_empty_word() {
    assert_matches("*", &["a", "*", "#", "abc"], &["", ".", "a.b", "a.", ".a"]);
    assert_matches("*.*", &[".", "a.b", "a.", ".a"], &["", "a", "a.b.c"]);
    assert_matches("*.*.*", &["..", "a.b.c", "a..b"], &[".", "a.b"]);
}

#[test]
fn empty_words_between_dots_are_words() {
    assert_matches("a..b", &["a..b"], &["a.b", "a...b"]);
    assert_matches("a.*.b", &["a..b", "a.x.b"], &["a.b", "a.x.y.b"]);
    assert_matches(".", &["."], &["", "..", "a"]);
    assert_matches("a.", &["a."], &["a", "a.b"]);
    assert_matches(".a", &[".a"], &["a", "b.a"]);
    assert_matches("a.*", &["a.", "a.b"], &["a", "a.b.c"]);
    assert_matches("*.a", &[".a", "b.a"], &["a"]);
    assert_matches("#.", &["a.", ".", "a.b."], &["a", ""]);
    assert_matches(".#", &[".a", ".", "..", ".a.b"], &["a", ""]);
}

#[test]
fn hash_matches_zero_or_more_words_anywhere() {
    assert_matches("a.#", &["a", "a.b", "a.b.c", "a."], &["b", "", "b.a"]);
    assert_matches("#.a", &["a", "b.a", "x.y.a", ".a"], &["a.b", ""]);
    assert_matches(
        "a.#.b",
        &["a.b", "a.x.b", "a.x.y.b", "a..b"],
        &["a", "b", "a.b.c", "ab"],
    );
    assert_matches("#.b.#", &["b", "a.b", "b.c", "x.b.y"], &["a", "", "bb"]);
}

#[test]
fn repeated_hash_matches_like_a_single_hash() {
    for key in ["", "a", "a.b", "x.y.a", ".", "a.a.a.a"] {
        assert_eq!(matches("#.#", key), matches("#", key), "{key:?}");
        assert_eq!(matches("#.#.a", key), matches("#.a", key), "{key:?}");
        assert_eq!(matches("a.#.#.b", key), matches("a.#.b", key), "{key:?}");
    }
}

#[test]
fn hash_next_to_star_needs_at_least_one_word() {
    assert_matches("#.*", &["a", "a.b", "."], &[""]);
    assert_matches("*.#", &["a", "a.b", "."], &[""]);
    assert_matches("#.*.#", &["a", "a.b.c"], &[""]);
    assert_matches("a.*.#", &["a.b", "a.b.c"], &["a", "b.c"]);
}

#[test]
fn wildcards_in_the_routing_key_are_literal_words() {
    assert_matches("a", &[], &["*", "#"]);
    assert_matches("*", &["*", "#"], &[]);
    assert_matches("a.*", &["a.*", "a.#"], &["a"]);
}

#[test]
fn destination_matched_by_several_patterns_is_routed_once() {
    let router = router_with(
        ExchangeKind::Topic,
        &[
            ("#", "q1"),
            ("a.#", "q1"),
            ("*.b", "q1"),
            ("a.b", "q1"),
            ("a.*", "q2"),
            ("#.b", "q2"),
            ("x", "q3"),
        ],
    );
    assert_eq!(route(&router, "a.b", None), vec!["q1", "q2"]);
    assert_eq!(route(&router, "x", None), vec!["q1", "q3"]);
}

#[test]
fn hash_and_hash_hash_are_separate_bindings_to_the_same_destination() {
    let mut router = router_with(ExchangeKind::Topic, &[("#", "q"), ("#.#", "q")]);
    assert_eq!(router.len(), 2);
    assert!(router.unbind(&key("#"), &no_args(), &"q"));
    assert_eq!(route(&router, "a.b", None), vec!["q"]);
    assert!(router.unbind(&key("#.#"), &no_args(), &"q"));
    assert!(route(&router, "a.b", None).is_empty());
}

#[test]
fn hash_patterns_stay_linear_on_long_keys_of_repeated_words() {
    // 128 words: exploring paths one by one would take on the order of 128^4 steps per
    // pattern; the live-set automaton takes a few per word.
    let long_key = vec!["a"; 128].join(".");
    let router = router_with(
        ExchangeKind::Topic,
        &[
            ("#.#.#.a", "q1"),
            ("#.a.#.a.#.a.#.a", "q2"),
            ("#.b", "q3"),
            ("*.#.*.#.*.#.a", "q4"),
        ],
    );
    assert_eq!(route(&router, &long_key, None), vec!["q1", "q2", "q4"]);
    let with_b = format!("{long_key}.b");
    assert_eq!(route(&router, &with_b, None), vec!["q3"]);
}

#[test]
fn unbinding_everything_prunes_the_trie_back_to_its_root() {
    let patterns: Vec<String> = (0..200)
        .map(|i| format!("r{}.*.#.e{}.{}", i % 7, i % 13, i))
        .collect();
    let mut router: Router<u32> = Router::new(ExchangeKind::Topic);
    for (i, p) in patterns.iter().enumerate() {
        router.bind(&key(p), &no_args(), i as u32 % 5);
    }
    for (i, p) in patterns.iter().enumerate() {
        assert!(router.unbind(&key(p), &no_args(), &(i as u32 % 5)));
    }
    assert!(router.is_empty());
    let super::super::Index::Topic(trie) = &router.index else {
        unreachable!()
    };
    assert_eq!(trie.live_nodes(), 1);
    assert!(route(&router, "r1.x.e1.1", None).is_empty());
}

#[test]
fn unbinding_one_pattern_keeps_its_siblings_routing() {
    let mut router = router_with(
        ExchangeKind::Topic,
        &[("a.b.c", "q1"), ("a.b", "q2"), ("a.b.*", "q3")],
    );
    assert!(router.unbind(&key("a.b.c"), &no_args(), &"q1"));
    assert_eq!(route(&router, "a.b", None), vec!["q2"]);
    assert_eq!(route(&router, "a.b.c", None), vec!["q3"]);
    assert!(!router.unbind(&key("a.b.c"), &no_args(), &"q1"));
    assert!(!router.unbind(&key("a.x"), &no_args(), &"q2"));
}
