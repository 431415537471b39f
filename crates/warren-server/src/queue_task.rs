//! Queues as the rest of the broker reaches them: a [`QueueHandle`] (definition, inboxes)
//! shared as [`QueueRef`], the messages that travel to a queue task ([`QueueCmd`]: a core
//! [`Command`] and where to answer) and back to sessions ([`Outbound`]), and [`spawn`].
//!
//! One task per queue (`driver`) owns a `warren_core::queue::QueueMachine`, applies the
//! commands it receives in batches, and carries out the machine's effects: deliveries to
//! sessions, the message log and paging storage (`storage`), confirms, dead letters
//! (`dead_letter`). The rules are the machine's; this module only moves commands and bytes.
//!
//! Publishes arrive on a bounded inbox (a publisher faster than the queue waits on `send`
//! and stops reading its socket: TCP backpressure) that is also bounded in body bytes.
//! Consumer-side commands (settlements, credit, consume, cancel, session closed) travel on a
//! separate unbounded control channel that is served first, so publish floods never starve
//! the consumers that drain the queue. The queue never waits on a connection: deliveries go
//! out on unbounded channels whose depth the consumers' credit bounds.

mod dead_letter;
mod driver;
mod paging;
pub(crate) mod storage;
pub mod stored;

use crate::target::{QueueEvents, RoutesRef};
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use warren_amqp::ShortStr;
use warren_core::args::QueueArgs;
use warren_core::entity::QueueMeta;
use warren_core::queue::{
    answers_confirm, Command, ConfirmId, ConsumerId, ConsumerSpec, Delivery, GetOk, Incoming,
    QueueStats, Reply, SessionId,
};
use warren_core::{BrokerError, Message};
use warren_store::QueueLog;


/// Commands waiting for a queue before its publishers are made to wait.
pub(crate) const INBOX_CAPACITY: usize = 1024;
/// Body bytes of the publishes waiting for a queue before its publishers are made to wait
/// (with large messages, the command count alone would let hundreds of MiB wait).
pub const INBOX_BYTES: usize = 8 << 20;

/// How a queue reaches a session's connection.
pub type Sink = mpsc::UnboundedSender<Outbound>;

/// Where a queue answers the confirms of a batch of publishes: the publisher's connection
/// and which of its sessions published.
#[derive(Clone, Debug)]
pub struct ConfirmTo {
    pub sink: Sink,
    pub session: SessionId,
}

/// What queues (and delay stores) send to a session's connection.
#[derive(Debug)]
pub enum Outbound {
    Deliveries(Vec<OutDelivery>),
    /// The queue was deleted under this consumer (RabbitMQ's server-sent `basic.cancel`).
    Cancelled {
        session: SessionId,
        consumer: ConsumerId,
    },
    /// Publishes the queue has dealt with: taken (`ok`), or refused / not stored (`!ok`, a
    /// `basic.nack`).
    Confirmed {
        session: SessionId,
        ok: bool,
        ids: Vec<ConfirmId>,
    },
    /// A session-limited consumer's queue wants credit (`returned: None`) or gives back
    /// unused credit.
    Credit {
        session: SessionId,
        consumer: ConsumerId,
        returned: Option<u32>,
    },
    /// A direct reply-to reply for this connection's reply consumer on `channel`, routed by
    /// another connection (see `connection::reply_to`); `caller` names that consumer.
    DirectReply {
        channel: u16,
        caller: u64,
        message: Arc<Message>,
    },
}

#[derive(Debug)]
pub struct OutDelivery {
    pub session: SessionId,
    pub consumer: ConsumerId,
    pub delivery: Delivery,
}

/// What travels to a queue task.
pub enum QueueCmd {
    /// A command for the queue's machine, answered on `reply` if given.
    Apply {
        cmd: Command,
        reply: Option<oneshot::Sender<Reply>>,
    },
    /// A subscription: the machine's `Consume`, with where its session's deliveries go.
    Consume {
        spec: ConsumerSpec,
        sink: Sink,
        reply: oneshot::Sender<Result<(), BrokerError>>,
    },
    /// Publishes. `permit` holds the batch's share of [`INBOX_BYTES`] until the queue has
    /// taken it; `confirms` is where its confirms are answered.
    Enqueue {
        batch: Vec<Incoming>,
        confirms: Option<ConfirmTo>,
        permit: Option<OwnedSemaphorePermit>,
    },
    /// Replies once everything appended so far is on disk (`tx.commit`).
    Sync { reply: oneshot::Sender<bool> },
    /// The broker is stopping: sync the log and end the task (the queue stays on disk).
    Stop { reply: oneshot::Sender<()> },
    /// The queue's counts and counters, for the management API and metrics.
    Stats {
        reply: oneshot::Sender<crate::stats::QueueSnapshot>,
    },
}

impl QueueCmd {
    /// Commands that may overtake publishes already waiting (see
    /// `Command::may_overtake_publishes`).
    fn is_control(&self) -> bool {
        match self {
            QueueCmd::Apply { cmd, .. } => cmd.may_overtake_publishes(),
            QueueCmd::Consume { .. } | QueueCmd::Stats { .. } => true,
            QueueCmd::Enqueue { .. } | QueueCmd::Sync { .. } | QueueCmd::Stop { .. } => false,
        }
    }
}

/// A queue as the rest of the broker sees it: its definition and its inboxes.
pub struct QueueHandle {
    pub id: u64,
    pub meta: QueueMeta,
    /// The message log of a durable queue (persistent messages survive restarts).
    pub log_id: Option<u64>,
    pub vhost: String,
    /// The queue may refuse publishes (`x-overflow` = `reject-publish(-dlx)` with a limit).
    /// Policies change it while the queue runs (see [`QueueHandle::set_args`]).
    may_refuse: AtomicBool,
    /// Publishes and the commands that must see them in order (bounded: backpressure).
    inbox: mpsc::Sender<QueueCmd>,
    inbox_bytes: Arc<Semaphore>,
    /// Consumer-side commands, served before publishes. Unbounded, but bounded in practice:
    /// settlements by prefetch, the rest by callers that wait for replies.
    control: mpsc::UnboundedSender<QueueCmd>,
}

impl QueueHandle {
    /// `queue 'q' in vhost '/'`, for error texts.
    pub fn describe(&self) -> String {
        format!("queue '{}' in vhost '{}'", self.meta.name, self.vhost)
    }

    pub fn name(&self) -> &ShortStr {
        &self.meta.name
    }

    /// True if persistent messages routed here are written to disk before they are confirmed.
    pub fn persists(&self) -> bool {
        self.log_id.is_some()
    }

    /// True if a publisher confirm for `message` must wait for this queue's answer.
    pub fn answers_confirm(&self, message: &Message) -> bool {
        answers_confirm(
            self.persists(),
            self.may_refuse.load(Ordering::Relaxed),
            message,
        )
    }

    /// The queue's task has ended (deleted, or the broker is stopping).
    pub fn is_gone(&self) -> bool {
        self.control.is_closed()
    }

    /// Sends a batch of publishes, first waiting until the inbox has room for their bytes;
    /// false if the queue is gone.
    pub async fn publish(&self, batch: Vec<Incoming>, confirms: Option<ConfirmTo>) -> bool {
        let bytes: usize = batch.iter().map(|p| p.message.body_size()).sum();
        // A batch larger than the whole allowance waits for all of it.
        let bytes = bytes.min(INBOX_BYTES) as u32;
        let Ok(permit) = self.inbox_bytes.clone().acquire_many_owned(bytes).await else {
            return false;
        };
        self.inbox
            .send(QueueCmd::Enqueue {
                batch,
                confirms,
                permit: Some(permit),
            })
            .await
            .is_ok()
    }

    /// Hands publishes to the queue without ever waiting (dead letters, delayed messages
    /// released: a queue must never wait on another queue, see `queue_task::dead_letter`);
    /// false if the queue is gone.
    pub fn publish_now(&self, batch: Vec<Incoming>, confirms: Option<ConfirmTo>) -> bool {
        self.control
            .send(QueueCmd::Enqueue {
                batch,
                confirms,
                permit: None,
            })
            .is_ok()
    }

    /// Sends a command; false if the queue is gone.
    pub async fn send(&self, cmd: QueueCmd) -> bool {
        if cmd.is_control() {
            self.control.send(cmd).is_ok()
        } else {
            self.inbox.send(cmd).await.is_ok()
        }
    }

    /// Sends a machine command without waiting for an answer (settlements, credit).
    pub fn tell(&self, cmd: Command) -> bool {
        debug_assert!(cmd.may_overtake_publishes());
        self.control
            .send(QueueCmd::Apply { cmd, reply: None })
            .is_ok()
    }

    /// Applies a machine command and waits for its reply; `None` if the queue is gone.
    pub async fn ask(&self, cmd: Command) -> Option<Reply> {
        let (tx, rx) = oneshot::channel();
        if !self.send(QueueCmd::Apply { cmd, reply: Some(tx) }).await {
            return None;
        }
        match rx.await.ok()? {
            Reply::Gone => None,
            reply => Some(reply),
        }
    }

    /// Subscribes a consumer whose session's deliveries go to `sink`.
    pub async fn consume(&self, spec: ConsumerSpec, sink: Sink) -> Option<Result<(), BrokerError>> {
        let (tx, rx) = oneshot::channel();
        let cmd = QueueCmd::Consume {
            spec,
            sink,
            reply: tx,
        };
        if !self.send(cmd).await {
            return None;
        }
        rx.await.ok()
    }

    /// `queue.declare`'s counts (a use of the queue); `None` if it is gone.
    pub async fn declared(&self) -> Option<QueueStats> {
        match self.ask(Command::Declared).await? {
            Reply::Declared(stats) => Some(stats),
            _ => None,
        }
    }

    /// The queue's counts and counters now; `None` if it is gone. Answered between batches
    /// without waiting for publishes already queued.
    pub async fn stats(&self) -> Option<crate::stats::QueueSnapshot> {
        let (tx, rx) = oneshot::channel();
        if !self.send(QueueCmd::Stats { reply: tx }).await {
            return None;
        }
        rx.await.ok()
    }

    /// `basic.get` for `session`.
    pub async fn get(&self, session: SessionId, no_ack: bool) -> Option<Option<GetOk>> {
        match self.ask(Command::Get { session, no_ack }).await? {
            Reply::Got(got) => Some(got),
            _ => None,
        }
    }

    /// Purges the ready messages; how many (0 if the queue is gone).
    pub async fn purge(&self) -> usize {
        match self.ask(Command::Purge).await {
            Some(Reply::Purged(n)) => n,
            _ => 0,
        }
    }

    /// Deletes the queue; the ready messages dropped, or why not. A queue already gone
    /// counts as deleted (0 messages).
    pub async fn delete(&self, if_unused: bool, if_empty: bool) -> Result<usize, BrokerError> {
        match self
            .ask(Command::Delete {
                if_unused,
                if_empty,
            })
            .await
        {
            Some(Reply::Deleted(result)) => result,
            _ => Ok(0),
        }
    }

    /// Waits until everything appended so far is on disk; false if the log failed.
    pub async fn sync(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if !self.send(QueueCmd::Sync { reply: tx }).await {
            return true;
        }
        rx.await.unwrap_or(true)
    }

    /// The session ended: its consumers leave and its deliveries come back. Waits until the
    /// queue has done it, so that no delivery for the session is sent after this returns.
    pub async fn session_closed(&self, session: SessionId) {
        self.ask(Command::SessionClosed(session)).await;
    }

    /// Starts a queue recovered at start-up, once its vhost's bindings are back: `x-expires`
    /// counts from now, and messages whose TTL ran out while the broker was down leave (a
    /// queue declared at run time starts by itself).
    pub(crate) fn start(&self) {
        let cmd = Command::Declared;
        let _ = self.control.send(QueueCmd::Apply { cmd, reply: None });
    }

    /// Stops the task at shutdown (the queue stays on disk).
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(QueueCmd::Stop { reply: tx }).await {
            let _ = rx.await;
        }
    }

    /// Hands the queue new effective settings, without waiting (the vhost calls this under
    /// its definitions lock). If they may refuse publishes, publishers start asking this
    /// queue for their confirms at once, so that a refusal is answered with `basic.nack`;
    /// turning that off waits until the queue runs without the limit. A publish routed in the
    /// instant before this call and applied after the new settings could still be refused
    /// without a nack: the window is one publish batch of a connection racing the change.
    pub(crate) fn set_args(&self, args: QueueArgs) {
        if args.may_refuse_publishes() {
            self.may_refuse.store(true, Ordering::Relaxed);
        }
        // A queue that is gone has nothing to apply them to.
        self.tell(Command::SetArgs(args));
    }
}

/// Shared handle to a queue; equal, ordered and hashed by the queue's id so it can be a
/// routing destination.
#[derive(Clone)]
pub struct QueueRef(pub Arc<QueueHandle>);

impl Deref for QueueRef {
    type Target = QueueHandle;
    fn deref(&self) -> &QueueHandle {
        &self.0
    }
}
impl PartialEq for QueueRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for QueueRef {}
impl Hash for QueueRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state)
    }
}
impl PartialOrd for QueueRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for QueueRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.id.cmp(&other.0.id)
    }
}
impl std::fmt::Debug for QueueRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Queue({}#{})", self.0.meta.name, self.0.id)
    }
}

/// Where a durable queue's message log comes from.
pub enum LogSource {
    /// A new, empty log (a queue being declared).
    New(u64, QueueLog),
    /// The log of a queue restored at start-up: opened and recovered here.
    Recover(u64),
}

/// What a queue task needs from the broker besides its definition.
pub struct QueueEnv {
    /// The stores, for a vhost that keeps durable state.
    pub durability: Option<Arc<crate::durability::Durability>>,
    /// Routing for dead letters (the vhost's exchanges, read without a lock).
    pub routes: RoutesRef,
    /// Where the queue reports that it is gone.
    pub events: QueueEvents,
}

/// Creates the queue and starts its task. `args` are its effective settings (arguments under
/// the policy that applies). A durable queue comes with its message log; a recovered one gets
/// its messages back from it (only the first memory budget's worth loaded). Fails only if the
/// log cannot be recovered.
pub fn spawn(
    id: u64,
    meta: QueueMeta,
    vhost: &str,
    args: QueueArgs,
    log: Option<LogSource>,
    env: QueueEnv,
) -> Result<QueueRef, warren_store::StoreError> {
    let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let log_id = match &log {
        Some(LogSource::New(id, _) | LogSource::Recover(id)) => Some(*id),
        None => None,
    };
    let queue = QueueRef(Arc::new(QueueHandle {
        id,
        meta,
        log_id,
        vhost: vhost.to_string(),
        may_refuse: AtomicBool::new(args.may_refuse_publishes()),
        inbox: tx,
        inbox_bytes: Arc::new(Semaphore::new(INBOX_BYTES)),
        control: control_tx,
    }));
    driver::start(queue.clone(), args, log, env, rx, control_rx)?;
    Ok(queue)
}

/// A queue task's view of the broker's paging settings.
pub(crate) struct PagingHandle {
    pub budget: usize,
    pub pressure_rx: watch::Receiver<bool>,
    pub spill_path: PathBuf,
}

#[cfg(test)]
mod tests;
