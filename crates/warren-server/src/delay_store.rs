//! The delay store of an `x-delayed-message` exchange: a task that holds the exchange's
//! delayed messages (`warren_core::delayed::DelayStore`) and routes each through the
//! exchange when its `x-delay` is over, as the rabbitmq-delayed-message-exchange plugin does.
//!
//! It is a publish destination of its own kind ([`DelayRef`], `Target::Delay`): fed by the
//! same publisher batches as queues, answering publisher confirms the same way (a persistent
//! message held by a durable exchange is confirmed once it is in the store's log and the log
//! is synced) and `tx.commit`'s sync. Nothing consumes from it.
//!
//! One timer per store wakes it at the earliest due time (wall-clock ms, since due times
//! outlive the process). Due messages are routed through the exchange as it is then
//! (bindings, alternate exchange) by the store's own `Publisher`, and sent to their queues
//! without waiting (as dead letters are). A logged message is tracked by its number in the
//! store's log and acked there once every queue that took it has answered for it: a crash in
//! between routes it again after the restart (at-least-once; never lost). Routed nowhere, it
//! is dropped: there is no publisher left to return it to.
//!
//! Recovery: the log's messages come back with their publish time (the `stored` envelope), so
//! each is due `publish time + x-delay`; those whose delay ran out while the broker was down
//! are routed as soon as the store is started (after the vhost's bindings are restored).

use crate::clock::wall_clock_ms;
use crate::durability::blocking;
use crate::queue_task::storage::Log;
use crate::queue_task::{stored, ConfirmTo, Outbound, INBOX_BYTES, INBOX_CAPACITY};
use crate::target::{RoutesRef, Target};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::error;
use warren_amqp::ShortStr;
use warren_core::delayed::{DelayStore, Hold};
use warren_core::publish::Publisher;
use warren_core::queue::{ConfirmId, Incoming, SessionId};
use warren_core::Message;
use warren_store::{ExchangeDirs, QueueLog, RecoveredMessage};

/// Messages routed per wake-up, so that a burst of due messages does not keep the store from
/// taking new ones for long.
const RELEASE_BATCH: usize = 4096;
/// Commands taken per wake-up.
const BATCH: usize = 128;

enum DelayCmd {
    Hold {
        batch: Vec<Incoming>,
        confirms: Option<ConfirmTo>,
        _permit: Option<OwnedSemaphorePermit>,
    },
    Sync(oneshot::Sender<bool>),
    /// A store restored at start-up may route what is due.
    Start,
    /// The broker is stopping: sync and end (the store stays on disk).
    Stop(oneshot::Sender<()>),
    /// The exchange was deleted: drop what is held and the store's data.
    Destroy,
}

/// A delayed exchange's store as publishers see it.
pub struct DelayHandle {
    id: u64,
    exchange: ShortStr,
    vhost: String,
    /// Persistent messages are logged before they are confirmed (a durable exchange).
    persists: bool,
    inbox: mpsc::Sender<DelayCmd>,
    inbox_bytes: Arc<Semaphore>,
    control: mpsc::UnboundedSender<DelayCmd>,
}

/// Shared handle to a delay store, compared by id.
#[derive(Clone)]
pub struct DelayRef(Arc<DelayHandle>);

impl PartialEq for DelayRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for DelayRef {}
impl Hash for DelayRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state)
    }
}
impl PartialOrd for DelayRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DelayRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.id.cmp(&other.0.id)
    }
}
impl std::fmt::Debug for DelayRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DelayStore({}#{})", self.0.exchange, self.0.id)
    }
}

impl DelayRef {
    pub fn describe(&self) -> String {
        format!(
            "delayed messages of exchange '{}' in vhost '{}'",
            self.0.exchange, self.0.vhost
        )
    }

    pub fn persists(&self) -> bool {
        self.0.persists
    }

    pub fn answers_confirm(&self, message: &Message) -> bool {
        self.0.persists && message.is_persistent()
    }

    /// Sends a batch, waiting for room (backpressure); false if the store is gone.
    pub async fn publish(&self, batch: Vec<Incoming>, confirms: Option<ConfirmTo>) -> bool {
        let bytes: usize = batch.iter().map(|p| p.message.body_size()).sum();
        let bytes = bytes.min(INBOX_BYTES) as u32;
        let Ok(permit) = self.0.inbox_bytes.clone().acquire_many_owned(bytes).await else {
            return false;
        };
        let cmd = DelayCmd::Hold {
            batch,
            confirms,
            _permit: Some(permit),
        };
        self.0.inbox.send(cmd).await.is_ok()
    }

    /// Sends a batch without waiting (dead letters routed here); false if the store is gone.
    pub fn publish_now(&self, batch: Vec<Incoming>, confirms: Option<ConfirmTo>) -> bool {
        let cmd = DelayCmd::Hold {
            batch,
            confirms,
            _permit: None,
        };
        self.0.control.send(cmd).is_ok()
    }

    /// Waits until what was sent so far is on disk (`tx.commit`).
    pub async fn sync(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.0.inbox.send(DelayCmd::Sync(tx)).await.is_err() {
            return true;
        }
        rx.await.unwrap_or(true)
    }

    /// Lets a store restored at start-up route what is due.
    pub fn start(&self) {
        let _ = self.0.control.send(DelayCmd::Start);
    }

    /// Stops a store whose exchange was deleted: what it holds is dropped, its data removed.
    pub fn destroy(&self) {
        let _ = self.0.control.send(DelayCmd::Destroy);
    }

    /// Stops the store at shutdown (it stays on disk).
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.0.inbox.send(DelayCmd::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// What a delay store starts with.
pub struct DelaySpawn {
    pub id: u64,
    pub exchange: ShortStr,
    pub vhost: String,
    /// The store's log (a durable exchange) and what was recovered from it.
    pub log: Option<QueueLog>,
    pub recovered: Vec<RecoveredMessage>,
    /// The exchange's data directory, removed when the store is destroyed.
    pub dir: Option<PathBuf>,
    /// False at start-up, until [`DelayRef::start`].
    pub started: bool,
    pub routes: RoutesRef,
}

/// Starts a delayed exchange's store.
pub fn spawn(s: DelaySpawn) -> DelayRef {
    let (tx, inbox) = mpsc::channel(INBOX_CAPACITY);
    let (control_tx, control) = mpsc::unbounded_channel();
    let (confirms_tx, confirms) = mpsc::unbounded_channel();
    let handle = DelayRef(Arc::new(DelayHandle {
        id: s.id,
        exchange: s.exchange.clone(),
        vhost: s.vhost.clone(),
        persists: s.log.is_some(),
        inbox: tx,
        inbox_bytes: Arc::new(Semaphore::new(INBOX_BYTES)),
        control: control_tx,
    }));
    let next_seq = s.log.as_ref().map_or(1, QueueLog::next_seq);
    let mut store = DelayStore::new(s.log.is_some(), next_seq);
    let mut now = None;
    for r in s.recovered {
        let (message, published_ms) = stored::restored(r.message);
        let published_ms = published_ms.unwrap_or_else(|| *now.get_or_insert_with(wall_clock_ms));
        // Out of the segment's read buffer, which it would otherwise keep alive.
        store.restore(r.seq, Arc::new(stored::detached(message)), published_ms);
    }
    let mut publisher = Publisher::new();
    publisher.start_confirms();
    let task = DelayTask {
        log: Log::new(s.log, handle.describe()),
        handle: handle.clone(),
        exchange: s.exchange,
        store,
        routes: s.routes,
        publisher,
        routed: Vec::new(),
        confirms_to: ConfirmTo {
            sink: confirms_tx,
            session: SessionId(0),
        },
        dir: s.dir,
        started: s.started,
        stopped: false,
    };
    tokio::spawn(task.run(inbox, control, confirms));
    handle
}

struct DelayTask {
    handle: DelayRef,
    exchange: ShortStr,
    store: DelayStore,
    log: Log,
    routes: RoutesRef,
    /// Routes released messages; its confirms are keyed by the message's number in the log.
    publisher: Publisher<Target>,
    routed: Vec<Target>,
    /// Where destination queues answer for released messages.
    confirms_to: ConfirmTo,
    dir: Option<PathBuf>,
    started: bool,
    stopped: bool,
}

impl DelayTask {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<DelayCmd>,
        mut control: mpsc::UnboundedReceiver<DelayCmd>,
        mut confirms: mpsc::UnboundedReceiver<Outbound>,
    ) {
        let (mut control_cmds, mut cmds) = (Vec::new(), Vec::with_capacity(BATCH));
        while !self.stopped {
            let wait = self.next_wake();
            tokio::select! {
                biased;
                n = control.recv_many(&mut control_cmds, BATCH) => if n == 0 { break },
                Some(o) = confirms.recv() => self.on_answered(o),
                n = inbox.recv_many(&mut cmds, BATCH) => if n == 0 { break },
                _ = sleep(wait) => self.log.on_timer(),
            }
            let now = wall_clock_ms();
            for cmd in control_cmds.drain(..).chain(cmds.drain(..)) {
                if !self.stopped {
                    self.apply(now, cmd);
                }
            }
            if self.stopped {
                break;
            }
            self.release_due(now);
            self.log.after_batch();
        }
    }

    fn next_wake(&self) -> Option<Duration> {
        let due = self
            .store
            .next_due_ms()
            .filter(|_| self.started)
            .map(|d| Duration::from_millis(d.saturating_sub(wall_clock_ms())));
        match (due, self.log.next_sync_in()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn apply(&mut self, now: u64, cmd: DelayCmd) {
        match cmd {
            DelayCmd::Hold {
                batch, confirms, ..
            } => self.hold(now, batch, confirms),
            DelayCmd::Sync(reply) => self.log.reply_after_sync(reply),
            DelayCmd::Start => self.started = true,
            DelayCmd::Stop(reply) => {
                self.log.stop();
                self.stopped = true;
                let _ = reply.send(());
            }
            DelayCmd::Destroy => self.destroy(),
        }
    }

    /// Takes delayed messages: each is due its `x-delay` from now (the exchange checked it).
    fn hold(&mut self, now: u64, batch: Vec<Incoming>, confirms: Option<ConfirmTo>) {
        let (mut acked, mut nacked) = (Vec::new(), Vec::new());
        for incoming in batch {
            let message = incoming.message.clone();
            match self.store.hold(now, incoming) {
                Hold::Logged { seq, confirm } => {
                    let written = self.log.append(seq, &message, Some(now));
                    match (confirm, &confirms) {
                        (Some(id), Some(to)) if written => self.log.confirm_after_sync(to, id),
                        (Some(id), _) if !written => nacked.push(id),
                        _ => {}
                    }
                }
                Hold::InMemory { confirm } => acked.extend(confirm),
            }
        }
        if let Some(to) = confirms {
            for (ok, ids) in [(false, nacked), (true, acked)] {
                if !ids.is_empty() {
                    let _ = to.sink.send(Outbound::Confirmed {
                        session: to.session,
                        ok,
                        ids,
                    });
                }
            }
        }
    }

    /// Routes the messages whose delay is over through the exchange.
    fn release_due(&mut self, now: u64) {
        if !self.started || self.store.next_due_ms().is_none_or(|d| d > now) {
            return;
        }
        let Some(routes) = self.routes.upgrade() else {
            return;
        };
        for r in self.store.release_due(now, RELEASE_BATCH) {
            self.routed.clear();
            if routes
                .route(&self.exchange, &r.message, &mut self.routed)
                .is_err()
            {
                // The exchange is gone: its store is being destroyed.
                continue;
            }
            let confirm = r.logged.then_some(ConfirmId(r.seq));
            self.publisher
                .publish_tracked(&self.routed, r.message, confirm);
        }
        for (target, batch) in self.publisher.take_batches() {
            let ids: Vec<ConfirmId> = batch.iter().filter_map(|i| i.confirm).collect();
            let to = (!ids.is_empty()).then(|| self.confirms_to.clone());
            // A queue deleted meanwhile counts as having taken them.
            if !target.publish_now(batch, to) {
                self.publisher.answered(ids, true);
            }
        }
        self.forget_answered();
    }

    /// A destination queue has dealt with released messages (stored, or refused: either way
    /// they are no longer the store's to keep).
    fn on_answered(&mut self, o: Outbound) {
        if let Outbound::Confirmed { ids, ok, .. } = o {
            self.publisher.answered(ids, ok);
            self.forget_answered();
        }
    }

    /// Acks in the log the released messages whose destinations have all answered.
    fn forget_answered(&mut self) {
        let answers = self.publisher.take_answers();
        let done: Vec<u64> = answers
            .acked
            .iter()
            .chain(&answers.nacked)
            .map(|id| id.0)
            .collect();
        if !done.is_empty() {
            self.log.ack(&done);
        }
    }

    /// The exchange was deleted: drops the held messages and the store's data.
    fn destroy(&mut self) {
        self.stopped = true;
        self.log.destroy();
        if let Some(dir) = self.dir.take() {
            if let Err(e) = blocking(|| ExchangeDirs::remove(&dir)) {
                error!("{}: cannot remove its data: {e}", self.handle.describe());
            }
        }
    }
}

async fn sleep(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
