//! One queue as a deterministic state machine: [`QueueMachine::apply`] takes a [`Command`]
//! (plain data: enqueue, settle, consume, cancel, credit, session closed, tick, purge, …) with
//! the time, changes the queue and returns a [`Reply`] for the caller; the [`Effect`]s it
//! produced (deliver to a consumer, append to the log, answer a confirm, dead-letter, page
//! out, …) wait in the machine until the runtime takes them with
//! [`QueueMachine::take_effects`]. Nothing in a command or an effect refers to a runtime:
//! consumers and sessions are ids, confirms are opaque [`ConfirmId`]s, log places are
//! numbers. The same commands in the same order, with the same times, give the same effects,
//! so a queue can be driven from a log of commands (replication) and tested by simulation.
//!
//! Inside, the machine is two parts: [`state`]'s `QueueState` keeps the queue's ordering and
//! credit rules (ready messages FIFO per priority by [`Seq`], requeue to the original place,
//! consumers round-robin within priority, single active consumer, prefetch, TTL deadlines,
//! length limits, delivery limits), and [`machine`] turns commands into those rules' calls and
//! their results into effects: which publishes must be confirmed after the log's sync, what
//! the log records (appends of persistent messages of durable queues, acks, delivery marks),
//! deduplication keys, paging decisions, dead-lettering, and the queue's own end
//! (`auto-delete`, `x-expires`, delete).
//!
//! Time is an argument (`now_ms`, milliseconds since the Unix epoch), read only by the rules
//! that need it.
//!
//! Credit: a consumer receives a message only while (a) its manual-ack unacked count is below
//! its prefetch (0 = unlimited), (b) fewer than its `window` deliveries are unwritten by its
//! session (the session returns write credit with [`Command::Written`]: this keeps a no-ack
//! consumer from flooding a connection that writes slower than the queue delivers), and (c)
//! for a consumer limited by its session (AMQP's channel-wide `global` prefetch), it holds
//! credit its session granted ([`Command::Grant`]). Session credit is granted by command, so a
//! queue never depends on other queues' concurrent progress: the session (see
//! `crate::session`) splits its limit among its queues, a queue asks for credit when it has
//! messages and none ([`Effect::CreditWanted`]) and gives back what it holds when asked.
//!
//! Paging: a ready message's [`Content`] is either in memory or *paged*: the runtime wrote it
//! somewhere and the queue keeps only an index entry ([`Paged`]: where, body size, priority,
//! persistence). Past its memory budget the machine asks for new messages to be paged out
//! ([`Effect::PageOut`], answered with [`Command::PagedOut`]); before delivery it asks for the
//! next paged ones to be read back ([`Effect::ReadBack`], answered with [`Command::Loaded`]).
//! Delivery stops at a paged head, so a consumer only ever receives loaded messages.

mod command;
mod consumers;
mod dead_letter;
mod effect;
mod machine;
mod ready;
mod state;

use crate::Message;
use std::sync::Arc;

pub use command::{Command, ConsumerSpec, GetOk, Grant, Incoming, QueueStats, Reply, Settlement};
pub use dead_letter::{dead_letter_message, is_death_cycle, with_delivery_count, DeathReason};
pub use effect::{DeadLetter, Effect};
pub use machine::{answers_confirm, QueueConfig, QueueMachine, READ_AHEAD};
pub use state::{Dead, Enqueued};

/// A message's number within its queue, given at enqueue.
pub type Seq = u64;

/// `Queued::expires_at_ms` of a message without a TTL.
pub const NO_DEADLINE: u64 = u64::MAX;

/// A consumer, numbered by the runtime (unique among the queue's consumers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(pub u64);

/// Who holds a delivery until it is settled: a protocol session (an AMQP channel, an MQTT or
/// STOMP connection). Numbered by the runtime; the queue only compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// A publisher's handle on one publish whose outcome it waits for (a publisher confirm),
/// numbered by the publisher (see `crate::publish`); the queue hands it back in
/// [`Effect::Confirm`] or with the log append that must be synced first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfirmId(pub u64);

/// What the queue keeps of a paged-out message: where the runtime put it, and what the
/// queue's rules read (length limits, priority lanes, what to record on disk at removal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paged {
    /// The runtime's locator for the content; opaque to the queue.
    pub place: u64,
    pub body_size: u32,
    pub priority: u8,
    pub persistent: bool,
}

/// A queued message's content: in memory, or paged out (see the module docs).
#[derive(Debug, Clone)]
pub enum Content {
    Loaded(Arc<Message>),
    Paged(Paged),
}

impl Content {
    pub fn loaded(&self) -> Option<&Arc<Message>> {
        match self {
            Content::Loaded(m) => Some(m),
            Content::Paged(_) => None,
        }
    }

    pub fn paged(&self) -> Option<Paged> {
        match self {
            Content::Loaded(_) => None,
            Content::Paged(p) => Some(*p),
        }
    }

    pub fn body_size(&self) -> usize {
        match self {
            Content::Loaded(m) => m.body_size(),
            Content::Paged(p) => p.body_size as usize,
        }
    }

    /// The `priority` property (0 if absent).
    pub fn priority(&self) -> u8 {
        match self {
            Content::Loaded(m) => m.properties.priority.unwrap_or(0),
            Content::Paged(p) => p.priority,
        }
    }

    pub fn is_persistent(&self) -> bool {
        match self {
            Content::Loaded(m) => m.is_persistent(),
            Content::Paged(p) => p.persistent,
        }
    }
}

/// A message waiting in the queue.
#[derive(Debug, Clone)]
pub struct Queued {
    pub seq: Seq,
    pub content: Content,
    pub redelivered: bool,
    /// Delivery attempts that ended with the message back in the queue (quorum queues'
    /// `x-delivery-count`).
    pub delivery_count: u32,
    /// When its TTL runs out (ms since the Unix epoch), or [`NO_DEADLINE`].
    pub expires_at_ms: u64,
}

/// A message handed out to a consumer or by `basic.get`.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: Seq,
    pub message: Arc<Message>,
    pub redelivered: bool,
}

#[cfg(test)]
mod tests;
