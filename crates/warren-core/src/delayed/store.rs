//! [`DelayStore`]: what a delayed exchange holds, as a state machine. A message taken
//! ([`DelayStore::hold`]) is numbered, and — when the exchange is durable and the message
//! persistent — logged, its publisher confirmed once the log is synced; it waits until
//! `publish time + x-delay`; [`DelayStore::release_due`] hands out the due ones in the form
//! they are routed in (`x-delay` negated). A logged message stays in the log until every
//! destination it was routed to has answered for it: the runtime routes it through a
//! `Publisher` with confirms keyed by the message's number and acks it in the log when that
//! confirm settles, so a crash in between routes it again (at-least-once, never lost).

use super::{delay_of, released, DelaySchedule};
use crate::queue::{ConfirmId, Incoming};
use crate::Message;
use std::sync::Arc;

/// A message waiting for its delay.
#[derive(Debug)]
struct Waiting {
    message: Arc<Message>,
    delay_ms: u64,
    logged: bool,
}

/// What became of a message the store took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Write it to the store's log as `seq`; answer `confirm` once that is durable.
    Logged {
        seq: u64,
        confirm: Option<ConfirmId>,
    },
    /// Held in memory only: `confirm` is answered now.
    InMemory { confirm: Option<ConfirmId> },
}

/// A message whose delay is over, to be routed.
#[derive(Debug, Clone)]
pub struct Release {
    pub seq: u64,
    /// The message as routed: `x-delay` negated.
    pub message: Arc<Message>,
    /// It is in the log: ack it there once its destinations have it.
    pub logged: bool,
}

pub struct DelayStore {
    /// Persistent messages are logged (a durable exchange).
    durable: bool,
    next_seq: u64,
    schedule: DelaySchedule<Waiting>,
}

impl DelayStore {
    /// `next_seq`: above every number the log already holds.
    pub fn new(durable: bool, next_seq: u64) -> DelayStore {
        DelayStore {
            durable,
            next_seq: next_seq.max(1),
            schedule: DelaySchedule::new(),
        }
    }

    /// Takes a delayed message published at `now_ms` (the exchange checked its delay).
    pub fn hold(&mut self, now_ms: u64, incoming: Incoming) -> Hold {
        let seq = self.next_seq;
        self.next_seq += 1;
        let logged = self.durable && incoming.message.is_persistent();
        self.push(seq, incoming.message, now_ms, logged);
        if logged {
            Hold::Logged {
                seq,
                confirm: incoming.confirm,
            }
        } else {
            Hold::InMemory {
                confirm: incoming.confirm,
            }
        }
    }

    /// Puts back a message recovered from the log, published at `published_ms`.
    pub fn restore(&mut self, seq: u64, message: Arc<Message>, published_ms: u64) {
        self.next_seq = self.next_seq.max(seq + 1);
        self.push(seq, message, published_ms, true);
    }

    fn push(&mut self, seq: u64, message: Arc<Message>, published_ms: u64, logged: bool) {
        let delay_ms = delay_of(&message).unwrap_or(0);
        let waiting = Waiting {
            message,
            delay_ms,
            logged,
        };
        self.schedule
            .push(published_ms.saturating_add(delay_ms), seq, waiting);
    }

    pub fn next_due_ms(&self) -> Option<u64> {
        self.schedule.next_due_ms()
    }

    pub fn len(&self) -> usize {
        self.schedule.len()
    }

    pub fn is_empty(&self) -> bool {
        self.schedule.is_empty()
    }

    /// Up to `max` messages due at `now_ms`, earliest first.
    pub fn release_due(&mut self, now_ms: u64, max: usize) -> Vec<Release> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((seq, w)) = self.schedule.pop_due(now_ms) else {
                break;
            };
            out.push(Release {
                seq,
                message: Arc::new(released(&w.message, w.delay_ms)),
                logged: w.logged,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use warren_amqp::{BasicProperties, FieldTable, FieldValue, ShortStr};

    fn delayed(delay: i64, persistent: bool) -> Arc<Message> {
        let mut headers = FieldTable::new();
        headers.insert("x-delay", FieldValue::I64(delay));
        Arc::new(Message {
            exchange: ShortStr::from("d"),
            routing_key: ShortStr::from("k"),
            properties: BasicProperties {
                headers: Some(headers),
                delivery_mode: Some(if persistent { 2 } else { 1 }),
                ..Default::default()
            },
            properties_raw: Bytes::new(),
            body: Bytes::new(),
        })
    }

    fn incoming(message: Arc<Message>, confirm: u64) -> Incoming {
        Incoming {
            message,
            confirm: Some(ConfirmId(confirm)),
        }
    }

    #[test]
    fn persistent_messages_of_a_durable_store_are_logged_and_transient_ones_held_in_memory() {
        let mut s = DelayStore::new(true, 10);
        assert_eq!(
            s.hold(0, incoming(delayed(5, true), 1)),
            Hold::Logged {
                seq: 10,
                confirm: Some(ConfirmId(1))
            }
        );
        assert_eq!(
            s.hold(0, incoming(delayed(5, false), 2)),
            Hold::InMemory {
                confirm: Some(ConfirmId(2))
            }
        );
        let mut transient = DelayStore::new(false, 1);
        assert!(matches!(
            transient.hold(0, incoming(delayed(5, true), 3)),
            Hold::InMemory { .. }
        ));
    }

    #[test]
    fn messages_are_released_when_due_in_due_order_with_the_delay_negated() {
        let mut s = DelayStore::new(true, 1);
        s.hold(100, incoming(delayed(50, true), 1));
        s.hold(100, incoming(delayed(20, true), 2));
        s.restore(7, delayed(10, true), 0);
        assert_eq!(s.next_due_ms(), Some(10));
        let due = s.release_due(120, 10);
        assert_eq!(due.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![7, 2]);
        let header = due[1].message.properties.headers.as_ref().unwrap();
        assert_eq!(header.get("x-delay").and_then(FieldValue::as_i64), Some(-20));
        assert_eq!(s.release_due(149, 10).len(), 0);
        assert_eq!(s.release_due(150, 10).len(), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn release_is_bounded_per_call_and_restore_keeps_numbers_increasing() {
        let mut s = DelayStore::new(true, 1);
        s.restore(41, delayed(1, true), 0);
        for i in 0..5 {
            s.hold(0, incoming(delayed(1, true), i));
        }
        assert_eq!(s.release_due(10, 4).len(), 4);
        assert_eq!(s.len(), 2);
        assert!(matches!(
            s.hold(0, incoming(delayed(1, true), 9)),
            Hold::Logged { seq: 47, .. }
        ));
    }
}
