//! Message deduplication, as the rabbitmq-message-deduplication plugin defines it: a message
//! whose `x-deduplication-header` value was already seen is dropped. Messages without the
//! header are never deduplicated.
//!
//! Two scopes, two structures:
//! - [`QueueDedup`], for a queue declared with `x-message-deduplication = true`: the keys of
//!   the messages *in the queue* (ready or unacked). A key is taken at enqueue and freed when
//!   its message leaves the queue — acked, rejected, auto-acked at delivery, expired, dropped
//!   at the length limit, over the delivery limit, purged — or when the message's TTL runs
//!   out, as the plugin gives each cache entry the message's TTL. It is indexed by the
//!   queue's `Seq`, so the queue frees a key from the `Seq` alone, without the message (whose
//!   body may be paged out by then).
//! - [`DedupCache`] (in `cache`), for an `x-message-deduplication` exchange: the keys seen
//!   recently, bounded by `x-cache-size` (the oldest entry goes when it is full) and by a TTL
//!   (`x-cache-ttl`, or the message's own `x-cache-ttl` header).
//!
//! Keys compare as the plugin's Erlang terms do: integers by value whatever their width,
//! strings and byte arrays by their bytes, floats by value (`42` and `42.0` differ), `true`,
//! `false` and void as themselves. Arrays, tables and decimals, which make the plugin fail,
//! are keys too: equal when their encoding is.
//!
//! Pure state: time is an argument (ms since the Unix epoch), no clock is read here.

mod cache;

use crate::queue::Seq;
use crate::Message;
use bytes::{BufMut, Bytes, BytesMut};
use rustc_hash::FxHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use warren_amqp::{FieldTable, FieldValue};

pub use cache::DedupCache;

/// The message header whose value is the deduplication key.
pub const DEDUP_HEADER: &str = "x-deduplication-header";
/// The message header that overrides a deduplication exchange's `x-cache-ttl`.
pub const CACHE_TTL_HEADER: &str = "x-cache-ttl";

/// A deduplication key: the header value in a canonical byte form (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey(Bytes);

impl DedupKey {
    /// The key of `message`, or `None` if it has no `x-deduplication-header`.
    pub fn of(message: &Message) -> Option<DedupKey> {
        let value = message.properties.headers.as_ref()?.get(DEDUP_HEADER)?;
        Some(DedupKey::from_value(value))
    }

    pub fn from_value(value: &FieldValue) -> DedupKey {
        let mut out = BytesMut::new();
        match value {
            FieldValue::LongString(b) | FieldValue::ByteArray(b) => {
                out.put_u8(b'S');
                out.put_slice(b);
            }
            FieldValue::Bool(b) => {
                out.put_u8(b'B');
                out.put_u8(*b as u8);
            }
            FieldValue::F32(f) => {
                out.put_u8(b'F');
                out.put_u64(canonical_float(*f as f64));
            }
            FieldValue::F64(f) => {
                out.put_u8(b'F');
                out.put_u64(canonical_float(*f));
            }
            FieldValue::Void => out.put_u8(b'V'),
            other => match other.as_i64() {
                Some(i) => {
                    out.put_u8(b'I');
                    out.put_i64(i);
                }
                None => {
                    // Timestamps, decimals, arrays, tables: their exact wire form.
                    out.put_u8(b'X');
                    let mut wrapper = FieldTable::new();
                    wrapper.insert("", other.clone());
                    wrapper.encode(&mut out);
                }
            },
        }
        DedupKey(out.freeze())
    }

    /// Bytes for storage ([`DedupKey::from_bytes`] reads them back).
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn from_bytes(bytes: Bytes) -> DedupKey {
        DedupKey(bytes)
    }
}

/// `0.0` and `-0.0` are one Erlang float key; so are all NaNs (which Erlang cannot hold).
fn canonical_float(f: f64) -> u64 {
    if f == 0.0 {
        0
    } else if f.is_nan() {
        f64::NAN.to_bits()
    } else {
        f.to_bits()
    }
}

/// The message's `x-cache-ttl` header, if it holds an integer (ms; may be ≤ 0, which makes
/// the entry stale at once).
pub fn cache_ttl_header(message: &Message) -> Option<i64> {
    message
        .properties
        .headers
        .as_ref()?
        .get(CACHE_TTL_HEADER)?
        .as_i64()
}

type FxBuild = BuildHasherDefault<FxHasher>;

/// Who holds a key in a queue.
#[derive(Debug, Clone, Copy)]
struct Holder {
    seq: Seq,
    /// When the holder's TTL runs out (the queue's deadline for it); `u64::MAX` if never.
    expires_at_ms: u64,
}

/// The deduplication keys of the messages in one queue (see the module docs).
#[derive(Debug, Default)]
pub struct QueueDedup {
    by_key: HashMap<DedupKey, Holder>,
    by_seq: HashMap<Seq, DedupKey, FxBuild>,
}

impl QueueDedup {
    pub fn new() -> Self {
        Self::default()
    }

    /// True if a message with `key` is in the queue and its TTL has not run out. `now_ms` is
    /// called only when that message has a TTL. A message is live through the millisecond
    /// of its deadline, as in the queue.
    pub fn is_duplicate(&self, key: &DedupKey, now_ms: impl FnOnce() -> u64) -> bool {
        match self.by_key.get(key) {
            None => false,
            Some(h) if h.expires_at_ms == u64::MAX => true,
            Some(h) => h.expires_at_ms >= now_ms(),
        }
    }

    /// The message `seq` with `key` entered the queue. A holder whose TTL ran out but which
    /// has not left yet keeps its own entry until it leaves; the key now names `seq`.
    pub fn insert(&mut self, key: DedupKey, seq: Seq, expires_at_ms: u64) {
        self.by_seq.insert(seq, key.clone());
        self.by_key.insert(key, Holder { seq, expires_at_ms });
    }

    /// The message `seq` left the queue: its key is free again. Unknown `Seq`s (messages
    /// without the header) are ignored.
    pub fn release(&mut self, seq: Seq) {
        if let Some(key) = self.by_seq.remove(&seq) {
            if self.by_key.get(&key).is_some_and(|h| h.seq == seq) {
                self.by_key.remove(&key);
            }
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::{BasicProperties, ShortStr};

    pub(super) fn message(headers: &[(&str, FieldValue)]) -> Message {
        let mut table = FieldTable::new();
        for (k, v) in headers {
            table.insert(*k, v.clone());
        }
        let properties = BasicProperties {
            headers: Some(table),
            ..Default::default()
        };
        let mut raw = BytesMut::new();
        properties.encode(&mut raw);
        Message {
            exchange: ShortStr::from("x"),
            routing_key: ShortStr::from("k"),
            properties,
            properties_raw: raw.freeze(),
            body: Bytes::from_static(b"body"),
        }
    }

    fn key(v: FieldValue) -> DedupKey {
        DedupKey::from_value(&v)
    }

    #[test]
    fn messages_without_the_header_have_no_key() {
        assert_eq!(DedupKey::of(&message(&[])), None);
        assert_eq!(
            DedupKey::of(&message(&[("other", FieldValue::I32(1))])),
            None
        );
        assert!(DedupKey::of(&message(&[(DEDUP_HEADER, FieldValue::Void)])).is_some());
    }

    #[test]
    fn keys_compare_as_the_plugins_erlang_terms() {
        assert_eq!(key(FieldValue::I32(42)), key(FieldValue::I64(42)));
        assert_eq!(key(FieldValue::U8(42)), key(FieldValue::I16(42)));
        assert_ne!(key(FieldValue::I32(42)), key(FieldValue::string("42")));
        assert_ne!(key(FieldValue::I32(42)), key(FieldValue::F64(42.0)));
        assert_eq!(
            key(FieldValue::string("a")),
            key(FieldValue::ByteArray(Bytes::from_static(b"a")))
        );
        assert_eq!(key(FieldValue::F32(0.5)), key(FieldValue::F64(0.5)));
        assert_eq!(key(FieldValue::F64(0.0)), key(FieldValue::F64(-0.0)));
        assert_ne!(key(FieldValue::Bool(true)), key(FieldValue::Bool(false)));
        assert_ne!(key(FieldValue::Void), key(FieldValue::string("")));
        let array = || FieldValue::Array(vec![FieldValue::I32(1), FieldValue::string("x")]);
        assert_eq!(key(array()), key(array()));
        assert_ne!(key(array()), key(FieldValue::Array(vec![])));
    }

    #[test]
    fn a_key_is_held_until_its_message_leaves() {
        let mut d = QueueDedup::new();
        let k = key(FieldValue::string("order-1"));
        assert!(!d.is_duplicate(&k, || unreachable!()));
        d.insert(k.clone(), 7, u64::MAX);
        assert!(d.is_duplicate(&k, || unreachable!("no TTL: no clock")));
        d.release(8);
        assert!(d.is_duplicate(&k, || 0));
        d.release(7);
        assert!(!d.is_duplicate(&k, || 0));
        assert!(d.is_empty());
    }

    #[test]
    fn a_holder_past_its_ttl_no_longer_counts_and_leaves_the_new_holder_alone() {
        let mut d = QueueDedup::new();
        let k = key(FieldValue::I32(1));
        d.insert(k.clone(), 1, 1_000);
        assert!(d.is_duplicate(&k, || 1_000));
        assert!(!d.is_duplicate(&k, || 1_001));
        d.insert(k.clone(), 2, u64::MAX);
        // The expired message leaves later: the key stays with its new holder.
        d.release(1);
        assert!(d.is_duplicate(&k, || 5_000));
        d.release(2);
        assert!(!d.is_duplicate(&k, || 5_000));
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn cache_ttl_header_takes_integers_only() {
        assert_eq!(
            cache_ttl_header(&message(&[(CACHE_TTL_HEADER, FieldValue::I32(500))])),
            Some(500)
        );
        assert_eq!(
            cache_ttl_header(&message(&[(CACHE_TTL_HEADER, FieldValue::string("500"))])),
            None
        );
        assert_eq!(cache_ttl_header(&message(&[])), None);
    }
}
