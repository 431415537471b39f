//! A channel's shared prefetch (`basic.qos` with `global = true`), counted across all the
//! channel's consumers on all queues. Queues acquire at delivery; the channel releases on
//! ack, nack, reject and recover. Atomic, because the queues of one channel run as separate
//! tasks.

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Default)]
pub struct ChannelCredit {
    limit: AtomicU32,
    used: AtomicU32,
}

impl ChannelCredit {
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Takes one unit of credit if the limit allows.
    pub fn try_acquire(&self) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let limit = self.limit.load(Ordering::Relaxed);
            if limit != 0 && used >= limit {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Returns `n` units; true if the channel was at its limit before (queues may be waiting).
    pub fn release(&self, n: u32) -> bool {
        let before = self
            .used
            .fetch_sub(n.min(self.used.load(Ordering::Relaxed)), Ordering::AcqRel);
        let limit = self.limit.load(Ordering::Relaxed);
        limit != 0 && before >= limit
    }
}
