//! What a queue is told ([`Command`]) and what it answers ([`Reply`]): plain data, so that a
//! command can be logged, replicated and replayed. The runtime's handles (sockets, channels,
//! reply senders) stay with the runtime, keyed by the ids these carry.

use super::{ConfirmId, ConsumerId, Delivery, Paged, SessionId, Seq};
use crate::args::QueueArgs;
use crate::{BrokerError, Message};
use std::sync::Arc;
use warren_amqp::ShortStr;

/// One command to a queue. Apply with [`super::QueueMachine::apply`], with the time.
#[derive(Debug, Clone)]
pub enum Command {
    /// Publishes routed to this queue, in order.
    Enqueue(Vec<Incoming>),
    /// A session settled deliveries it holds.
    Settle {
        seqs: Vec<Seq>,
        how: Settlement,
    },
    /// A new consumer (`basic.consume`, an MQTT or STOMP subscription).
    Consume(ConsumerSpec),
    /// A consumer leaves; its unsettled deliveries stay with its session.
    Cancel(ConsumerId),
    /// The session wrote `n` of this consumer's deliveries (write credit back).
    Written { consumer: ConsumerId, n: u32 },
    /// The consumer's session changes its session credit (see the module docs).
    Grant { consumer: ConsumerId, grant: Grant },
    /// `basic.get`: hands out the head message (see [`super::QueueMachine::paged_ahead`]: the
    /// runtime reads a paged head back first).
    Get { session: SessionId, no_ack: bool },
    /// The session ended: its consumers leave and what it held comes back, in order.
    SessionClosed(SessionId),
    /// Time passed: TTLs and `x-expires` deadlines (see
    /// [`super::QueueMachine::next_deadline_ms`]).
    Tick,
    /// Removes every ready message.
    Purge,
    /// The queue was declared (passive or not): counts as use, answers its counts.
    Declared,
    /// Deletes the queue unless the conditions say no.
    Delete { if_unused: bool, if_empty: bool },
    /// New effective settings (a policy changed).
    SetArgs(QueueArgs),
    /// How much memory loaded ready messages may hold before more are paged out (local to
    /// one node: memory pressure).
    SetMemoryBudget(usize),
    /// The runtime stored the content of ready message `seq` at `place`, as
    /// [`super::Effect::PageOut`] asked. Answers [`Reply::PagedOut`]: false if the message left
    /// meanwhile (the runtime then releases what it wrote).
    PagedOut { seq: Seq, priority: u8, place: u64 },
    /// Contents read back, as [`super::Effect::ReadBack`] asked; `None` for a message that
    /// could not be read (it leaves the queue rather than block it).
    Loaded(Vec<(Seq, Paged, Option<Arc<Message>>)>),
}

impl Command {
    /// Commands that may overtake publishes already waiting: their outcome does not depend
    /// on whether those publishes were applied first. (`Get`, `Declared`, `Purge` and
    /// `Delete` must see every earlier publish of their caller, so they queue behind them.)
    pub fn may_overtake_publishes(&self) -> bool {
        matches!(
            self,
            Command::Settle { .. }
                | Command::Consume(_)
                | Command::Cancel(_)
                | Command::Written { .. }
                | Command::Grant { .. }
                | Command::SessionClosed(_)
                | Command::SetArgs(_)
        )
    }
}

/// One publish as a queue receives it. `confirm` is set when the publisher waits for this
/// queue's answer (see [`super::QueueMachine::answers_confirm`]).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub message: Arc<Message>,
    pub confirm: Option<ConfirmId>,
}

/// How a settlement disposes of the deliveries it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Positive acknowledgement: the messages leave the queue.
    Ack,
    /// Back to their original place, marked redelivered.
    Requeue,
    /// Rejected without requeue: they die (dead-lettered with reason `rejected`).
    Discard,
}

impl Settlement {
    /// What a `basic.reject` / `basic.nack` asks for.
    pub fn rejected(requeue: bool) -> Settlement {
        if requeue {
            Settlement::Requeue
        } else {
            Settlement::Discard
        }
    }
}

/// A change of a consumer's session credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// `n` more deliveries.
    Add(u32),
    /// Give back whatever credit is unused ([`super::Effect::CreditReturned`]).
    Reclaim,
    /// From now on limited by session credit, holding none.
    Limit,
    /// From now on not limited by its session.
    Unlimited,
}

/// What a subscription asks of a queue.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub id: ConsumerId,
    pub tag: ShortStr,
    pub session: SessionId,
    pub no_ack: bool,
    /// Manual-ack deliveries it may hold unsettled; 0 = unlimited.
    pub prefetch: u16,
    pub exclusive: bool,
    /// `x-priority`: consumers of a higher priority are served first while they have credit.
    pub priority: i64,
    /// Deliveries it may have in flight to its session before they are reported written.
    pub window: u32,
    /// `Some(n)`: limited by session credit, starting with `n` (see the module docs); `None`:
    /// not. Never applies to a no-ack consumer.
    pub session_credit: Option<u32>,
}

/// A queue's answer to one command.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Nothing to answer.
    Done,
    Consumed(Result<(), BrokerError>),
    /// `basic.get`: the message and how many remain ready after it, or nothing.
    Got(Option<GetOk>),
    Purged(usize),
    Declared(QueueStats),
    /// The ready messages dropped, or why the queue was not deleted.
    Deleted(Result<usize, BrokerError>),
    PagedOut(bool),
    /// The queue was deleted before this command.
    Gone,
}

#[derive(Debug, Clone)]
pub struct GetOk {
    pub delivery: Delivery,
    /// Ready messages left after this one.
    pub remaining: usize,
}

/// Counts for `queue.declare-ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub messages: u32,
    pub consumers: u32,
}
