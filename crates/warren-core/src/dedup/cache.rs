//! [`DedupCache`]: the keys a deduplication exchange has routed recently, bounded in number
//! (`x-cache-size`) and in age (`x-cache-ttl`, or a message's own `x-cache-ttl` header).
//!
//! When the cache is full, the entry inserted first goes (the plugin removes an unspecified
//! one; oldest-first is the useful choice). Entries past their TTL are dropped when they are
//! looked up or reach the front of the insertion order. Insertion order is a queue of
//! (key, stamp) pairs; an entry replaced after it expired leaves a stale pair behind, which
//! is skipped when it reaches the front, and the queue is compacted when stale pairs make up
//! half of it, so memory stays proportional to the cache size.

use super::DedupKey;
use std::collections::{HashMap, VecDeque};

/// Expiry of an entry that never expires.
const NEVER: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Entry {
    expires_at_ms: u64,
    stamp: u64,
}

#[derive(Debug)]
pub struct DedupCache {
    capacity: usize,
    default_ttl_ms: Option<u64>,
    entries: HashMap<DedupKey, Entry>,
    order: VecDeque<(DedupKey, u64)>,
    next_stamp: u64,
    track_removed: bool,
    removed: Vec<u64>,
}

impl DedupCache {
    /// A cache of at most `size` entries (at least one), each kept `default_ttl_ms` unless
    /// its message says otherwise (`None`: until pushed out).
    pub fn new(size: u64, default_ttl_ms: Option<u64>) -> Self {
        DedupCache {
            capacity: usize::try_from(size).unwrap_or(usize::MAX).max(1),
            default_ttl_ms,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_stamp: 0,
            track_removed: false,
            removed: Vec::new(),
        }
    }

    /// Routes-or-drops: `Some(stamp)` if `key` was not in the cache (it is now, for `ttl_ms`
    /// — the message's `x-cache-ttl` — or the cache's default), `None` if it is a duplicate.
    /// An entry counts until its expiry millisecond, exclusive, as in the plugin. Stamps
    /// increase with every insertion; a persistent cache stores entries under them.
    pub fn admit(&mut self, key: DedupKey, ttl_ms: Option<i64>, now_ms: u64) -> Option<u64> {
        if let Some(e) = self.entries.get(&key) {
            if e.expires_at_ms > now_ms {
                return None;
            }
            let e = self.entries.remove(&key).expect("just found");
            self.note_removed(e.stamp);
        }
        let expires_at_ms = match (ttl_ms, self.default_ttl_ms) {
            (Some(t), _) if t <= 0 => now_ms,
            (Some(t), _) => now_ms.saturating_add(t as u64),
            (None, Some(t)) => now_ms.saturating_add(t),
            (None, None) => NEVER,
        };
        let stamp = self.next_stamp;
        self.insert(key, expires_at_ms, stamp);
        Some(stamp)
    }

    /// Puts back an entry read from storage under its stamp (oldest first), unless it has
    /// expired; later insertions get higher stamps.
    pub fn restore(&mut self, key: DedupKey, expires_at_ms: u64, stamp: u64, now_ms: u64) {
        self.next_stamp = self.next_stamp.max(stamp.saturating_add(1));
        if expires_at_ms > now_ms {
            if let Some(e) = self.entries.remove(&key) {
                self.note_removed(e.stamp);
            }
            self.insert(key, expires_at_ms, stamp);
        } else {
            self.note_removed(stamp);
        }
    }

    /// Makes the cache report the stamps of the entries it drops ([`DedupCache::take_removed`]),
    /// so that a persistent copy can drop them too.
    pub fn track_removals(&mut self) {
        self.track_removed = true;
    }

    /// Stamps of the entries dropped since the last call (when tracking).
    pub fn take_removed(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.removed)
    }

    fn note_removed(&mut self, stamp: u64) {
        if self.track_removed {
            self.removed.push(stamp);
        }
    }

    fn insert(&mut self, key: DedupKey, expires_at_ms: u64, stamp: u64) {
        while self.entries.len() >= self.capacity {
            self.evict_oldest();
        }
        self.next_stamp = self.next_stamp.max(stamp + 1);
        self.entries.insert(
            key.clone(),
            Entry {
                expires_at_ms,
                stamp,
            },
        );
        self.order.push_back((key, stamp));
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(k, s)| entries.get(k).is_some_and(|e| e.stamp == *s));
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((key, stamp)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|e| e.stamp == stamp) {
                self.entries.remove(&key);
                self.note_removed(stamp);
                return;
            }
        }
    }

    /// The live entries, oldest first, as (key, expiry ms — `u64::MAX` for never — stamp).
    pub fn entries(&self, now_ms: u64) -> impl Iterator<Item = (&DedupKey, u64, u64)> {
        self.order.iter().filter_map(move |(k, s)| {
            let e = self.entries.get(k)?;
            (e.stamp == *s && e.expires_at_ms > now_ms).then_some((k, e.expires_at_ms, e.stamp))
        })
    }

    /// When `key`'s entry expires (`u64::MAX` for never), if it is held.
    pub fn expiry(&self, key: &DedupKey) -> Option<u64> {
        self.entries.get(key).map(|e| e.expires_at_ms)
    }

    /// Entries held (some may have expired and not been dropped yet).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::FieldValue;

    fn key(s: &str) -> DedupKey {
        DedupKey::from_value(&FieldValue::string(s))
    }

    #[test]
    fn a_key_seen_before_is_a_duplicate() {
        let mut c = DedupCache::new(10, None);
        assert!(c.admit(key("a"), None, 0).is_some());
        assert!(c.admit(key("a"), None, 1_000_000).is_none());
        assert!(c.admit(key("b"), None, 0).is_some());
    }

    #[test]
    fn entries_expire_after_the_cache_ttl() {
        let mut c = DedupCache::new(10, Some(100));
        assert!(c.admit(key("a"), None, 1_000).is_some());
        assert!(c.admit(key("a"), None, 1_099).is_none());
        assert!(c.admit(key("a"), None, 1_100).is_some());
        assert!(c.admit(key("a"), None, 1_150).is_none());
    }

    #[test]
    fn the_message_ttl_header_overrides_the_cache_ttl() {
        let mut c = DedupCache::new(10, Some(100));
        assert!(c.admit(key("long"), Some(10_000), 0).is_some());
        assert!(c.admit(key("long"), None, 5_000).is_none());
        assert!(c.admit(key("zero"), Some(0), 0).is_some());
        assert!(c.admit(key("zero"), None, 0).is_some());
        let mut no_default = DedupCache::new(10, None);
        assert!(no_default.admit(key("short"), Some(50), 0).is_some());
        assert!(no_default.admit(key("short"), None, 50).is_some());
        assert!(no_default.admit(key("short"), None, u64::MAX - 1).is_none());
    }

    #[test]
    fn a_full_cache_forgets_its_oldest_entry() {
        let mut c = DedupCache::new(2, None);
        assert!(c.admit(key("a"), None, 0).is_some());
        assert!(c.admit(key("b"), None, 0).is_some());
        assert!(c.admit(key("c"), None, 0).is_some());
        assert_eq!(c.len(), 2);
        assert!(c.admit(key("b"), None, 0).is_none());
        assert!(c.admit(key("c"), None, 0).is_none());
        assert!(c.admit(key("a"), None, 0).is_some());
        assert!(c.admit(key("b"), None, 0).is_some());
    }

    #[test]
    fn stale_order_entries_do_not_grow_without_bound() {
        let mut c = DedupCache::new(4, Some(1));
        assert!(c.admit(key("old"), Some(1_000_000), 0).is_some());
        for now in 1..10_000u64 {
            assert!(c.admit(key("hot"), None, now * 2).is_some());
        }
        assert!(c.order.len() <= 2 * c.entries.len() + 17);
        assert!(c.admit(key("old"), None, 30_000).is_none());
    }

    #[test]
    fn entries_come_back_oldest_first_and_restore_skips_expired_ones() {
        let mut c = DedupCache::new(10, None);
        c.admit(key("a"), Some(100), 0);
        c.admit(key("b"), None, 0);
        c.admit(key("c"), Some(10), 0);
        let saved: Vec<(DedupKey, u64, u64)> =
            c.entries(50).map(|(k, e, s)| (k.clone(), e, s)).collect();
        assert_eq!(saved, vec![(key("a"), 100, 0), (key("b"), u64::MAX, 1)]);
        let mut back = DedupCache::new(1, None);
        back.track_removals();
        for (k, e, s) in saved {
            back.restore(k, e, s, 60);
        }
        back.restore(key("c"), 10, 2, 60);
        // Restored oldest first into a smaller cache: the newest survives; the others are
        // reported dropped (`a` pushed out, `c` expired).
        assert_eq!(back.len(), 1);
        assert_eq!(back.take_removed(), vec![0, 2]);
        assert!(back.admit(key("b"), None, 70).is_none());
        assert_eq!(
            back.admit(key("a"), None, 70),
            Some(3),
            "stamps continue after restored ones"
        );
        assert_eq!(back.take_removed(), vec![1]);
    }

    #[test]
    fn removals_are_reported_only_when_tracked() {
        let mut c = DedupCache::new(1, Some(10));
        c.admit(key("a"), None, 0);
        c.admit(key("b"), None, 0);
        assert!(c.take_removed().is_empty());
        c.track_removals();
        c.admit(key("b"), None, 20);
        c.admit(key("c"), None, 20);
        assert_eq!(c.take_removed(), vec![1, 2]);
    }
}
