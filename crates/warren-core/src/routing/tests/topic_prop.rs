//! The topic trie against a plain recursive matcher, on random patterns and keys over a tiny
//! alphabet (so that empty words, `*`, `#` and repeats collide often).

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Words as RabbitMQ splits them: none for the empty key.
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

/// The reference: `#` tries every split, `*` takes one word, anything else one equal word.
fn reference_matches(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| reference_matches(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && reference_matches(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && reference_matches(rest, &key[1..]),
    }
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "", "*", "#"]), 0..5)
        .prop_map(|w| w.join("."))
}

fn key_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "", "*", "#"]), 0..6)
        .prop_map(|w| w.join("."))
}

fn expected(bound: &BTreeSet<(String, u32)>, routing_key: &str) -> Vec<u32> {
    let key_words = words(routing_key);
    let dests: BTreeSet<u32> = bound
        .iter()
        .filter(|(pattern, _)| reference_matches(&words(pattern), &key_words))
        .map(|(_, dest)| *dest)
        .collect();
    dests.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn topic_trie_routes_like_the_reference_matcher(
        patterns in prop::collection::vec((pattern_strategy(), 0u32..6), 0..24),
        keys in prop::collection::vec(key_strategy(), 1..16),
    ) {
        let mut router = Router::new(ExchangeKind::Topic);
        let mut bound = BTreeSet::new();
        for (pattern, dest) in &patterns {
            prop_assert_eq!(router.bind(&key(pattern), &no_args(), *dest), bound.insert((pattern.clone(), *dest)));
        }
        for routing_key in &keys {
            prop_assert_eq!(route(&router, routing_key, None), expected(&bound, routing_key), "key {:?}", routing_key);
        }
    }

    #[test]
    fn topic_trie_stays_consistent_through_binds_and_unbinds(
        ops in prop::collection::vec((any::<bool>(), pattern_strategy(), 0u32..4), 0..64),
        keys in prop::collection::vec(key_strategy(), 1..16),
    ) {
        let mut router = Router::new(ExchangeKind::Topic);
        let mut bound = BTreeSet::new();
        for (is_bind, pattern, dest) in &ops {
            let entry = (pattern.clone(), *dest);
            if *is_bind {
                prop_assert_eq!(router.bind(&key(pattern), &no_args(), *dest), bound.insert(entry));
            } else {
                prop_assert_eq!(router.unbind(&key(pattern), &no_args(), dest), bound.remove(&entry));
            }
        }
        prop_assert_eq!(router.len(), bound.len());
        for routing_key in &keys {
            prop_assert_eq!(route(&router, routing_key, None), expected(&bound, routing_key), "key {:?}", routing_key);
        }
    }
}
