//! [`DeadLetters`]: how a queue task republishes the messages its machine dead-letters
//! (`Effect::DeadLetter`): through the dead-letter exchange, with the one publisher
//! (`warren_core::publish::Publisher`), dropping the copies for destinations that would close
//! an automatic cycle (RabbitMQ's rule, `is_death_cycle`).
//!
//! Dead letters reach their destinations without an awaited send ([`Target::publish_now`]):
//! two queues that dead-letter into each other with full inboxes would otherwise wait on each
//! other forever. The unbounded channel holds no more than the messages that just left this
//! queue (times the destinations they route to), and the broker's memory alarm stops
//! publishers if that ever adds up. Dead-lettering is at-most-once, as RabbitMQ's classic
//! queues do it: the message is gone from its queue's log before its copy is in the
//! destination's. A missing dead-letter exchange drops them, as RabbitMQ does.

use crate::target::{RoutesRef, Target};
use std::collections::HashSet;
use std::sync::Arc;
use tracing::warn;
use warren_core::publish::Publisher;
use warren_core::queue::{is_death_cycle, DeathReason};
use warren_core::Message;

pub(super) struct DeadLetters {
    routes: RoutesRef,
    publisher: Publisher<Target>,
    routed: Vec<Target>,
    /// Destination queues a dead-letter cycle was already reported for.
    cycles_warned: HashSet<u64>,
}

impl DeadLetters {
    pub(super) fn new(routes: RoutesRef) -> DeadLetters {
        DeadLetters {
            routes,
            publisher: Publisher::new(),
            routed: Vec::new(),
            cycles_warned: HashSet::new(),
        }
    }

    /// Routes a dead-lettered `message` (already in its republished form) from `exchange`.
    /// `queue` describes the queue it died in, for warnings.
    pub(super) fn republish(&mut self, message: Message, reason: DeathReason, queue: &str) {
        let Some(routes) = self.routes.upgrade() else {
            return;
        };
        let message = Arc::new(message);
        self.routed.clear();
        if routes
            .route(&message.exchange, &message, &mut self.routed)
            .is_err()
        {
            return;
        }
        let mut routed = std::mem::take(&mut self.routed);
        routed.retain(|t| match t {
            Target::Queue(q) if reason != DeathReason::Rejected && is_death_cycle(&message, q.name()) => {
                if self.cycles_warned.insert(q.id) {
                    warn!(
                        "{queue}: message dropped: dead-lettering it to {} would close a cycle \
                         without a rejection (not reported again for this pair)",
                        q.describe()
                    );
                }
                false
            }
            _ => true,
        });
        self.publisher.publish_to(&routed, message);
        self.routed = routed;
    }

    /// Sends what was gathered, one batch per destination.
    pub(super) fn flush(&mut self) {
        for (target, batch) in self.publisher.take_batches() {
            // A destination deleted meanwhile drops them, as if deleted just after.
            target.publish_now(batch, None);
        }
    }
}
