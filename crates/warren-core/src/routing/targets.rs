//! `Targets`: the destinations reachable at one point of a routing index (a direct routing
//! key, a topic trie node), each counted by the (destination, routing key) pairs that put it
//! there (a topic node is reached by `#` and `#.#` alike).
//!
//! Destinations are unique, so a route through one point never yields one twice. Nearly
//! every point has a single destination, which is stored inline: routing to it is one clone,
//! with no map to walk.

use super::pmap::PMap;
use std::hash::Hash;

#[derive(Clone)]
pub(crate) enum Targets<D> {
    Empty,
    One(D, u32),
    Many(PMap<D, u32>),
}

impl<D> Targets<D> {
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Targets::Empty => true,
            Targets::One(..) => false,
            Targets::Many(map) => map.is_empty(),
        }
    }

    pub(crate) fn for_each(&self, mut f: impl FnMut(&D)) {
        match self {
            Targets::Empty => {}
            Targets::One(dest, _) => f(dest),
            Targets::Many(map) => map.for_each(|dest, _| f(dest)),
        }
    }
}

impl<D: Clone + Eq + Hash> Targets<D> {
    pub(crate) fn add(&mut self, dest: D) {
        match self {
            Targets::Empty => *self = Targets::One(dest, 1),
            Targets::One(only, count) if *only == dest => *count += 1,
            Targets::One(only, count) => {
                let mut map = PMap::new();
                map.insert(only.clone(), *count);
                map.insert(dest, 1);
                *self = Targets::Many(map);
            }
            Targets::Many(map) => *map.get_or_insert_with(dest, || 0) += 1,
        }
    }

    /// Returns false if `dest` was not there.
    pub(crate) fn remove(&mut self, dest: &D) -> bool {
        match self {
            Targets::Empty => false,
            Targets::One(only, _) if only != dest => false,
            Targets::One(_, count) => {
                *count -= 1;
                if *count == 0 {
                    *self = Targets::Empty;
                }
                true
            }
            Targets::Many(map) => {
                let Some(count) = map.get_mut(dest) else {
                    return false;
                };
                *count -= 1;
                if *count == 0 {
                    map.remove(dest);
                }
                true
            }
        }
    }
}
