//! Tests of the routing table: one file per exchange type, plus binding identity and a
//! property test of the topic trie against a plain reference matcher.
//!
//! Topic and headers cases marked "RabbitMQ 3.10" were run against a real broker (one queue
//! per binding, publish with confirms, count what arrived) and agree with it.

mod bindings;
mod direct_fanout;
mod headers;
mod topic;
mod topic_prop;

use super::{ExchangeKind, Router};
use warren_amqp::{FieldTable, FieldValue, ShortStr};

pub(super) fn key(s: &str) -> ShortStr {
    ShortStr::from(s)
}

pub(super) fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
    FieldTable(
        entries
            .iter()
            .map(|(k, v)| (ShortStr::from(*k), v.clone()))
            .collect(),
    )
}

pub(super) fn no_args() -> FieldTable {
    FieldTable::new()
}

/// Routes and returns the destinations sorted, for comparison.
pub(super) fn route<D: Clone + Eq + std::hash::Hash + Ord>(
    router: &Router<D>,
    routing_key: &str,
    headers: Option<&FieldTable>,
) -> Vec<D> {
    let mut out = Vec::new();
    router.route(routing_key, headers, &mut out);
    let mut sorted = out.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(out.len(), sorted.len(), "route yielded a destination twice");
    sorted
}

pub(super) fn router_with(
    kind: ExchangeKind,
    bindings: &[(&str, &'static str)],
) -> Router<&'static str> {
    let mut router = Router::new(kind);
    for (routing_key, dest) in bindings {
        assert!(router.bind(&key(routing_key), &no_args(), *dest));
    }
    router
}
