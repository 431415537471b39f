//! `PMap`: a persistent hash map (a hash array mapped trie with `Arc`-shared nodes), so that a
//! routing table can be cloned in O(1) and changed by copying only the path to one entry.
//!
//! Why: the server publishes routing tables as immutable snapshots and clones the table on
//! the first publish after each binding change. With ordinary maps that clone is O(bindings)
//! (tens of milliseconds at 100,000 bindings); with `PMap` it is one reference count, and a
//! change after a clone copies only the branches on the path to one leaf.
//!
//! Layout: a node is a leaf (up to `LEAF_MAX` entries, scanned linearly, rebuilt on change)
//! or a branch of 32 children picked by 5 bits of the key's hash. Hashes come from one
//! process-wide randomly keyed SipHash, so keys chosen by clients cannot steer entries into
//! one leaf.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, OnceLock};

const BITS: u32 = 5;
const FANOUT: usize = 1 << BITS;
const LEAF_MAX: usize = 16;
/// Leaves this small are searched by comparing keys, without hashing the key first.
const COMPARE_WITHOUT_HASH_MAX: usize = 2;

pub(crate) struct PMap<K, V> {
    root: Option<Child<K, V>>,
    len: usize,
}

/// A reference to a node. Leaves are immutable slices (a change rebuilds the slice, at most
/// `LEAF_MAX` entries): one pointer hop to reach the entries, one per branch level.
enum Child<K, V> {
    Leaf(Arc<[Entry<K, V>]>),
    Branch(Arc<Branch<K, V>>),
}

type Branch<K, V> = [Option<Child<K, V>>; FANOUT];

#[derive(Clone)]
struct Entry<K, V> {
    hash: u64,
    key: K,
    value: V,
}

impl<K, V> Clone for Child<K, V> {
    fn clone(&self) -> Self {
        match self {
            Child::Leaf(entries) => Child::Leaf(entries.clone()),
            Child::Branch(children) => Child::Branch(children.clone()),
        }
    }
}

/// The hash every `PMap` uses. One hasher for all maps lets a caller hash a key once and look
/// it up in many maps (the topic trie does this for each word).
pub(crate) fn hash_of<Q: Hash + ?Sized>(key: &Q) -> u64 {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new).hash_one(key)
}

fn slot(hash: u64, level: u32) -> usize {
    ((hash >> (level * BITS)) as usize) & (FANOUT - 1)
}

/// Below this level a full leaf can still be split; past it every key in a leaf has the same
/// 64-bit hash and the leaf simply grows.
fn can_split(level: u32) -> bool {
    level * BITS < u64::BITS
}

impl<K, V> Clone for PMap<K, V> {
    fn clone(&self) -> Self {
        PMap {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<K, V> Default for PMap<K, V> {
    fn default() -> Self {
        PMap::new()
    }
}

impl<K, V> PMap<K, V> {
    pub(crate) const fn new() -> PMap<K, V> {
        PMap { root: None, len: 0 }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` on every entry, in no particular order; allocates nothing.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        if let Some(root) = &self.root {
            root.for_each(&mut f);
        }
    }

    /// Whether `f` holds for some entry; stops at the first. Allocates nothing.
    pub(crate) fn any(&self, mut f: impl FnMut(&K, &V) -> bool) -> bool {
        self.root.as_ref().is_some_and(|root| root.any(&mut f))
    }

    /// Every entry, in no particular order (allocates a small stack; not for hot paths).
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            stack: self.root.iter().collect(),
            leaf: [].iter(),
        }
    }
}

impl<K: Hash + Eq, V> PMap<K, V> {
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_with_hash(key, &mut None)
    }

    /// `get`, with the key's hash computed at most once across calls sharing `hash`, and not
    /// at all for a map of a tiny leaf.
    pub(crate) fn get_with_hash<Q>(&self, key: &Q, hash: &mut Option<u64>) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut child = self.root.as_ref()?;
        let mut level = 0;
        loop {
            match child {
                Child::Leaf(entries) => {
                    let found = if hash.is_none() && entries.len() <= COMPARE_WITHOUT_HASH_MAX {
                        entries.iter().find(|e| e.key.borrow() == key)
                    } else {
                        let hash = *hash.get_or_insert_with(|| hash_of(key));
                        entries
                            .iter()
                            .find(|e| e.hash == hash && e.key.borrow() == key)
                    };
                    return found.map(|e| &e.value);
                }
                Child::Branch(children) => {
                    let hash = *hash.get_or_insert_with(|| hash_of(key));
                    child = children[slot(hash, level)].as_ref()?;
                    level += 1;
                }
            }
        }
    }

    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> PMap<K, V> {
    /// Inserts or replaces; returns the previous value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let mut value = Some(value);
        let slot =
            self.get_or_insert_with(key, || value.take().expect("called only when inserting"));
        value.map(|v| std::mem::replace(slot, v))
    }

    /// The value for `key`, inserting `make()` first if there is none.
    pub(crate) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let hash = hash_of(&key);
        let root = self.root.get_or_insert_with(|| Child::Leaf(Arc::new([])));
        let (value, inserted) = root.get_or_insert(hash, key, make, 0);
        self.len += usize::from(inserted);
        value
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Look first: copying the path of a key that is not there would be wasted work.
        if !self.contains_key(key) {
            return None;
        }
        self.root.as_mut()?.get_mut(hash_of(key), key, 0)
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(key) {
            return None;
        }
        let removed = self.root.as_mut()?.remove(hash_of(key), key, 0);
        if removed.is_some() {
            self.len -= 1;
            if self.len == 0 {
                self.root = None;
            }
        }
        removed
    }
}

impl<K, V> Child<K, V> {
    fn for_each(&self, f: &mut impl FnMut(&K, &V)) {
        match self {
            Child::Leaf(entries) => entries.iter().for_each(|e| f(&e.key, &e.value)),
            Child::Branch(children) => children.iter().flatten().for_each(|c| c.for_each(f)),
        }
    }

    fn any(&self, f: &mut impl FnMut(&K, &V) -> bool) -> bool {
        match self {
            Child::Leaf(entries) => entries.iter().any(|e| f(&e.key, &e.value)),
            Child::Branch(children) => children.iter().flatten().any(|c| c.any(f)),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Child::Leaf(entries) => entries.is_empty(),
            Child::Branch(children) => children.iter().all(Option::is_none),
        }
    }
}

/// What an insertion does at one node, decided before anything is borrowed mutably.
enum Step {
    Found(usize),
    Append,
    Split,
    Descend,
}

impl<K: Hash + Eq + Clone, V: Clone> Child<K, V> {
    /// Returns the value slot and whether it was created.
    fn get_or_insert(
        &mut self,
        hash: u64,
        key: K,
        make: impl FnOnce() -> V,
        level: u32,
    ) -> (&mut V, bool) {
        let step = match self {
            Child::Leaf(entries) => {
                match entries.iter().position(|e| e.hash == hash && e.key == key) {
                    Some(index) => Step::Found(index),
                    None if entries.len() >= LEAF_MAX && can_split(level) => Step::Split,
                    None => Step::Append,
                }
            }
            Child::Branch(_) => Step::Descend,
        };
        match step {
            Step::Found(index) => (&mut self.leaf_mut()[index].value, false),
            Step::Append => {
                if let Child::Leaf(entries) = self {
                    let mut grown = Vec::with_capacity(entries.len() + 1);
                    grown.extend(entries.iter().cloned());
                    grown.push(Entry {
                        hash,
                        key,
                        value: make(),
                    });
                    *entries = grown.into();
                }
                let entries = self.leaf_mut();
                let last = entries.len() - 1;
                (&mut entries[last].value, true)
            }
            Step::Split => {
                self.split(level);
                self.get_or_insert(hash, key, make, level)
            }
            Step::Descend => {
                let Child::Branch(children) = self else {
                    unreachable!("decided on a branch")
                };
                let slot = &mut Arc::make_mut(children)[slot(hash, level)];
                let child = slot.get_or_insert_with(|| Child::Leaf(Arc::new([])));
                child.get_or_insert(hash, key, make, level + 1)
            }
        }
    }

    /// The entries of a leaf, copied first if a snapshot shares them. Empty for a branch.
    fn leaf_mut(&mut self) -> &mut [Entry<K, V>] {
        let Child::Leaf(entries) = self else {
            return &mut [];
        };
        if Arc::get_mut(entries).is_none() {
            *entries = entries.iter().cloned().collect();
        }
        Arc::get_mut(entries).expect("a freshly copied leaf is not shared")
    }

    /// Turns a full leaf into a branch whose children hold its entries.
    fn split(&mut self, level: u32) {
        let Child::Leaf(entries) = self else { return };
        let mut buckets: [Vec<Entry<K, V>>; FANOUT] = std::array::from_fn(|_| Vec::new());
        for entry in entries.iter() {
            buckets[slot(entry.hash, level)].push(entry.clone());
        }
        let children: Branch<K, V> =
            buckets.map(|b| (!b.is_empty()).then(|| Child::Leaf(b.into())));
        *self = Child::Branch(Arc::new(children));
    }

    fn get_mut<Q>(&mut self, hash: u64, key: &Q, level: u32) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Child::Leaf(_) => self
                .leaf_mut()
                .iter_mut()
                .find(|e| e.hash == hash && e.key.borrow() == key)
                .map(|e| &mut e.value),
            Child::Branch(children) => Arc::make_mut(children)[slot(hash, level)]
                .as_mut()?
                .get_mut(hash, key, level + 1),
        }
    }

    /// Removes the entry and drops children left empty, so that churn does not leave a
    /// skeleton of empty nodes behind.
    fn remove<Q>(&mut self, hash: u64, key: &Q, level: u32) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Child::Leaf(entries) => {
                let index = entries
                    .iter()
                    .position(|e| e.hash == hash && e.key.borrow() == key)?;
                let removed = entries[index].value.clone();
                *entries = entries
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != index)
                    .map(|(_, e)| e.clone())
                    .collect();
                Some(removed)
            }
            Child::Branch(children) => {
                let child_slot = &mut Arc::make_mut(children)[slot(hash, level)];
                let child = child_slot.as_mut()?;
                let removed = child.remove(hash, key, level + 1);
                if child.is_empty() {
                    *child_slot = None;
                }
                removed
            }
        }
    }
}

/// Depth-first iteration over a `PMap`.
pub(crate) struct Iter<'a, K, V> {
    stack: Vec<&'a Child<K, V>>,
    leaf: std::slice::Iter<'a, Entry<K, V>>,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.leaf.next() {
                return Some((&entry.key, &entry.value));
            }
            match self.stack.pop()? {
                Child::Leaf(entries) => self.leaf = entries.iter(),
                Child::Branch(children) => self.stack.extend(children.iter().flatten()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn contents(map: &PMap<u32, u32>) -> Vec<(u32, u32)> {
        let mut all: Vec<(u32, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort();
        all
    }

    #[test]
    fn clone_is_a_snapshot_unaffected_by_later_changes() {
        let mut map = PMap::new();
        for i in 0..1000u32 {
            map.insert(i, i);
        }
        let snapshot = map.clone();
        for i in 0..500u32 {
            map.remove(&i);
        }
        *map.get_mut(&700).unwrap() = 0;
        map.insert(5000, 1);
        assert_eq!(snapshot.len(), 1000);
        assert_eq!(
            contents(&snapshot),
            (0..1000).map(|i| (i, i)).collect::<Vec<_>>()
        );
        assert_eq!(map.len(), 501);
        assert_eq!(map.get(&700), Some(&0));
        assert_eq!(map.get(&100), None);
    }

    #[test]
    fn removing_everything_leaves_an_empty_map() {
        let mut map = PMap::new();
        for i in 0..300u32 {
            map.insert(i, i);
        }
        for i in 0..300u32 {
            assert_eq!(map.remove(&i), Some(i));
        }
        assert!(map.is_empty());
        assert!(map.root.is_none());
        assert_eq!(map.remove(&1), None);
    }

    #[test]
    fn string_keys_are_found_by_str() {
        let mut map: PMap<warren_amqp::ShortStr, u32> = PMap::new();
        for i in 0..100u32 {
            map.insert(warren_amqp::ShortStr::from(format!("k{i}")), i);
        }
        let mut hash = None;
        assert_eq!(map.get_with_hash("k42", &mut hash), Some(&42));
        assert_eq!(hash, Some(hash_of("k42")));
        assert_eq!(map.get("nope"), None);
    }

    proptest! {
        #[test]
        fn behaves_like_a_hash_map(ops in prop::collection::vec((0u8..3, 0u32..200, any::<u32>()), 0..600)) {
            let mut map = PMap::new();
            let mut model = HashMap::new();
            let mut snapshots = Vec::new();
            for (i, (op, key, value)) in ops.into_iter().enumerate() {
                match op {
                    0 => prop_assert_eq!(map.insert(key, value), model.insert(key, value)),
                    1 => prop_assert_eq!(map.remove(&key), model.remove(&key)),
                    _ => prop_assert_eq!(map.get_mut(&key).map(|v| { *v = value; *v }), model.get_mut(&key).map(|v| { *v = value; *v })),
                }
                if i % 50 == 0 {
                    snapshots.push((map.clone(), model.clone()));
                }
            }
            prop_assert_eq!(map.len(), model.len());
            let mut expected: Vec<(u32, u32)> = model.into_iter().collect();
            expected.sort();
            prop_assert_eq!(contents(&map), expected);
            for (snapshot, model) in snapshots {
                let mut expected: Vec<(u32, u32)> = model.into_iter().collect();
                expected.sort();
                prop_assert_eq!(contents(&snapshot), expected);
            }
        }
    }
}
