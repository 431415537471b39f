//! The topic exchange's pattern trie: binding keys split into words on `.`, one trie edge per
//! word, with `*` (exactly one word) and `#` (zero or more words) as their own edges.
//!
//! Routing runs the trie as an automaton over the routing key's words, keeping the *set* of
//! live nodes (sorted, de-duplicated) rather than exploring paths one by one. That bounds the
//! work per word by the number of distinct live nodes, so a key like `a.a.a.a…` against
//! patterns like `#.a.#.a` stays linear in the key's length instead of going exponential, and
//! the cost never depends on how many bindings do not match.
//!
//! Word splitting is RabbitMQ's: the empty key has no words, otherwise every `.` separates two
//! (possibly empty) words, so `a..b` has three words and `.` has two empty ones.

use super::pmap::PMap;
use super::targets::Targets;
use std::cell::RefCell;
use std::hash::Hash;
use std::sync::Arc;
use warren_amqp::ShortStr;

type NodeId = u32;
const ROOT: NodeId = 0;

/// Nodes per shared chunk of the arena, and chunks per shared group: cloning the trie copies
/// one pointer per group (a 100,000-binding trie has a few dozen), and changing a node after
/// a clone copies its group's chunk pointers and its chunk.
const CHUNK_NODES: usize = 64;
const GROUP_CHUNKS: usize = 64;

type Chunk<D> = [Node<D>; CHUNK_NODES];

#[derive(Clone)]
pub(crate) struct TopicTrie<D> {
    /// The node arena: copy-on-write groups of copy-on-write chunks; a node's id is its index.
    groups: Vec<Arc<Vec<Arc<Chunk<D>>>>>,
    /// Ids handed out so far (pruned ones included).
    allocated: usize,
    /// Ids of pruned nodes, reused before the arena grows.
    free: Vec<NodeId>,
}

#[derive(Clone)]
struct Node<D> {
    /// Children by literal word.
    words: PMap<ShortStr, NodeId>,
    star: Option<NodeId>,
    hash: Option<NodeId>,
    /// Reached through a `#` edge: it may swallow any further word and stay where it is.
    is_hash: bool,
    /// Destinations whose binding key ends here.
    targets: Targets<D>,
}

impl<D> Node<D> {
    fn new(is_hash: bool) -> Node<D> {
        Node {
            words: PMap::new(),
            star: None,
            hash: None,
            is_hash,
            targets: Targets::Empty,
        }
    }

    fn is_prunable(&self) -> bool {
        self.words.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
            && self.targets.is_empty()
    }
}

/// One word of a binding key, as an edge label.
#[derive(Clone, Copy, PartialEq)]
enum Edge<'a> {
    Word(&'a str),
    Star,
    Hash,
}

/// A binding key as trie edges. `#.#` matches exactly what `#` matches, so runs of `#` are
/// folded into one: fewer live nodes while routing, same results.
fn edges(pattern: &str) -> impl Iterator<Item = Edge<'_>> {
    let mut previous = None;
    split_words(pattern)
        .map(|w| match w {
            "*" => Edge::Star,
            "#" => Edge::Hash,
            w => Edge::Word(w),
        })
        .filter(move |edge| {
            let repeat = *edge == Edge::Hash && previous == Some(Edge::Hash);
            previous = Some(*edge);
            !repeat
        })
}

/// RabbitMQ's split: no words for the empty key; otherwise `str::split` on `.`.
pub(crate) fn split_words(key: &str) -> impl Iterator<Item = &str> {
    let mut words = key.split('.');
    if key.is_empty() {
        words.next();
    }
    words
}

thread_local! {
    /// The live-node sets of `route`, kept per thread so that routing allocates nothing once
    /// they have grown to the largest set seen.
    static SCRATCH: RefCell<(Vec<NodeId>, Vec<NodeId>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Scratch sets larger than this are released after use, so one pathological route does not
/// pin memory on a thread forever.
const SCRATCH_KEEP_CAPACITY: usize = 4096;

impl<D: Clone + Eq + Hash + Ord> TopicTrie<D> {
    pub(crate) fn new() -> TopicTrie<D> {
        TopicTrie {
            groups: vec![Arc::new(vec![new_chunk()])],
            allocated: 1,
            free: Vec::new(),
        }
    }

    fn node(&self, id: NodeId) -> &Node<D> {
        let (id, chunk) = (id as usize, id as usize / CHUNK_NODES);
        &self.groups[chunk / GROUP_CHUNKS][chunk % GROUP_CHUNKS][id % CHUNK_NODES]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node<D> {
        let (id, chunk) = (id as usize, id as usize / CHUNK_NODES);
        let group = Arc::make_mut(&mut self.groups[chunk / GROUP_CHUNKS]);
        &mut Arc::make_mut(&mut group[chunk % GROUP_CHUNKS])[id % CHUNK_NODES]
    }

    /// Nodes the arena holds, used or not.
    fn capacity(&self) -> usize {
        let chunks = (self.groups.len() - 1) * GROUP_CHUNKS + self.groups.last().map_or(0, |g| g.len());
        chunks * CHUNK_NODES
    }

    pub(crate) fn insert(&mut self, pattern: &str, dest: D) {
        let mut at = ROOT;
        for edge in edges(pattern) {
            at = match self.child(at, edge) {
                Some(child) => child,
                None => {
                    let child = self.alloc(edge == Edge::Hash);
                    let node = self.node_mut(at);
                    match edge {
                        Edge::Word(w) => {
                            node.words.insert(ShortStr::from(w), child);
                        }
                        Edge::Star => node.star = Some(child),
                        Edge::Hash => node.hash = Some(child),
                    }
                    child
                }
            };
        }
        self.node_mut(at).targets.add(dest);
    }

    /// Removes one (pattern, destination) pair and prunes the nodes left empty.
    pub(crate) fn remove(&mut self, pattern: &str, dest: &D) {
        let mut path: Vec<(NodeId, Edge<'_>)> = Vec::new();
        let mut at = ROOT;
        for edge in edges(pattern) {
            let Some(child) = self.child(at, edge) else {
                return;
            };
            path.push((at, edge));
            at = child;
        }
        if !self.node_mut(at).targets.remove(dest) {
            return;
        }
        // Walk back up, unlinking each node that is now useless.
        let mut child = at;
        while let Some((parent, edge)) = path.pop() {
            if !self.node(child).is_prunable() {
                break;
            }
            let node = self.node_mut(parent);
            match edge {
                Edge::Word(w) => {
                    node.words.remove(w);
                }
                Edge::Star => node.star = None,
                Edge::Hash => node.hash = None,
            }
            self.free.push(child);
            child = parent;
        }
    }

    fn child(&self, at: NodeId, edge: Edge<'_>) -> Option<NodeId> {
        let node = self.node(at);
        match edge {
            Edge::Word(w) => node.words.get(w).copied(),
            Edge::Star => node.star,
            Edge::Hash => node.hash,
        }
    }

    fn alloc(&mut self, is_hash: bool) -> NodeId {
        match self.free.pop() {
            Some(id) => {
                *self.node_mut(id) = Node::new(is_hash);
                id
            }
            None => {
                let id = NodeId::try_from(self.allocated).expect("topic trie over 2^32 nodes");
                if self.allocated == self.capacity() {
                    if self.groups.last().is_some_and(|g| g.len() == GROUP_CHUNKS) {
                        self.groups.push(Arc::new(Vec::with_capacity(GROUP_CHUNKS)));
                    }
                    let last = self.groups.last_mut().expect("the root's group");
                    Arc::make_mut(last).push(new_chunk());
                }
                self.allocated += 1;
                self.node_mut(id).is_hash = is_hash;
                id
            }
        }
    }

    /// Appends each destination whose pattern matches `routing_key`, once.
    pub(crate) fn route<T: From<D> + Ord>(&self, routing_key: &str, out: &mut Vec<T>) {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut sets) => {
                let (live, next) = &mut *sets;
                self.route_with(routing_key, live, next, out);
                if live.capacity() > SCRATCH_KEEP_CAPACITY
                    || next.capacity() > SCRATCH_KEEP_CAPACITY
                {
                    *live = Vec::new();
                    *next = Vec::new();
                }
            }
            // Only reachable if routing re-entered itself on this thread; stay correct.
            Err(_) => self.route_with(routing_key, &mut Vec::new(), &mut Vec::new(), out),
        })
    }

    fn route_with<T: From<D> + Ord>(
        &self,
        routing_key: &str,
        live: &mut Vec<NodeId>,
        next: &mut Vec<NodeId>,
        out: &mut Vec<T>,
    ) {
        live.clear();
        live.push(ROOT);
        self.close_over_hash(live);
        for word in split_words(routing_key) {
            next.clear();
            // Hashed at most once per word, however many live nodes look it up.
            let mut word_hash = None;
            for &id in live.iter() {
                let node = self.node(id);
                if let Some(&child) = node.words.get_with_hash(word, &mut word_hash) {
                    next.push(child);
                }
                if let Some(child) = node.star {
                    next.push(child);
                }
                if node.is_hash {
                    next.push(id);
                }
            }
            self.close_over_hash(next);
            next.sort_unstable();
            next.dedup();
            std::mem::swap(live, next);
            if live.is_empty() {
                return;
            }
        }
        let start = out.len();
        let mut emitting_nodes = 0;
        for &id in live.iter() {
            let targets = &self.node(id).targets;
            if !targets.is_empty() {
                emitting_nodes += 1;
                targets.for_each(|dest| out.push(dest.clone().into()));
            }
        }
        // Each node's destinations are unique; only several nodes can repeat one.
        if emitting_nodes > 1 {
            dedup_tail(out, start);
        }
    }

    /// Adds the nodes reachable through `#` edges without consuming a word (`#` may match
    /// zero words). The set may hold duplicates afterwards.
    fn close_over_hash(&self, set: &mut Vec<NodeId>) {
        let mut i = 0;
        while i < set.len() {
            if let Some(hash) = self.node(set[i]).hash {
                set.push(hash);
            }
            i += 1;
        }
    }

    #[cfg(test)]
    pub(crate) fn live_nodes(&self) -> usize {
        self.allocated - self.free.len()
    }
}

/// A chunk of unused nodes (an empty node owns no allocation).
fn new_chunk<D>() -> Arc<Chunk<D>> {
    Arc::new(std::array::from_fn(|_| Node::new(false)))
}

/// Sorts `out[start..]` and removes repeats in place, leaving `out[..start]` untouched.
pub(crate) fn dedup_tail<D: Ord>(out: &mut Vec<D>, start: usize) {
    out[start..].sort_unstable();
    let mut write = start;
    for read in start..out.len() {
        if write == start || out[read] != out[write - 1] {
            out.swap(read, write);
            write += 1;
        }
    }
    out.truncate(write);
}
