//! Queue-level deduplication (`x-message-deduplication = true`), wired into the queue task:
//! a publish whose `x-deduplication-header` matches a message in the queue is dropped (and
//! its publisher confirm is a `basic.ack`, as for any message the queue dealt with); the key
//! is freed when its message leaves. The keys live in a `warren_core::dedup::QueueDedup`
//! indexed by `Seq`, updated at the task's enqueue and removal points, so freeing a key never
//! reads the message.
//!
//! After a restart, a durable queue's keys are rebuilt from the messages recovered from its
//! log: exactly the persistent messages still in the queue. (The plugin starts its queue
//! caches empty after a restart; Warren keeps the rule "no two messages with one key in the
//! queue" across restarts.)

use super::{wall_clock_ms, QueueTask};
use warren_core::dedup::{DedupKey, QueueDedup};
use warren_core::queue::Seq;
use warren_core::Message;

/// A publish that repeats the key of a message in the queue.
pub(super) struct Duplicate;

impl QueueTask {
    /// The key `message` takes in this queue (`None`: the queue does not deduplicate, or the
    /// message has no header), or [`Duplicate`].
    pub(super) fn dedup_check(&self, message: &Message) -> Result<Option<DedupKey>, Duplicate> {
        let Some(dedup) = &self.dedup else {
            return Ok(None);
        };
        match DedupKey::of(message) {
            Some(key) if dedup.is_duplicate(&key, wall_clock_ms) => Err(Duplicate),
            key => Ok(key),
        }
    }

    /// The message `seq` with `key` was enqueued at `now_ms` (read only if a TTL applies).
    pub(super) fn dedup_enqueued(
        &mut self,
        key: DedupKey,
        seq: Seq,
        message: &Message,
        now_ms: u64,
    ) {
        let expires_at_ms = self.state.deadline(message, now_ms);
        if let Some(dedup) = &mut self.dedup {
            dedup.insert(key, seq, expires_at_ms);
        }
    }

    /// These messages left the queue: their keys are free.
    pub(super) fn dedup_release(&mut self, seqs: impl IntoIterator<Item = Seq>) {
        if let Some(dedup) = &mut self.dedup {
            for seq in seqs {
                dedup.release(seq);
            }
        }
    }
}

/// The keys of a queue restored at start-up, from its recovered messages (`seq`, message,
/// deadline).
pub(super) fn restore_key(
    dedup: &mut Option<QueueDedup>,
    seq: Seq,
    message: &Message,
    expires_at_ms: u64,
) {
    if let (Some(dedup), Some(key)) = (dedup.as_mut(), DedupKey::of(message)) {
        dedup.insert(key, seq, expires_at_ms);
    }
}
