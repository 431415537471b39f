//! Exchange routing: the binding table of one exchange and the matching rules of the four
//! AMQP exchange types (direct, fanout, topic, headers), with RabbitMQ's semantics.
//!
//! This module owns which bindings exist and which destinations a message reaches. It does
//! not know what a destination is (the server plugs in its queue/exchange name type), does
//! not follow exchange-to-exchange hops, and never looks at a message body. Routing allocates
//! nothing but the caller's output vector (topic routing also reuses two per-thread scratch
//! vectors): the publish path calls it once per message.
//!
//! Binding identity is RabbitMQ's: (routing key, arguments, destination), where arguments are
//! compared after a stable sort by key (so their order does not matter) and value types count
//! (`signedint 1` and `long 1` are two bindings). Arguments are kept in that sorted form, which
//! is also how RabbitMQ lists them.

mod erlang_term;
mod headers;
pub(crate) mod pmap;
mod targets;
mod topic;

#[cfg(test)]
mod tests;

use headers::HeadersPattern;
use pmap::PMap;
use std::hash::Hash;
use std::sync::Arc;
use targets::Targets;
use topic::TopicTrie;
use warren_amqp::{FieldTable, FieldValue, ShortStr};

pub use headers::validate_binding_arguments;
pub(crate) use topic::dedup_tail;

/// The exchange types Warren implements (RabbitMQ's built-in four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    /// Parses the `type` field of `exchange.declare`; case-sensitive, as in RabbitMQ.
    pub fn parse(s: &str) -> Option<ExchangeKind> {
        match s {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// The routing table of one exchange: its bindings, plus an index built for its type so that
/// routing costs what the message needs (one hash lookup for direct, the key's words for
/// topic), not what the table holds.
///
/// Cloning is cheap and a change after a clone copies only what it touches (see `pmap.rs`):
/// the server clones the table into a new snapshot after each change, so a table of 100,000
/// bindings under churn must not be copied whole each time.
///
/// `D` is the destination (a queue or an exchange). It is `Ord` so that a topic route through
/// several patterns can drop repeats by sorting what it appended, without a scratch set.
#[derive(Clone)]
pub struct Router<D> {
    kind: ExchangeKind,
    /// Every binding: destination -> routing key -> the distinct argument tables bound under
    /// that pair. Source of truth for identity, listing and removal; fanout and headers
    /// exchanges route by walking it.
    by_dest: PMap<D, PMap<ShortStr, Arc<[BoundArguments]>>>,
    len: usize,
    index: Index<D>,
}

/// One binding's arguments, sorted by key; headers exchanges add the compiled pattern.
#[derive(Clone)]
struct BoundArguments {
    arguments: FieldTable,
    pattern: Option<HeadersPattern>,
}

/// The per-type routing index. Direct and topic ignore binding arguments when routing, so
/// they index (destination, routing key) pairs, not individual bindings. Fanout and headers
/// need no index: every destination is a candidate.
#[derive(Clone)]
enum Index<D> {
    Direct(PMap<ShortStr, Targets<D>>),
    Topic(TopicTrie<D>),
    None,
}

impl<D: Clone + Eq + Hash + Ord> Router<D> {
    pub fn new(kind: ExchangeKind) -> Self {
        let index = match kind {
            ExchangeKind::Direct => Index::Direct(PMap::new()),
            ExchangeKind::Topic => Index::Topic(TopicTrie::new()),
            ExchangeKind::Fanout | ExchangeKind::Headers => Index::None,
        };
        Router {
            kind,
            by_dest: PMap::new(),
            len: 0,
            index,
        }
    }

    pub fn kind(&self) -> ExchangeKind {
        self.kind
    }

    /// Adds a binding; false if an identical binding (same routing key, same arguments, same
    /// destination) exists — RabbitMQ treats that as a no-op success.
    ///
    /// Does not validate: call [`validate_binding_arguments`] first to refuse what RabbitMQ
    /// refuses. An unvalidated bad `x-match` behaves as `all`, as in RabbitMQ.
    pub fn bind(&mut self, routing_key: &ShortStr, arguments: &FieldTable, dest: D) -> bool {
        let arguments = sorted(arguments);
        let existing = self
            .by_dest
            .get(&dest)
            .and_then(|keys| keys.get(routing_key.as_str()));
        if existing.is_some_and(|bound| {
            bound
                .iter()
                .any(|b| identical_tables(&b.arguments, &arguments))
        }) {
            return false;
        }
        let first_for_pair = existing.is_none();
        let pattern = match self.kind {
            ExchangeKind::Headers => Some(HeadersPattern::compile(&arguments)),
            _ => None,
        };
        let new = BoundArguments { arguments, pattern };
        let bound: Arc<[BoundArguments]> = existing
            .into_iter()
            .flat_map(|b| b.iter().cloned())
            .chain([new])
            .collect();
        self.by_dest
            .get_or_insert_with(dest.clone(), PMap::new)
            .insert(routing_key.clone(), bound);
        self.len += 1;
        if first_for_pair {
            self.index_add(routing_key, dest);
        }
        true
    }

    /// Removes that binding; false if it did not exist (RabbitMQ: unbinding a missing binding
    /// is ok).
    pub fn unbind(&mut self, routing_key: &ShortStr, arguments: &FieldTable, dest: &D) -> bool {
        let arguments = sorted(arguments);
        let Some(bound) = self
            .by_dest
            .get(dest)
            .and_then(|keys| keys.get(routing_key.as_str()))
        else {
            return false;
        };
        let Some(pos) = bound
            .iter()
            .position(|b| identical_tables(&b.arguments, &arguments))
        else {
            return false;
        };
        let rest: Arc<[BoundArguments]> = bound
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != pos)
            .map(|(_, b)| b.clone())
            .collect();
        self.len -= 1;
        let Some(keys) = self.by_dest.get_mut(dest) else {
            return true;
        };
        if !rest.is_empty() {
            keys.insert(routing_key.clone(), rest);
            return true;
        }
        keys.remove(routing_key.as_str());
        if keys.is_empty() {
            self.by_dest.remove(dest);
        }
        self.index_remove(routing_key, dest);
        true
    }

    /// Removes every binding to `dest` (its queue/exchange was deleted); returns how many.
    pub fn remove_destination(&mut self, dest: &D) -> usize {
        let Some(keys) = self.by_dest.remove(dest) else {
            return 0;
        };
        let mut removed = 0;
        for (routing_key, bound) in keys.iter() {
            removed += bound.len();
            self.index_remove(routing_key, dest);
        }
        self.len -= removed;
        removed
    }

    /// Appends each matching destination once (no duplicates even if several bindings
    /// match) to `out`, in no particular order. `headers` is the message's `headers` property
    /// (`None` counts as an empty table); only headers exchanges read it, and they ignore
    /// `routing_key`.
    ///
    /// Allocates nothing beyond growing `out`; destinations already in `out` before the call
    /// are left alone and not considered for de-duplication.
    /// Appends each destination `routing_key` and `headers` reach, once, in the caller's
    /// destination type (`T` = `D`, or something a `D` converts into).
    pub fn route<T: From<D> + Ord>(
        &self,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Vec<T>,
    ) {
        match &self.index {
            Index::Direct(by_key) => {
                if let Some(targets) = by_key.get(routing_key) {
                    targets.for_each(|dest| out.push(dest.clone().into()));
                }
            }
            Index::Topic(trie) => trie.route(routing_key, out),
            Index::None if self.kind == ExchangeKind::Headers => {
                let headers = headers.map_or(&[][..], |h| &h.0[..]);
                self.by_dest.for_each(|dest, keys| {
                    let matched = keys.any(|_, bound| {
                        bound
                            .iter()
                            .any(|b| b.pattern.as_ref().is_some_and(|p| p.matches(headers)))
                    });
                    if matched {
                        out.push(dest.clone().into());
                    }
                });
            }
            Index::None => self.by_dest.for_each(|dest, _| out.push(dest.clone().into())),
        }
    }

    /// The number of bindings.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any binding leads to `dest`.
    pub fn has_destination(&self, dest: &D) -> bool {
        self.by_dest.contains_key(dest)
    }

    /// Every binding as (routing key, arguments sorted by key, destination), grouped by
    /// destination, in no particular order; for listing and persistence.
    pub fn bindings(&self) -> impl Iterator<Item = (&ShortStr, &FieldTable, &D)> {
        self.by_dest.iter().flat_map(|(dest, keys)| {
            keys.iter()
                .flat_map(move |(key, bound)| bound.iter().map(move |b| (key, &b.arguments, dest)))
        })
    }

    fn index_add(&mut self, routing_key: &ShortStr, dest: D) {
        match &mut self.index {
            Index::Direct(by_key) => by_key
                .get_or_insert_with(routing_key.clone(), || Targets::Empty)
                .add(dest),
            Index::Topic(trie) => trie.insert(routing_key, dest),
            Index::None => {}
        }
    }

    fn index_remove(&mut self, routing_key: &ShortStr, dest: &D) {
        match &mut self.index {
            Index::Direct(by_key) => {
                if let Some(targets) = by_key.get_mut(routing_key.as_str()) {
                    targets.remove(dest);
                    if targets.is_empty() {
                        by_key.remove(routing_key.as_str());
                    }
                }
            }
            Index::Topic(trie) => trie.remove(routing_key, dest),
            Index::None => {}
        }
    }
}

impl<D> std::fmt::Debug for Router<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("kind", &self.kind)
            .field("bindings", &self.len)
            .finish()
    }
}

/// RabbitMQ stores binding arguments sorted by key (a stable sort, so repeated keys keep their
/// order) and compares bindings in that form.
fn sorted(arguments: &FieldTable) -> FieldTable {
    let mut table = arguments.clone();
    table.0.sort_by(|a, b| a.0.cmp(&b.0));
    table
}

/// Exact equality of two argument tables, as RabbitMQ compares stored bindings (Erlang term
/// equality): same keys in the same order, same value types, same values. Floats compare by
/// bits so that a table always equals itself (a NaN argument can still be unbound).
fn identical_tables(a: &FieldTable, b: &FieldTable) -> bool {
    a.0.len() == b.0.len()
        && a.0
            .iter()
            .zip(&b.0)
            .all(|((ka, va), (kb, vb))| ka == kb && identical_values(va, vb))
}

fn identical_values(a: &FieldValue, b: &FieldValue) -> bool {
    match (a, b) {
        (FieldValue::F32(x), FieldValue::F32(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::F64(x), FieldValue::F64(y)) => x.to_bits() == y.to_bits(),
        (FieldValue::Array(x), FieldValue::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| identical_values(x, y))
        }
        (FieldValue::Table(x), FieldValue::Table(y)) => identical_tables(x, y),
        _ => a == b,
    }
}
