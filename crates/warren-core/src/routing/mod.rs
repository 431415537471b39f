//! Exchange routing: the binding table of one exchange and the matching rules of the four
//! AMQP exchange types (direct, fanout, topic, headers), with RabbitMQ's semantics.
//!
//! This module owns which bindings exist and which destinations a message reaches. It does
//! not know what a destination is (the server plugs in its queue/exchange name type), does
//! not follow exchange-to-exchange hops, and never looks at a message body. Routing allocates
//! nothing but the caller's output vector: the publish path calls it once per message.
//!
//! Binding identity is RabbitMQ's: (routing key, arguments, destination), where arguments are
//! compared after a stable sort by key (so their order does not matter) and value types count
//! (`signedint 1` and `long 1` are two bindings). Arguments are kept in that sorted form, which
//! is also how RabbitMQ lists them.

mod erlang_term;
mod headers;
mod topic;

#[cfg(test)]
mod tests;

use headers::HeadersPattern;
use std::collections::{BTreeMap, HashMap};
use topic::TopicTrie;
use warren_amqp::{FieldTable, FieldValue, ShortStr};

pub use headers::validate_binding_arguments;

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
/// `D` is the destination (a queue or an exchange); it must be `Ord` because destinations are
/// kept sorted, which is how routing yields each one once without a scratch set.
#[derive(Clone)]
pub struct Router<D> {
    kind: ExchangeKind,
    /// Every binding, grouped by (destination, routing key); the list holds the distinct
    /// argument tables bound under that pair. Source of truth for identity, listing and
    /// removal; headers exchanges also route by scanning it.
    bindings: BTreeMap<(D, ShortStr), Vec<BoundArguments>>,
    len: usize,
    index: Index<D>,
}

/// One binding's arguments, sorted by key; headers exchanges add the compiled pattern.
#[derive(Clone)]
struct BoundArguments {
    arguments: FieldTable,
    pattern: Option<HeadersPattern>,
}

/// The per-type routing index. Direct, fanout and topic ignore binding arguments when
/// routing, so they index (destination, routing key) pairs, not individual bindings.
#[derive(Clone)]
enum Index<D> {
    Direct(HashMap<ShortStr, Targets<D>>),
    Fanout(Targets<D>),
    Topic(TopicTrie<D>),
    /// Headers routing scans `Router::bindings` (as RabbitMQ does): every binding is a pattern.
    Headers,
}

/// The destinations reachable at one point of an index, each with the number of
/// (destination, routing key) pairs that put it there. Sorted and unique, so a route through
/// one point never yields a destination twice.
#[derive(Clone, Debug)]
pub(crate) struct Targets<D>(BTreeMap<D, u32>);

impl<D> Targets<D> {
    pub(crate) const fn new() -> Targets<D> {
        Targets(BTreeMap::new())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn dests(&self) -> impl Iterator<Item = &D> {
        self.0.keys()
    }
}

impl<D: Ord> Targets<D> {
    pub(crate) fn add(&mut self, dest: D) {
        *self.0.entry(dest).or_insert(0) += 1;
    }

    /// Returns false if `dest` was not there.
    pub(crate) fn remove(&mut self, dest: &D) -> bool {
        let Some(count) = self.0.get_mut(dest) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            self.0.remove(dest);
        }
        true
    }
}

impl<D: Clone + Eq + std::hash::Hash + Ord> Router<D> {
    pub fn new(kind: ExchangeKind) -> Self {
        let index = match kind {
            ExchangeKind::Direct => Index::Direct(HashMap::new()),
            ExchangeKind::Fanout => Index::Fanout(Targets::new()),
            ExchangeKind::Topic => Index::Topic(TopicTrie::new()),
            ExchangeKind::Headers => Index::Headers,
        };
        Router {
            kind,
            bindings: BTreeMap::new(),
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
        let slot = self
            .bindings
            .entry((dest.clone(), routing_key.clone()))
            .or_default();
        if slot
            .iter()
            .any(|b| identical_tables(&b.arguments, &arguments))
        {
            return false;
        }
        let first_for_pair = slot.is_empty();
        let pattern = match self.kind {
            ExchangeKind::Headers => Some(HeadersPattern::compile(&arguments)),
            _ => None,
        };
        slot.push(BoundArguments { arguments, pattern });
        self.len += 1;
        if first_for_pair {
            self.index_add(routing_key, dest);
        }
        true
    }

    /// Removes that binding; false if it did not exist (RabbitMQ: unbinding a missing binding
    /// is ok).
    pub fn unbind(&mut self, routing_key: &ShortStr, arguments: &FieldTable, dest: &D) -> bool {
        let pair = (dest.clone(), routing_key.clone());
        let Some(slot) = self.bindings.get_mut(&pair) else {
            return false;
        };
        let arguments = sorted(arguments);
        let Some(pos) = slot
            .iter()
            .position(|b| identical_tables(&b.arguments, &arguments))
        else {
            return false;
        };
        slot.remove(pos);
        self.len -= 1;
        if slot.is_empty() {
            self.bindings.remove(&pair);
            self.index_remove(routing_key, dest);
        }
        true
    }

    /// Removes every binding to `dest` (its queue/exchange was deleted); returns how many.
    pub fn remove_destination(&mut self, dest: &D) -> usize {
        let pairs: Vec<(D, ShortStr)> = self
            .bindings
            .range((dest.clone(), ShortStr::default())..)
            .take_while(|((d, _), _)| d == dest)
            .map(|(pair, _)| pair.clone())
            .collect();
        let mut removed = 0;
        for pair in pairs {
            if let Some(slot) = self.bindings.remove(&pair) {
                removed += slot.len();
                self.index_remove(&pair.1, dest);
            }
        }
        self.len -= removed;
        removed
    }

    /// Appends each matching destination once (no duplicates even if several bindings
    /// match) to `out`. `headers` is the message's `headers` property (`None` counts as an
    /// empty table); only headers exchanges read it, and they ignore `routing_key`.
    ///
    /// Allocates nothing beyond growing `out`; destinations already in `out` before the call
    /// are left alone and not considered for de-duplication.
    pub fn route(&self, routing_key: &str, headers: Option<&FieldTable>, out: &mut Vec<D>) {
        match &self.index {
            Index::Direct(by_key) => {
                if let Some(targets) = by_key.get(routing_key) {
                    out.extend(targets.dests().cloned());
                }
            }
            Index::Fanout(targets) => out.extend(targets.dests().cloned()),
            Index::Topic(trie) => trie.route(routing_key, out),
            Index::Headers => {
                let headers = headers.map_or(&[][..], |h| &h.0[..]);
                // `bindings` is sorted by destination, so one look at the last pushed
                // destination is enough to push each once.
                let start = out.len();
                for ((dest, _), bound) in &self.bindings {
                    if out.len() > start && out.last() == Some(dest) {
                        continue;
                    }
                    let matched = bound
                        .iter()
                        .any(|b| b.pattern.as_ref().is_some_and(|p| p.matches(headers)));
                    if matched {
                        out.push(dest.clone());
                    }
                }
            }
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
        self.bindings
            .range((dest.clone(), ShortStr::default())..)
            .next()
            .is_some_and(|((d, _), _)| d == dest)
    }

    /// Every binding as (routing key, arguments sorted by key, destination), ordered by
    /// destination then routing key; for listing and persistence.
    pub fn bindings(&self) -> impl Iterator<Item = (&ShortStr, &FieldTable, &D)> {
        self.bindings
            .iter()
            .flat_map(|((dest, key), bound)| bound.iter().map(move |b| (key, &b.arguments, dest)))
    }

    fn index_add(&mut self, routing_key: &ShortStr, dest: D) {
        match &mut self.index {
            Index::Direct(by_key) => by_key
                .entry(routing_key.clone())
                .or_insert_with(Targets::new)
                .add(dest),
            Index::Fanout(targets) => targets.add(dest),
            Index::Topic(trie) => trie.insert(routing_key, dest),
            Index::Headers => {}
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
            Index::Fanout(targets) => {
                targets.remove(dest);
            }
            Index::Topic(trie) => trie.remove(routing_key, dest),
            Index::Headers => {}
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
