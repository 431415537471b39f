//! What a queue task does with the messages that die in its queue (`warren_core::queue::Dead`):
//! records their removal in the log, and, when the queue has a dead-letter exchange,
//! republishes them through it with RabbitMQ's `x-death` headers.
//!
//! Dead-lettered messages reach their destination queues on those queues' unbounded control
//! channel ([`QueueHandle::publish_dead_letters`]), never through an awaited send: two queues
//! that dead-letter into each other with full inboxes would otherwise wait on each other
//! forever. The unbounded channel holds no more than the messages that just left this queue
//! (times the destinations they route to), and the broker's memory alarm stops publishers if
//! that ever adds up. Dead-lettering is at-most-once, as RabbitMQ's classic queues do it
//! (and as Warren's single-node quorum queues do too): the message is gone from its queue's
//! log before its copy is in the destination's.

use super::{wall_clock_ms, Publish, QueueRef, QueueTask};
use crate::durability::blocking;
use std::sync::Arc;
use tracing::warn;
use warren_core::queue::{dead_letter_message, is_death_cycle, Content, Dead, DeathReason};
use warren_core::Message;

impl QueueTask {
    /// Handles the messages that died since the last call.
    pub(super) fn bury(&mut self) {
        if !self.state.has_dead() {
            return;
        }
        let dead = self.state.take_dead();
        self.dedup_release(dead.iter().filter_map(|d| d.seq));
        let dead_lettering = self.state.args().dead_letter.is_some();
        // Paged-out messages are read back only to be dead-lettered, before the log learns
        // that they are gone.
        let dead: Vec<(Dead, Option<Arc<Message>>)> = dead
            .into_iter()
            .map(|d| {
                let message = match &d.content {
                    Content::Loaded(m) => Some(m.clone()),
                    Content::Paged(p) if dead_lettering => {
                        let seq = d.seq.unwrap_or_default();
                        blocking(|| self.read_paged(seq, *p)).map(Arc::new)
                    }
                    Content::Paged(p) => {
                        self.release(*p);
                        None
                    }
                };
                (d, message)
            })
            .collect();
        if self.log.is_some() {
            let gone: Vec<u64> = dead
                .iter()
                .filter(|(d, _)| d.content.is_persistent())
                .filter_map(|(d, _)| d.seq)
                .collect();
            self.forget(&gone);
        }
        if dead_lettering {
            self.dead_letter(dead);
        }
    }

    /// Republishes dead messages through the dead-letter exchange. A missing exchange drops
    /// them, as RabbitMQ does; so does a destination that closes an automatic cycle.
    fn dead_letter(&mut self, dead: Vec<(Dead, Option<Arc<Message>>)>) {
        let Some(target) = self.state.args().dead_letter.clone() else {
            return;
        };
        let Some(vhost) = self.vhost.upgrade() else {
            return;
        };
        let Some(exchange) = vhost.exchange(&target.exchange) else {
            return;
        };
        let now_secs = wall_clock_ms() / 1000;
        let mut batches: Vec<(QueueRef, Vec<Publish>)> = Vec::new();
        let mut routed = Vec::new();
        for (d, message) in dead {
            let Some(message) = message else { continue };
            let message = Arc::new(dead_letter_message(
                &message,
                d.reason,
                self.queue.name(),
                &target,
                now_secs,
            ));
            routed.clear();
            vhost.route(&exchange, &message, &mut routed);
            for q in routed.drain(..) {
                if d.reason != DeathReason::Rejected && is_death_cycle(&message, q.name()) {
                    self.warn_cycle_once(&q);
                    continue;
                }
                let publish = Publish {
                    message: message.clone(),
                    confirm: None,
                };
                match batches.iter_mut().find(|(bq, _)| *bq == q) {
                    Some((_, batch)) => batch.push(publish),
                    None => batches.push((q, vec![publish])),
                }
            }
        }
        for (q, batch) in batches {
            // A queue deleted meanwhile drops them, as if deleted just after.
            q.publish_dead_letters(batch);
        }
    }

    fn warn_cycle_once(&mut self, destination: &QueueRef) {
        if self.cycles_warned.insert(destination.id) {
            warn!(
                "{}: message dropped: dead-lettering it to {} would close a cycle without a rejection \
                 (not reported again for this pair)",
                self.queue.describe(),
                destination.describe()
            );
        }
    }
}
