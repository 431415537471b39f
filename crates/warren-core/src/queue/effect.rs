//! What a queue asks of the world after a command ([`Effect`]). The runtime carries them out
//! in order: deliveries to sessions, log writes, confirms, storage for paging, dead letters.
//! Order matters in two places: a paged message that dies is read back for its
//! [`Effect::DeadLetter`] before the [`Effect::Release`] of its stored copy and the
//! [`Effect::LogAck`] that records it gone.

use super::{dead_letter_message, ConfirmId, ConsumerId, Content, DeathReason, Delivery};
use super::{Paged, SessionId, Seq};
use crate::args::DeadLetterTarget;
use crate::Message;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Effect {
    /// Hand `delivery` to `consumer` of `session`.
    Deliver {
        session: SessionId,
        consumer: ConsumerId,
        delivery: Delivery,
    },
    /// Append the persistent message `seq` to the queue's log. With `confirm`, its publisher
    /// is answered once the append is durable (a `basic.nack` if the write or the sync fails).
    Append {
        seq: Seq,
        message: Arc<Message>,
        /// When it was enqueued, kept when a TTL must count from it across a restart.
        enqueued_ms: Option<u64>,
        confirm: Option<ConfirmId>,
    },
    /// Answer a publisher now: the queue took the message (`ok`), or refused it at its length
    /// limit (`!ok`: a `basic.nack`).
    Confirm { id: ConfirmId, ok: bool },
    /// These persistent messages left the queue: record it in the log.
    LogAck(Vec<Seq>),
    /// These persistent messages were handed out: after a restart they come back flagged
    /// redelivered.
    LogDelivered(Vec<Seq>),
    /// Store this ready message's content (in the log already when `in_log`) and tell the
    /// queue where ([`super::Command::PagedOut`]).
    PageOut {
        seq: Seq,
        message: Arc<Message>,
        in_log: bool,
    },
    /// Read these paged messages back ([`super::Command::Loaded`]), next to deliver first.
    /// Reading does not release what was stored: [`Effect::Release`] does.
    ReadBack(Vec<(Seq, Paged)>),
    /// What the runtime stored for a paged message can go: the message was loaded back, or
    /// left the queue. Exactly one per successful `PagedOut`.
    Release(Paged),
    /// Republish a dead message through the queue's dead-letter exchange.
    DeadLetter(Box<DeadLetter>),
    /// The queue cancelled this consumer (the queue is gone): RabbitMQ's server-sent
    /// `basic.cancel`.
    ConsumerCancelled {
        session: SessionId,
        consumer: ConsumerId,
    },
    /// This session-limited consumer has messages waiting and no session credit.
    CreditWanted {
        session: SessionId,
        consumer: ConsumerId,
    },
    /// Unused session credit given back (asked with [`super::Grant::Reclaim`]).
    CreditReturned {
        session: SessionId,
        consumer: ConsumerId,
        n: u32,
    },
    /// The queue is gone (deleted, auto-deleted, expired): its definition, log and stored
    /// pages go; no command is applied after this one.
    Deleted,
}

/// A message that died in a queue with a dead-letter exchange, to be republished there.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The message as it was in the queue; a paged one is read back first (from the log if
    /// `seq` is set and it is persistent, else from the runtime's store).
    pub content: Content,
    pub seq: Option<Seq>,
    pub reason: DeathReason,
    pub target: DeadLetterTarget,
    /// When it died (the `x-death` time).
    pub now_ms: u64,
}

impl DeadLetter {
    /// The message to republish, given the dead message's content (`message`, read back if it
    /// was paged), with RabbitMQ's `x-death` headers; `queue` is the dead message's queue.
    pub fn republished(&self, message: &Message, queue: &str) -> Message {
        dead_letter_message(message, self.reason, queue, &self.target, self.now_ms / 1000)
    }
}
