//! The task that owns one queue: it applies the commands connections send it, in batches,
//! then hands ready messages to consumers through their connections' outbound channels.
//!
//! Commands arrive on a bounded channel, so a publisher faster than the queue waits on
//! `send` and stops reading its socket (TCP backpressure). The queue never waits on a
//! connection: deliveries go out on unbounded channels whose depth the consumers' credit
//! bounds (see `warren_core::queue`).
//!
//! The queue's rules (TTL, length limits, priorities, delivery limits, consumer choice) live
//! in `warren_core::queue::QueueState`; this task gives it the time when a rule needs it (a
//! wall clock in ms, read only for queues and messages with a TTL or `x-expires`), wakes up
//! at the next deadline even when no command arrives, and dead-letters what dies
//! (`dead_letter`). `stored` is how messages are kept in the log.

mod dead_letter;
mod dedup;
pub mod delay_store;
mod paging;
mod policy;
mod stored;

use crate::durability::blocking;
use crate::vhost::VHost;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::error;
use warren_amqp::ShortStr;
use warren_core::args::QueueArgs;
use warren_core::dedup::QueueDedup;
use warren_core::entity::QueueMeta;
use warren_core::queue::{
    ChannelKey, ConsumerId, ConsumerSpec, Delivery, Enqueued, QueueState, Queued, Seq,
};
use warren_core::{AmqpError, Message};
use warren_store::{QueueLog, RecoveredMessage, Spill};

/// Commands waiting for a queue before its publishers are made to wait.
const INBOX_CAPACITY: usize = 1024;
/// Body bytes of the publishes waiting for a queue before its publishers are made to wait
/// (with large messages, the command count alone would let hundreds of MiB wait).
pub const INBOX_BYTES: usize = 8 << 20;
/// Commands a queue applies before it dispatches.
const BATCH: usize = 128;
/// How long acks may wait in the log's buffers before a sync (a crash may bring back an
/// ack this recent; confirms never wait for this).
const ACK_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// How a queue reaches a consumer's connection.
pub type Sink = mpsc::UnboundedSender<Outbound>;

/// What queues send to a connection.
#[derive(Debug)]
pub enum Outbound {
    Deliveries(Vec<OutDelivery>),
    /// The queue was deleted under this consumer (RabbitMQ's server-sent `basic.cancel`).
    Cancelled {
        channel: u16,
        consumer: ConsumerId,
    },
    /// Publishes the queue has dealt with (channel, publish seq): on disk or enqueued (`ok`),
    /// or not stored or refused at the queue's length limit (`!ok`, a `basic.nack`).
    Confirmed {
        ok: bool,
        publishes: Vec<(u16, u64)>,
    },
    /// A direct reply-to reply for this connection's reply consumer on `channel`, routed by
    /// another connection (see `connection::reply_to`); `caller` names that consumer.
    DirectReply {
        channel: u16,
        caller: u64,
        message: Arc<Message>,
    },
}

/// One message for a queue. `confirm` names the channel and publish sequence number to
/// confirm once the queue has dealt with the message: set for the publishes
/// [`QueueHandle::answers_confirm`] names (persistent messages to durable queues, confirmed
/// once on disk; any message to a queue that may refuse it, nacked if it does).
pub struct Publish {
    pub message: Arc<Message>,
    pub confirm: Option<(u16, u64)>,
}

#[derive(Debug)]
pub struct OutDelivery {
    pub channel: u16,
    pub consumer: ConsumerId,
    pub delivery: Delivery,
}

pub struct QueueStats {
    pub messages: u32,
    pub consumers: u32,
}

pub enum QueueCmd {
    /// `sink` is where confirms go, when any publish asks for one. `permit` holds the
    /// batch's share of [`INBOX_BYTES`] until the queue has taken it.
    Publish {
        batch: Vec<Publish>,
        sink: Option<Sink>,
        permit: Option<OwnedSemaphorePermit>,
    },
    /// Replies once everything appended so far is on disk (`tx.commit`).
    Sync {
        reply: oneshot::Sender<bool>,
    },
    Consume {
        spec: ConsumerSpec<Sink>,
        reply: oneshot::Sender<Result<(), AmqpError>>,
    },
    Cancel {
        consumer: ConsumerId,
        reply: oneshot::Sender<()>,
    },
    Get {
        owner: ChannelKey,
        no_ack: bool,
        reply: oneshot::Sender<Option<(Delivery, usize)>>,
    },
    Ack(Vec<Seq>),
    Requeue(Vec<Seq>),
    Discard(Vec<Seq>),
    Credit {
        consumer: ConsumerId,
        n: u32,
    },
    /// Channel credit was released; consumers blocked on it may take messages again.
    Dispatch,
    ChannelClosed {
        owner: ChannelKey,
        reply: Option<oneshot::Sender<()>>,
    },
    Purge {
        reply: oneshot::Sender<usize>,
    },
    /// Counts for `queue.declare-ok`; like RabbitMQ's declare, this counts as a use of the
    /// queue (it postpones `x-expires`).
    Stats {
        reply: oneshot::Sender<QueueStats>,
    },
    Delete {
        if_unused: bool,
        if_empty: bool,
        reply: oneshot::Sender<Result<usize, AmqpError>>,
    },
    /// The broker is stopping: sync the log and end the task (the queue stays on disk).
    Stop {
        reply: oneshot::Sender<()>,
    },
    /// The queue's effective settings changed (a policy was set or cleared; see `policy`).
    SetArgs(QueueArgs),
}

impl QueueCmd {
    /// Commands that may overtake publishes already waiting: none of them depends on
    /// whether those publishes were applied. (`Get`, `Stats`, `Purge`, `Delete` and `Sync`
    /// must see every earlier publish of their connection, so they queue behind them.)
    fn is_control(&self) -> bool {
        matches!(
            self,
            QueueCmd::Ack(_)
                | QueueCmd::Requeue(_)
                | QueueCmd::Discard(_)
                | QueueCmd::Credit { .. }
                | QueueCmd::Dispatch
                | QueueCmd::Consume { .. }
                | QueueCmd::Cancel { .. }
                | QueueCmd::ChannelClosed { .. }
                | QueueCmd::SetArgs(_)
        )
    }
}

/// A queue as the rest of the broker sees it: its definition and its inbox.
pub struct QueueHandle {
    pub id: u64,
    pub meta: QueueMeta,
    /// The message log of a durable queue (persistent messages survive restarts).
    pub log_id: Option<u64>,
    pub vhost: String,
    /// The queue may refuse publishes (`x-overflow` = `reject-publish(-dlx)` with a limit).
    /// Policies change it while the queue runs (see `policy`).
    may_refuse: AtomicBool,
    /// Not a queue but a delayed exchange's store of held messages (see `delay_store`).
    pub delay_store: bool,
    /// Publishes and the commands that must see them in order (bounded: backpressure).
    inbox: mpsc::Sender<QueueCmd>,
    inbox_bytes: Arc<Semaphore>,
    /// Consumer-side commands (acks, credit, consume, cancel, channel close), served before
    /// publishes so that a flood of publishes never starves the consumers that drain the
    /// queue. Unbounded, but bounded in practice: acks by prefetch, the rest by callers
    /// that wait for replies.
    control: mpsc::UnboundedSender<QueueCmd>,
}

impl QueueHandle {
    /// `queue 'q' in vhost '/'`, for error texts.
    pub fn describe(&self) -> String {
        if self.delay_store {
            return format!(
                "delayed messages of exchange '{}' in vhost '{}'",
                self.meta.name, self.vhost
            );
        }
        format!("queue '{}' in vhost '{}'", self.meta.name, self.vhost)
    }

    pub fn name(&self) -> &ShortStr {
        &self.meta.name
    }

    /// True if persistent messages routed here are written to disk before they are confirmed.
    pub fn persists(&self) -> bool {
        self.log_id.is_some()
    }

    /// True if a publisher confirm for `message` must wait for this queue's answer: the queue
    /// writes it to disk first, or may refuse it (`basic.nack`).
    pub fn answers_confirm(&self, message: &Message) -> bool {
        (self.persists() && message.is_persistent()) || self.may_refuse.load(Ordering::Relaxed)
    }

    /// Hands dead-lettered messages to this queue without ever waiting (see
    /// `queue_task::dead_letter`); false if the queue is gone.
    pub fn publish_dead_letters(&self, batch: Vec<Publish>) -> bool {
        self.control
            .send(QueueCmd::Publish {
                batch,
                sink: None,
                permit: None,
            })
            .is_ok()
    }

    /// Sends a batch of publishes, first waiting until the queue's inbox has room for their
    /// bytes; false if the queue is gone.
    pub async fn publish(&self, batch: Vec<Publish>, sink: Option<Sink>) -> bool {
        let bytes: usize = batch.iter().map(|p| p.message.body_size()).sum();
        // A batch larger than the whole allowance waits for all of it.
        let bytes = bytes.min(INBOX_BYTES) as u32;
        let Ok(permit) = self.inbox_bytes.clone().acquire_many_owned(bytes).await else {
            return false;
        };
        let permit = Some(permit);
        self.send(QueueCmd::Publish {
            batch,
            sink,
            permit,
        })
        .await
    }

    /// Sends a command; false if the queue is gone (deleted meanwhile).
    pub async fn send(&self, cmd: QueueCmd) -> bool {
        if cmd.is_control() {
            self.control.send(cmd).is_ok()
        } else {
            self.inbox.send(cmd).await.is_ok()
        }
    }

    /// Sends a command that carries a reply channel and waits for the reply; `None` if the
    /// queue is gone.
    pub async fn call<R>(&self, make: impl FnOnce(oneshot::Sender<R>) -> QueueCmd) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)).await {
            return None;
        }
        rx.await.ok()
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

/// Creates the queue and starts its task. A durable queue comes with its message log; a
/// recovered one gets its messages back from it (only the first memory budget's worth
/// loaded, see `paging`). The arguments were validated at declare time
/// ([`QueueArgs::from_declaration`]); recovered definitions that no longer pass are run as
/// plain queues, with an error logged. Fails only if the log cannot be recovered.
pub fn spawn(
    id: u64,
    meta: QueueMeta,
    vhost: &Arc<VHost>,
    log: Option<LogSource>,
) -> Result<QueueRef, warren_store::StoreError> {
    let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let log_id = match &log {
        Some(LogSource::New(id, _) | LogSource::Recover(id)) => Some(*id),
        None => None,
    };
    let args = QueueArgs::from_declaration(&meta, &vhost.name).unwrap_or_else(|e| {
        error!(
            "queue '{}' in vhost '{}': arguments ignored: {}",
            meta.name, vhost.name, e.text
        );
        QueueArgs::default()
    });
    let args = vhost.queue_args_with_policy(&meta, args);
    let may_refuse = AtomicBool::new(args.may_refuse_publishes());
    let queue = QueueRef(Arc::new(QueueHandle {
        id,
        meta,
        log_id,
        vhost: vhost.name.clone(),
        may_refuse,
        delay_store: false,
        inbox: tx,
        inbox_bytes: Arc::new(Semaphore::new(INBOX_BYTES)),
        control: control_tx,
    }));
    let mut dedup = args.deduplication.then(QueueDedup::new);
    let mut state = QueueState::with_args(args);
    let paging = vhost.durability().map(|d| PagingHandle {
        budget: d.paging.budget,
        pressure_rx: d.paging.pressure.subscribe(),
        spill_path: d.paging.spill_path(),
    });
    let log = match log {
        None => None,
        Some(LogSource::New(_, log)) => Some(log),
        Some(LogSource::Recover(log_id)) => {
            let durability = vhost
                .durability()
                .expect("a recovered queue's vhost is durable");
            let budget = paging.as_ref().map_or(usize::MAX, |p| p.budget);
            let mut now = None;
            let (log, report) = durability.recover_queue_log(log_id, |r| {
                restore_one(&mut state, &mut dedup, r, budget, &mut now)
            })?;
            crate::durability::log_recovery(&queue.meta.name, &report);
            Some(log)
        }
    };
    if state.args().expires_ms.is_some() {
        state.touch(wall_clock_ms());
    }
    if let Some(log) = &log {
        state.continue_after(log.next_seq());
    }
    let pressure_rx = paging.as_ref().map(|p| p.pressure_rx.clone());
    let mut task = QueueTask {
        queue: queue.clone(),
        vhost: Arc::downgrade(vhost),
        state,
        had_consumer: false,
        deleted: false,
        log,
        log_dirty: false,
        last_sync: Instant::now(),
        unsynced_confirms: Vec::new(),
        cycles_warned: HashSet::new(),
        paging,
        spill: None,
        spill_warned: false,
        stopped: false,
        dedup,
    };
    task.state.set_memory_budget(task.wanted_budget());
    tokio::spawn(task.run(rx, control_rx, pressure_rx));
    Ok(queue)
}

/// Puts back one recovered message: loaded while the queue is under `budget`, else as an
/// index entry read back from the log later. Loaded ones are copied out of the segment's
/// read buffer, so that they do not keep the whole buffer alive.
fn restore_one(
    state: &mut QueueState<Sink>,
    dedup: &mut Option<QueueDedup>,
    r: RecoveredMessage,
    budget: usize,
    now: &mut Option<u64>,
) {
    let (message, enqueued_ms) = stored::restored(r.message);
    // Stored without an enqueue time but under a TTL now: the TTL starts over.
    let enqueued_ms = enqueued_ms.unwrap_or_else(|| {
        if state.needs_time(&message) {
            *now.get_or_insert_with(wall_clock_ms)
        } else {
            0
        }
    });
    dedup::restore_key(
        dedup,
        r.seq,
        &message,
        state.deadline(&message, enqueued_ms),
    );
    let (message, paged_at) = if state.loaded_bytes() + message.footprint() > budget {
        (message, Some(paging::IN_LOG))
    } else {
        (stored::detached(message), None)
    };
    state.restore(
        r.seq,
        Arc::new(message),
        r.redelivered,
        enqueued_ms,
        paged_at,
    );
}

/// A queue task's view of the broker's paging settings.
struct PagingHandle {
    budget: usize,
    pressure_rx: watch::Receiver<bool>,
    spill_path: PathBuf,
}

/// Wall-clock milliseconds since the Unix epoch: message deadlines are kept in it because
/// they outlive the process (stored enqueue times), and `x-death` records it.
pub(crate) fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn persistent_seq(q: &Queued, out: &mut Vec<Seq>) {
    if q.content.is_persistent() {
        out.push(q.seq);
    }
}

struct QueueTask {
    queue: QueueRef,
    vhost: Weak<VHost>,
    state: QueueState<Sink>,
    had_consumer: bool,
    deleted: bool,
    /// The message log (durable queues only).
    log: Option<QueueLog>,
    /// Appends or acks are buffered in the log but not yet synced.
    log_dirty: bool,
    last_sync: Instant,
    /// Confirms (and `tx.commit` replies) waiting for the next sync.
    unsynced_confirms: Vec<PendingConfirm>,
    /// Destination queues a dead-letter cycle was already reported for.
    cycles_warned: HashSet<u64>,
    /// Paging settings (`None` without a data directory: nothing is paged).
    paging: Option<PagingHandle>,
    /// Where paged-out messages without a log copy go (created on first use).
    spill: Option<Spill>,
    spill_warned: bool,
    /// The broker is stopping: the task ends after this batch.
    stopped: bool,
    /// The keys of the messages in a deduplicating queue (`dedup`).
    dedup: Option<QueueDedup>,
}

/// Why the queue task woke up.
enum Wake {
    /// This many commands arrived (0: every sender is gone).
    Commands(usize),
    /// Memory pressure changed.
    Pressure,
}

enum PendingConfirm {
    Publishes(Sink, Vec<(u16, u64)>),
    Sync(oneshot::Sender<bool>),
}

impl PendingConfirm {
    /// Tells the waiting publisher (or `tx.commit`) whether its messages are on disk.
    fn answer(self, ok: bool) {
        match self {
            PendingConfirm::Publishes(sink, publishes) => {
                let _ = sink.send(Outbound::Confirmed { ok, publishes });
            }
            PendingConfirm::Sync(reply) => {
                let _ = reply.send(ok);
            }
        }
    }
}

impl QueueTask {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<QueueCmd>,
        mut control: mpsc::UnboundedReceiver<QueueCmd>,
        mut pressure: Option<watch::Receiver<bool>>,
    ) {
        let mut cmds = Vec::with_capacity(BATCH);
        let mut control_cmds = Vec::new();
        while !self.deleted {
            // Consumer-side commands first, then a batch of publishes. A change of memory
            // pressure wakes the queue too (it may have to page out).
            let next = async {
                tokio::select! {
                    biased;
                    n = control.recv_many(&mut control_cmds, BATCH) => Wake::Commands(n),
                    n = inbox.recv_many(&mut cmds, BATCH) => Wake::Commands(n),
                    Ok(()) = async {
                        match pressure.as_mut() {
                            Some(p) => p.changed().await,
                            None => std::future::pending().await,
                        }
                    } => Wake::Pressure,
                }
            };
            let wake = match self.next_wake() {
                // A deadline comes up even if nothing arrives: buffered acks to sync, a TTL,
                // the queue's own expiry.
                Some(wait) => match tokio::time::timeout(wait, next).await {
                    Ok(w) => w,
                    Err(_) => {
                        self.on_timer();
                        continue;
                    }
                },
                None => next.await,
            };
            let received = match wake {
                Wake::Commands(n) => n,
                Wake::Pressure => {
                    self.adjust_budget();
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            // Control commands that arrived meanwhile go before the publishes just taken.
            while control_cmds.len() < BATCH {
                match control.try_recv() {
                    Ok(cmd) => control_cmds.push(cmd),
                    Err(_) => break,
                }
            }
            for cmd in control_cmds.drain(..).chain(cmds.drain(..)) {
                self.apply(cmd);
                if self.deleted || self.stopped {
                    break;
                }
            }
            if self.deleted || self.stopped {
                break;
            }
            self.expire();
            self.dispatch();
            self.bury();
            // Group commit: one sync covers every persistent publish of the batch. Confirms
            // wait only for the appends; acks and delivery marks ride on the next full sync.
            if self.log_dirty {
                if self.last_sync.elapsed() >= ACK_SYNC_INTERVAL {
                    self.sync();
                } else if !self.unsynced_confirms.is_empty() {
                    self.sync_appends();
                }
            }
        }
        // Commands still queued find the queue gone: dropping their reply senders tells
        // their callers so.
        inbox.close();
    }

    /// How long until the next deadline: buffered acks to sync, the head message's TTL (the
    /// millisecond after its deadline), the queue's `x-expires`. Reads the clock only when the
    /// queue has one of the latter two.
    fn next_wake(&self) -> Option<Duration> {
        let ack_sync = self
            .log_dirty
            .then(|| ACK_SYNC_INTERVAL.saturating_sub(self.last_sync.elapsed()));
        let expiry = self.state.next_expiry_ms().map(|d| d.saturating_add(1));
        let deadline_ms = match (expiry, self.state.unused_deadline_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timer = deadline_ms.map(|d| Duration::from_millis(d.saturating_sub(wall_clock_ms())));
        match (ack_sync, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timer(&mut self) {
        if self
            .state
            .unused_deadline_ms()
            .is_some_and(|d| d <= wall_clock_ms())
        {
            self.delete();
            return;
        }
        self.expire();
        self.dispatch();
        self.bury();
        if self.log_dirty && self.last_sync.elapsed() >= ACK_SYNC_INTERVAL {
            self.sync();
        }
    }

    /// Gives the queue the time if a head message has a deadline, so expired messages leave
    /// (and are never handed out).
    fn expire(&mut self) {
        if self.state.next_expiry_ms().is_some() {
            self.state.expire(wall_clock_ms());
        }
    }

    /// `x-expires` counts from the queue's last use.
    fn touch(&mut self) {
        if self.state.args().expires_ms.is_some() {
            self.state.touch(wall_clock_ms());
        }
    }

    fn apply(&mut self, cmd: QueueCmd) {
        match cmd {
            QueueCmd::Publish { batch, sink, .. } => self.publish(batch, sink),
            QueueCmd::Sync { reply } => {
                if self.log_dirty {
                    self.unsynced_confirms.push(PendingConfirm::Sync(reply));
                } else {
                    let _ = reply.send(true);
                }
            }
            QueueCmd::Consume { spec, reply } => {
                let result = self.state.add_consumer(spec, &self.queue.describe());
                if result.is_ok() {
                    self.had_consumer = true;
                }
                self.touch();
                let _ = reply.send(result);
            }
            QueueCmd::Cancel { consumer, reply } => {
                self.state.cancel_consumer(consumer);
                if self.state.consumer_count() == 0 {
                    self.touch();
                }
                // Decide auto-deletion before replying, so the canceller's next command
                // already finds the queue gone.
                self.maybe_auto_delete();
                let _ = reply.send(());
            }
            QueueCmd::Get {
                owner,
                no_ack,
                reply,
            } => {
                self.touch();
                self.expire();
                self.read_ahead(1);
                let got = self.state.get(owner, no_ack);
                if let Some((d, _)) = &got {
                    if no_ack {
                        self.dedup_release([d.seq]);
                    }
                    if d.message.is_persistent() {
                        if no_ack {
                            self.forget(&[d.seq]);
                        } else if !d.redelivered {
                            self.mark_delivered(&[d.seq]);
                        }
                    }
                }
                let _ = reply.send(got);
            }
            QueueCmd::Ack(seqs) => {
                let (mut gone, mut left) = (Vec::new(), Vec::new());
                let dedup = self.dedup.is_some();
                self.state.ack(&seqs, |q| {
                    persistent_seq(q, &mut gone);
                    if dedup {
                        left.push(q.seq);
                    }
                });
                self.forget(&gone);
                self.dedup_release(left);
            }
            QueueCmd::Requeue(seqs) => self.state.requeue(&seqs),
            // The messages die (reason `rejected`): `bury` deals with them after the batch.
            QueueCmd::Discard(seqs) => self.state.discard(&seqs),
            QueueCmd::Credit { consumer, n } => self.state.credit(consumer, n),
            QueueCmd::Dispatch => {}
            QueueCmd::ChannelClosed { owner, reply } => {
                self.state.channel_closed(owner);
                if self.state.consumer_count() == 0 {
                    self.touch();
                }
                self.maybe_auto_delete();
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
            }
            QueueCmd::Purge { reply } => {
                let (mut gone, mut paged, mut left) = (Vec::new(), Vec::new(), Vec::new());
                let n = self.state.purge(|q| {
                    persistent_seq(q, &mut gone);
                    paged.extend(q.content.paged());
                    left.push(q.seq);
                });
                self.forget(&gone);
                self.dedup_release(left);
                for p in paged {
                    self.release(p);
                }
                let _ = reply.send(n);
            }
            QueueCmd::Stats { reply } => {
                // A declaration (passive or not) counts as use, as in RabbitMQ.
                self.touch();
                let _ = reply.send(QueueStats {
                    messages: self.state.message_count() as u32,
                    consumers: self.state.consumer_count() as u32,
                });
            }
            QueueCmd::Stop { reply } => {
                if self.log_dirty {
                    self.sync();
                }
                self.stopped = true;
                let _ = reply.send(());
            }
            QueueCmd::Delete {
                if_unused,
                if_empty,
                reply,
            } => {
                if if_unused && self.state.consumer_count() > 0 {
                    let _ = reply.send(Err(AmqpError::precondition(format!(
                        "{} in use",
                        self.queue.describe()
                    ))));
                } else if if_empty && self.state.message_count() > 0 {
                    let _ = reply.send(Err(AmqpError::precondition(format!(
                        "{} not empty",
                        self.queue.describe()
                    ))));
                } else {
                    let count = self.delete();
                    let _ = reply.send(Ok(count));
                }
            }
            QueueCmd::SetArgs(args) => self.set_args(args),
        }
    }

    /// Enqueues a batch of publishes. Confirms: a refused message is nacked at once; a
    /// persistent one in a durable queue waits for the next sync; others are acked at once.
    fn publish(&mut self, batch: Vec<Publish>, sink: Option<Sink>) {
        let (mut synced, mut acked, mut nacked) = (Vec::new(), Vec::new(), Vec::new());
        let mut now = None;
        for p in batch {
            let timed = self.state.needs_time(&p.message);
            let now_ms = if timed {
                *now.get_or_insert_with(wall_clock_ms)
            } else {
                0
            };
            // A duplicate is dropped, and dealt with as far as its publisher is concerned.
            let Ok(key) = self.dedup_check(&p.message) else {
                acked.extend(p.confirm);
                continue;
            };
            let seq = match self.state.publish(p.message.clone(), now_ms) {
                Enqueued::Accepted(seq) => seq,
                Enqueued::Refused => {
                    nacked.extend(p.confirm);
                    continue;
                }
            };
            if let Some(key) = key {
                self.dedup_enqueued(key, seq, &p.message, now_ms);
            }
            let in_log = match self.log.as_mut().filter(|_| p.message.is_persistent()) {
                Some(log) => {
                    let written =
                        log.append(seq, &stored::stored(&p.message, timed.then_some(now_ms)));
                    if let Err(e) = &written {
                        error!("{}: cannot write message: {e}", self.queue.describe());
                    }
                    self.log_dirty = true;
                    synced.extend(p.confirm);
                    written.is_ok()
                }
                None => {
                    acked.extend(p.confirm);
                    false
                }
            };
            self.page_if_over_budget(seq, &p.message, in_log);
            // Messages this publish pushed out free their keys before the next publish.
            if self.dedup.is_some() && self.state.has_dead() {
                self.bury();
            }
        }
        let Some(sink) = sink else { return };
        for (ok, publishes) in [(false, nacked), (true, acked)] {
            if !publishes.is_empty() {
                let _ = sink.send(Outbound::Confirmed { ok, publishes });
            }
        }
        if !synced.is_empty() {
            self.unsynced_confirms
                .push(PendingConfirm::Publishes(sink, synced));
        }
    }

    /// Hands ready messages to consumers, reading paged ones back ahead of delivery.
    fn dispatch(&mut self) {
        loop {
            if self.state.consumer_count() > 0 {
                self.read_ahead(paging::READ_AHEAD);
            }
            let delivered = self.dispatch_loaded();
            // Dispatch stops at a paged head: read further and go on while it delivers.
            if delivered == 0 || !self.state.head_is_paged() {
                break;
            }
        }
    }

    /// Hands loaded ready messages to consumers; returns how many.
    fn dispatch_loaded(&mut self) -> usize {
        let mut batches: Vec<(u64, Sink, Vec<OutDelivery>)> = Vec::new();
        let (mut gone, mut delivered, mut auto_acked) = (Vec::new(), Vec::new(), Vec::new());
        let durable = self.log.is_some();
        let dedup = self.dedup.is_some();
        let count = self.state.dispatch(|spec, delivery| {
            if dedup && spec.no_ack {
                auto_acked.push(delivery.seq);
            }
            if durable && delivery.message.is_persistent() {
                if spec.no_ack {
                    gone.push(delivery.seq);
                } else if !delivery.redelivered {
                    delivered.push(delivery.seq);
                }
            }
            let conn = spec.owner.connection;
            let slot = match batches.iter().position(|(c, _, _)| *c == conn) {
                Some(i) => i,
                None => {
                    batches.push((conn, spec.sink.clone(), Vec::new()));
                    batches.len() - 1
                }
            };
            batches[slot].2.push(OutDelivery {
                channel: spec.owner.channel,
                consumer: spec.id,
                delivery,
            });
        });
        for (_, sink, deliveries) in batches {
            // A closed connection's deliveries come back through `ChannelClosed`.
            let _ = sink.send(Outbound::Deliveries(deliveries));
        }
        self.forget(&gone);
        self.mark_delivered(&delivered);
        self.dedup_release(auto_acked);
        count
    }

    /// Records in the log that these persistent messages left the queue.
    fn forget(&mut self, seqs: &[Seq]) {
        if let (Some(log), false) = (self.log.as_mut(), seqs.is_empty()) {
            if let Err(e) = log.ack(seqs) {
                error!("{}: cannot record acks: {e}", self.queue.describe());
            }
            self.log_dirty = true;
        }
    }

    /// Records that these persistent messages were handed out, so that after a restart they
    /// come back flagged redelivered.
    fn mark_delivered(&mut self, seqs: &[Seq]) {
        if let (Some(log), false) = (self.log.as_mut(), seqs.is_empty()) {
            if let Err(e) = log.mark_delivered(seqs) {
                error!("{}: cannot record deliveries: {e}", self.queue.describe());
            }
            self.log_dirty = true;
        }
    }

    /// Makes the log durable (appends, acks and delivery marks), then sends the confirms
    /// that waited for it.
    fn sync(&mut self) {
        self.sync_log(true);
    }

    /// Makes the log's appends durable, then sends the confirms that waited for them; acks
    /// and delivery marks stay buffered for the next full [`QueueTask::sync`] (within
    /// `ACK_SYNC_INTERVAL`).
    fn sync_appends(&mut self) {
        self.sync_log(false);
    }

    fn sync_log(&mut self, full: bool) {
        let ok = match self.log.as_mut() {
            Some(log) => match blocking(|| if full { log.sync() } else { log.sync_appends() }) {
                Ok(()) => true,
                Err(e) => {
                    error!(
                        "{}: cannot sync its message log: {e}",
                        self.queue.describe()
                    );
                    false
                }
            },
            None => true,
        };
        if full {
            self.log_dirty = false;
            self.last_sync = Instant::now();
        }
        self.send_confirms(ok);
    }

    fn send_confirms(&mut self, ok: bool) {
        for pending in self.unsynced_confirms.drain(..) {
            pending.answer(ok);
        }
    }

    /// An auto-delete queue goes when its last consumer does (not before it ever had one).
    fn maybe_auto_delete(&mut self) {
        if self.queue.meta.auto_delete
            && self.had_consumer
            && self.state.consumer_count() == 0
            && !self.deleted
        {
            self.delete();
        }
    }

    /// Deletes the queue: cancels its consumers, removes it and its bindings from the vhost.
    /// Returns the number of ready messages dropped.
    fn delete(&mut self) -> usize {
        let count = self.state.message_count();
        for spec in self.state.drain_consumers() {
            let _ = spec.sink.send(Outbound::Cancelled {
                channel: spec.owner.channel,
                consumer: spec.id,
            });
        }
        if let Some(vhost) = self.vhost.upgrade() {
            vhost.forget_queue(&self.queue);
        }
        if let Some(log) = self.log.take() {
            if let Err(e) = blocking(|| log.destroy()) {
                error!(
                    "{}: cannot remove its message log: {e}",
                    self.queue.describe()
                );
            }
        }
        if let Some(spill) = self.spill.take() {
            if let Err(e) = blocking(|| spill.destroy()) {
                error!("{}: cannot remove its spill: {e}", self.queue.describe());
            }
        }
        // Publishes waiting for a sync are dealt with: the queue they went to is gone.
        self.send_confirms(true);
        self.deleted = true;
        count
    }
}
