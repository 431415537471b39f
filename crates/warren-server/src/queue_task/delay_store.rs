//! The delay store of an `x-delayed-message` exchange: a task that holds the exchange's
//! delayed messages and routes each through the exchange when its `x-delay` is over, with
//! `x-delay` turned negative (`warren_core::delayed`), as the rabbitmq-delayed-message-exchange
//! plugin does.
//!
//! To the publish path it looks like a queue: a [`QueueHandle`] (flagged `delay_store`) that
//! the exchange names as the destination of a delayed message, fed by the same `Publish`
//! batches, answering publisher confirms the same way (a persistent message held by a durable
//! exchange is confirmed once it is in the store's log and the log is synced) and `Sync` for
//! `tx.commit`. It never appears in the vhost's queue table, so nothing consumes from it.
//!
//! Held messages wait in a min-heap by due time (wall-clock ms, since due times outlive the
//! process); one timer per store wakes it at the earliest. When a message is due it is routed
//! through the exchange as it is then (bindings, alternate exchange), and sent to its queues
//! on their control channels (never awaited, as dead-lettering does). A logged message is
//! acked in the store's log once every durable queue that took it has confirmed it: a crash
//! in between routes it again after the restart (at-least-once; never lost). Routed nowhere,
//! it is dropped: there is no publisher left to return it to.
//!
//! Recovery: the log's messages come back with their publish time (the `stored` envelope), so
//! each is due `publish time + x-delay`; those whose delay ran out while the broker was down
//! are routed as soon as the store is started (after the vhost's bindings are restored).

use super::stored;
use super::{
    wall_clock_ms, Outbound, PendingConfirm, Publish, QueueCmd, QueueHandle, QueueRef, Sink,
    ACK_SYNC_INTERVAL, BATCH, INBOX_BYTES, INBOX_CAPACITY,
};
use crate::durability::blocking;
use crate::vhost::VHost;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::error;
use warren_amqp::{FieldTable, ShortStr};
use warren_core::delayed::{delay_of, released, DelaySchedule};
use warren_core::entity::{ExchangeMeta, QueueMeta};
use warren_core::Message;
use warren_store::{ExchangeDirs, QueueLog, RecoveredMessage};

/// Messages routed per wake-up, so that a burst of due messages does not keep the store from
/// taking new ones for long.
const RELEASE_BATCH: usize = 4096;

/// A message waiting for its delay.
struct Held {
    message: Arc<Message>,
    delay_ms: u64,
    /// In the log (persistent, durable exchange): acked once routed and confirmed.
    logged: bool,
}

/// Starts the delay store of the exchange `meta`. A durable exchange brings its log and what
/// was recovered from it, and the exchange's data directory (removed when the store stops);
/// `started` is false at start-up, until [`start`].
pub fn spawn(
    vhost: &Arc<VHost>,
    meta: &ExchangeMeta,
    log: Option<QueueLog>,
    recovered: Vec<RecoveredMessage>,
    dir: Option<PathBuf>,
    started: bool,
) -> QueueRef {
    let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (confirms_tx, confirms_rx) = mpsc::unbounded_channel();
    let handle = QueueRef(Arc::new(QueueHandle {
        id: vhost.next_queue_id(),
        meta: QueueMeta {
            name: meta.name.clone(),
            durable: meta.durable,
            exclusive_owner: None,
            auto_delete: false,
            arguments: FieldTable::new(),
        },
        // Any value marks a store whose persistent messages wait for its log's sync.
        log_id: log.as_ref().map(|_| 0),
        vhost: vhost.name.clone(),
        may_refuse: std::sync::atomic::AtomicBool::new(false),
        delay_store: true,
        inbox: tx,
        inbox_bytes: Arc::new(Semaphore::new(INBOX_BYTES)),
        control: control_tx,
    }));
    let mut schedule = DelaySchedule::new();
    let mut now = None;
    for r in recovered {
        let (message, published_ms) = stored::restored(r.message);
        let delay_ms = delay_of(&message).unwrap_or(0);
        let published_ms = published_ms.unwrap_or_else(|| *now.get_or_insert_with(wall_clock_ms));
        let held = Held {
            // Out of the segment's read buffer, which it would otherwise keep alive.
            message: Arc::new(stored::detached(message)),
            delay_ms,
            logged: true,
        };
        schedule.push(published_ms.saturating_add(delay_ms), r.seq, held);
    }
    let store = DelayStore {
        handle: handle.clone(),
        exchange: meta.name.clone(),
        vhost: Arc::downgrade(vhost),
        next_seq: log.as_ref().map_or(1, |l| l.next_seq().max(1)),
        schedule,
        log,
        dir,
        log_dirty: false,
        last_sync: Instant::now(),
        unsynced_confirms: Vec::new(),
        in_flight: HashMap::new(),
        confirms: confirms_tx,
        started,
        stopped: false,
    };
    tokio::spawn(store.run(rx, control_rx, confirms_rx));
    handle
}

/// Lets a store restored at start-up route what is due.
pub fn start(store: &QueueRef) {
    let _ = store.control.send(QueueCmd::Dispatch);
}

/// Stops a store whose exchange was deleted: what it holds is dropped, its data removed.
pub fn stop(store: &QueueRef) {
    let (reply, _) = oneshot::channel();
    let _ = store.control.send(QueueCmd::Delete {
        if_unused: false,
        if_empty: false,
        reply,
    });
}

struct DelayStore {
    handle: QueueRef,
    exchange: ShortStr,
    vhost: Weak<VHost>,
    next_seq: u64,
    schedule: DelaySchedule<Held>,
    log: Option<QueueLog>,
    /// The exchange's data directory, removed with the store.
    dir: Option<PathBuf>,
    log_dirty: bool,
    last_sync: Instant,
    /// Confirms (and `tx.commit` replies) waiting for the next sync.
    unsynced_confirms: Vec<PendingConfirm>,
    /// Logged messages routed to queues that have not all confirmed them yet: seq -> count.
    in_flight: HashMap<u64, u32>,
    /// Where those queues send their confirms.
    confirms: Sink,
    started: bool,
    stopped: bool,
}

impl DelayStore {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<QueueCmd>,
        mut control: mpsc::UnboundedReceiver<QueueCmd>,
        mut confirms: mpsc::UnboundedReceiver<Outbound>,
    ) {
        let (mut control_cmds, mut cmds) = (Vec::new(), Vec::with_capacity(BATCH));
        while !self.stopped {
            let wait = self.next_wake();
            tokio::select! {
                biased;
                n = control.recv_many(&mut control_cmds, BATCH) => if n == 0 { break },
                Some(o) = confirms.recv() => self.on_confirmed(o),
                n = inbox.recv_many(&mut cmds, BATCH) => if n == 0 { break },
                _ = sleep(wait) => {}
            }
            for cmd in control_cmds.drain(..).chain(cmds.drain(..)) {
                self.apply(cmd);
                if self.stopped {
                    break;
                }
            }
            if self.stopped {
                break;
            }
            self.release_due();
            if self.log_dirty
                && (!self.unsynced_confirms.is_empty()
                    || self.last_sync.elapsed() >= ACK_SYNC_INTERVAL)
            {
                self.sync();
            }
        }
        inbox.close();
    }

    /// Until the next due message (once started) or the next sync of buffered acks.
    fn next_wake(&self) -> Option<Duration> {
        let due = self
            .schedule
            .next_due_ms()
            .filter(|_| self.started)
            .map(|d| Duration::from_millis(d.saturating_sub(wall_clock_ms())));
        let ack_sync = self
            .log_dirty
            .then(|| ACK_SYNC_INTERVAL.saturating_sub(self.last_sync.elapsed()));
        match (due, ack_sync) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn apply(&mut self, cmd: QueueCmd) {
        match cmd {
            QueueCmd::Publish { batch, sink, .. } => self.hold(batch, sink),
            QueueCmd::Sync { reply } => {
                if self.log_dirty {
                    self.unsynced_confirms.push(PendingConfirm::Sync(reply));
                } else {
                    let _ = reply.send(true);
                }
            }
            QueueCmd::Dispatch => self.started = true,
            // The broker is stopping: what was acked becomes durable first.
            QueueCmd::Stop { reply } => {
                if self.log_dirty {
                    self.sync();
                }
                self.stopped = true;
                let _ = reply.send(());
            }
            QueueCmd::Delete { reply, .. } => {
                self.destroy();
                let _ = reply.send(Ok(0));
            }
            // Nothing consumes from a delay store; callers of anything else see it gone.
            _ => {}
        }
    }

    /// Takes delayed messages: each is due its `x-delay` from now (the exchange checked it).
    fn hold(&mut self, batch: Vec<Publish>, sink: Option<Sink>) {
        let now = wall_clock_ms();
        let (mut synced, mut acked) = (Vec::new(), Vec::new());
        for p in batch {
            let seq = self.next_seq;
            self.next_seq += 1;
            let delay_ms = delay_of(&p.message).unwrap_or(0);
            let logged = match self.log.as_mut().filter(|_| p.message.is_persistent()) {
                Some(log) => {
                    if let Err(e) = log.append(seq, &stored::stored(&p.message, Some(now))) {
                        error!("{}: cannot write message: {e}", self.handle.describe());
                    }
                    self.log_dirty = true;
                    synced.extend(p.confirm);
                    true
                }
                None => {
                    acked.extend(p.confirm);
                    false
                }
            };
            let held = Held {
                message: p.message,
                delay_ms,
                logged,
            };
            self.schedule.push(now.saturating_add(delay_ms), seq, held);
        }
        let Some(sink) = sink else { return };
        if !acked.is_empty() {
            let _ = sink.send(Outbound::Confirmed {
                ok: true,
                publishes: acked,
            });
        }
        if !synced.is_empty() {
            self.unsynced_confirms
                .push(PendingConfirm::Publishes(sink, synced));
        }
    }

    /// Routes the messages whose delay is over through the exchange.
    fn release_due(&mut self) {
        if !self.started || self.schedule.next_due_ms().is_none() {
            return;
        }
        let now = wall_clock_ms();
        if self.schedule.next_due_ms() > Some(now) {
            return;
        }
        let Some(vhost) = self.vhost.upgrade() else {
            return;
        };
        let Some(exchange) = vhost
            .exchange(&self.exchange)
            .filter(|e| e.state.delay.as_ref() == Some(&self.handle))
        else {
            return;
        };
        let mut batches: Vec<(QueueRef, Vec<Publish>)> = Vec::new();
        let mut routed = Vec::new();
        let mut done = Vec::new();
        for _ in 0..RELEASE_BATCH {
            let Some((seq, held)) = self.schedule.pop_due(now) else {
                break;
            };
            let message = Arc::new(released(&held.message, held.delay_ms));
            routed.clear();
            vhost.route(&exchange, &message, &mut routed);
            let mut awaiting = 0;
            for q in routed.drain(..) {
                let confirm = (held.logged && q.answers_confirm(&message)).then(|| {
                    awaiting += 1;
                    (0, seq)
                });
                let publish = Publish {
                    message: message.clone(),
                    confirm,
                };
                match batches.iter_mut().find(|(bq, _)| *bq == q) {
                    Some((_, batch)) => batch.push(publish),
                    None => batches.push((q, vec![publish])),
                }
            }
            if held.logged {
                if awaiting == 0 {
                    done.push(seq);
                } else {
                    self.in_flight.insert(seq, awaiting);
                }
            }
        }
        for (q, batch) in batches {
            let confirms: Vec<(u16, u64)> = batch.iter().filter_map(|p| p.confirm).collect();
            let sink = (!confirms.is_empty()).then(|| self.confirms.clone());
            // A queue deleted meanwhile drops them, as if deleted just after.
            let publish = QueueCmd::Publish {
                batch,
                sink,
                permit: None,
            };
            if q.control.send(publish).is_err() {
                for (_, seq) in confirms {
                    self.confirmed_one(seq, &mut done);
                }
            }
        }
        self.forget(&done);
    }

    /// A destination queue has dealt with released messages (stored, or refused: either way
    /// they are no longer the store's to keep).
    fn on_confirmed(&mut self, o: Outbound) {
        if let Outbound::Confirmed { publishes, .. } = o {
            let mut done = Vec::new();
            for (_, seq) in publishes {
                self.confirmed_one(seq, &mut done);
            }
            self.forget(&done);
        }
    }

    fn confirmed_one(&mut self, seq: u64, done: &mut Vec<u64>) {
        if let Some(left) = self.in_flight.get_mut(&seq) {
            *left -= 1;
            if *left == 0 {
                self.in_flight.remove(&seq);
                done.push(seq);
            }
        }
    }

    /// Records in the log that these messages are delivered.
    fn forget(&mut self, seqs: &[u64]) {
        if let (Some(log), false) = (self.log.as_mut(), seqs.is_empty()) {
            if let Err(e) = log.ack(seqs) {
                error!("{}: cannot record acks: {e}", self.handle.describe());
            }
            self.log_dirty = true;
        }
    }

    fn sync(&mut self) {
        let ok = match self.log.as_mut() {
            Some(log) => match blocking(|| log.sync()) {
                Ok(()) => true,
                Err(e) => {
                    error!("{}: cannot sync its log: {e}", self.handle.describe());
                    false
                }
            },
            None => true,
        };
        self.log_dirty = false;
        self.last_sync = Instant::now();
        for pending in self.unsynced_confirms.drain(..) {
            pending.answer(ok);
        }
    }

    /// The exchange was deleted: drops the held messages and the store's data.
    fn destroy(&mut self) {
        self.stopped = true;
        if let Some(log) = self.log.take() {
            if let Err(e) = blocking(|| log.destroy()) {
                error!("{}: cannot remove its log: {e}", self.handle.describe());
            }
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = blocking(|| ExchangeDirs::remove(&dir)) {
                error!("{}: cannot remove its data: {e}", self.handle.describe());
            }
        }
        // Publishes waiting for a sync are dealt with: their exchange is gone.
        for pending in self.unsynced_confirms.drain(..) {
            match pending {
                PendingConfirm::Publishes(sink, publishes) => {
                    let _ = sink.send(Outbound::Confirmed {
                        ok: true,
                        publishes,
                    });
                }
                PendingConfirm::Sync(reply) => {
                    let _ = reply.send(true);
                }
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
