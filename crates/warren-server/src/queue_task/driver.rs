//! The queue task: a loop that takes commands in batches (control commands first), applies
//! them to the queue's `QueueMachine` with the time, and carries out the effects — and
//! nothing else. Deliveries, cancellations and credit messages are gathered per connection
//! and sent once per batch; confirms go out once per batch too, those that wait for the log
//! after its one sync (group commit, see `storage`). The task wakes up at the machine's next
//! deadline (TTL, `x-expires`) and when buffered acks are due for a sync, even if no command
//! arrives.

use super::dead_letter::DeadLetters;
use super::paging::{Pager, IN_LOG};
use super::storage::Log;
use super::{stored, ConfirmTo, LogSource, OutDelivery, Outbound, PagingHandle, QueueCmd};
use super::{QueueEnv, QueueRef, Sink};
use crate::clock::wall_clock_ms;
use crate::durability::blocking;
use crate::stats::{Counter, CounterValues, QueueSnapshot};
use crate::target::{QueueEvents, QueueGone};
use rustc_hash::FxHashMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::error;
use warren_core::args::QueueArgs;
use warren_core::queue::{
    Command, ConfirmId, ConsumerId, Content, DeadLetter, Effect, Paged, QueueConfig, QueueMachine,
    Reply, SessionId, Settlement,
};
use warren_store::{RecoveredMessage, StoreError};

/// Commands applied per wake-up before the batch's effects go out.
const BATCH: usize = 128;

struct QueueTask {
    queue: QueueRef,
    machine: QueueMachine,
    log: Log,
    pager: Pager,
    dead: DeadLetters,
    events: QueueEvents,
    inbox: mpsc::Receiver<QueueCmd>,
    control: mpsc::UnboundedReceiver<QueueCmd>,
    /// Where each session's deliveries go (registered by its first consume).
    sinks: FxHashMap<SessionId, Sink>,
    /// Messages for connections, in order, one list per connection.
    outbox: Vec<(Sink, Vec<Outbound>)>,
    /// Confirms answered now, per publisher.
    confirms: Vec<(ConfirmTo, bool, Vec<ConfirmId>)>,
    /// Where the confirms of the publishes being applied go.
    confirm_to: Option<ConfirmTo>,
    /// The machine's effects being carried out (kept to reuse its allocation).
    effects: Vec<Effect>,
    /// The queue is gone (its machine deleted it) or the broker stops it.
    ended: bool,
    /// What this queue counted (message_stats), read by `QueueCmd::Stats`.
    counters: CounterValues,
    /// The no-ack consumers and their sessions (their deliveries count as `deliver_no_ack`).
    no_ack: FxHashMap<ConsumerId, SessionId>,
}

/// Builds the queue's machine (recovering its log) and starts its task.
pub(super) fn start(
    queue: QueueRef,
    args: QueueArgs,
    log: Option<LogSource>,
    env: QueueEnv,
    inbox: mpsc::Receiver<QueueCmd>,
    control: mpsc::UnboundedReceiver<QueueCmd>,
) -> Result<(), StoreError> {
    let now = wall_clock_ms();
    // A recovered queue waits for its vhost to start it (`QueueHandle::start`).
    let declared = !matches!(log, Some(LogSource::Recover(_)));
    let mut machine = QueueMachine::new(QueueConfig {
        name: queue.meta.name.clone(),
        vhost: queue.vhost.clone(),
        durable: log.is_some(),
        auto_delete: queue.meta.auto_delete,
        args,
    });
    let paging = env.durability.as_ref().map(|d| PagingHandle {
        budget: d.paging.budget,
        pressure_rx: d.paging.pressure.subscribe(),
        spill_path: d.paging.spill_path(),
    });
    let pager = Pager::new(paging, queue.describe());
    machine.apply(now, Command::SetMemoryBudget(pager.budget()));
    let log = match log {
        None => None,
        Some(LogSource::New(_, log)) => Some(log),
        Some(LogSource::Recover(log_id)) => {
            let durability = env
                .durability
                .as_ref()
                .expect("a recovered queue's vhost is durable");
            let (log, report) =
                durability.recover_queue_log(log_id, |r| restore_one(&mut machine, r, now))?;
            crate::durability::log_recovery(&queue.meta.name, &report);
            Some(log)
        }
    };
    let log = Log::new(log, queue.describe());
    if let Some(next) = log.next_seq() {
        machine.continue_after(next);
    }
    let task = QueueTask {
        dead: DeadLetters::new(env.routes),
        events: env.events,
        queue,
        machine,
        log,
        pager,
        inbox,
        control,
        sinks: FxHashMap::default(),
        outbox: Vec::new(),
        confirms: Vec::new(),
        confirm_to: None,
        effects: Vec::new(),
        ended: false,
        counters: CounterValues::default(),
        no_ack: FxHashMap::default(),
    };
    tokio::spawn(task.run(declared));
    Ok(())
}

/// Puts back one recovered message: loaded while the queue is under its budget, else as an
/// index entry read back from the log later. Loaded ones are copied out of the segment's
/// read buffer, so that they do not keep the whole buffer alive.
fn restore_one(machine: &mut QueueMachine, r: RecoveredMessage, now: u64) {
    let (message, enqueued_ms) = stored::restored(r.message);
    let (message, paged_at) = if machine.keeps_loaded(message.footprint()) {
        (stored::detached(message), None)
    } else {
        (message, Some(IN_LOG))
    };
    machine.restore(
        r.seq,
        std::sync::Arc::new(message),
        r.redelivered,
        enqueued_ms,
        now,
        paged_at,
    );
}

/// Why the task woke up.
enum Wake {
    /// This many commands arrived (0: every sender is gone).
    Commands(usize),
    /// Memory pressure changed.
    Pressure,
    /// A deadline came.
    Timer,
}

impl QueueTask {
    /// `declared`: the queue was declared now (else its vhost starts it, see `start`).
    async fn run(mut self, declared: bool) {
        let mut cmds = Vec::with_capacity(BATCH);
        let mut control_cmds = Vec::new();
        let mut pressure = self.pager.pressure();
        // Declared now: `x-expires` counts from here.
        if declared {
            self.run_cmd(wall_clock_ms(), Command::Declared);
            self.flush();
        }
        while !self.ended {
            let wait = self.next_wake();
            let wake = tokio::select! {
                biased;
                n = self.control.recv_many(&mut control_cmds, BATCH) => Wake::Commands(n),
                n = self.inbox.recv_many(&mut cmds, BATCH) => Wake::Commands(n),
                Ok(()) = changed(&mut pressure) => Wake::Pressure,
                _ = sleep(wait) => Wake::Timer,
            };
            let now = wall_clock_ms();
            match wake {
                Wake::Commands(0) => break,
                Wake::Commands(_) => {
                    // Control commands that arrived meanwhile go before the publishes taken.
                    while control_cmds.len() < BATCH {
                        match self.control.try_recv() {
                            Ok(cmd) => control_cmds.push(cmd),
                            Err(_) => break,
                        }
                    }
                    for cmd in control_cmds.drain(..).chain(cmds.drain(..)) {
                        if self.ended {
                            // Dropping its reply sender tells the caller the queue is gone.
                            continue;
                        }
                        self.receive(now, cmd);
                    }
                }
                Wake::Pressure => {
                    let budget = self.pager.budget();
                    self.run_cmd(now, Command::SetMemoryBudget(budget));
                }
                Wake::Timer => {
                    self.run_cmd(now, Command::Tick);
                    self.log.on_timer();
                }
            }
            self.flush();
        }
    }

    /// How long until the next deadline: buffered acks to sync, the machine's TTL or
    /// `x-expires` deadline. Reads the clock only when the machine has one.
    fn next_wake(&self) -> Option<Duration> {
        let deadline = self
            .machine
            .next_deadline_ms()
            .map(|d| Duration::from_millis(d.saturating_sub(wall_clock_ms())));
        match (deadline, self.log.next_sync_in()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn receive(&mut self, now: u64, cmd: QueueCmd) {
        match cmd {
            QueueCmd::Enqueue { batch, confirms, .. } => {
                self.counters.add(Counter::Publish, batch.len() as u64);
                self.confirm_to = confirms;
                self.run_cmd(now, Command::Enqueue(batch));
                self.confirm_to = None;
            }
            QueueCmd::Consume { spec, sink, reply } => {
                self.sinks.insert(spec.session, sink);
                let session = spec.session;
                if spec.no_ack {
                    self.no_ack.insert(spec.id, session);
                }
                let result = match self.run_cmd(now, Command::Consume(spec)) {
                    Reply::Consumed(r) => r,
                    _ => Err(warren_core::BrokerError::no_queue(
                        self.queue.name(),
                        &self.queue.vhost,
                    )),
                };
                if result.is_err() && self.machine.consumer_count() == 0 {
                    self.sinks.remove(&session);
                }
                self.reply(reply, result);
            }
            QueueCmd::Apply { cmd, reply } => {
                if let Command::Get { .. } = cmd {
                    // A paged head is read back first: `get` hands out loaded messages only.
                    self.read_back(now, self.machine.paged_ahead(1));
                }
                let closed = match &cmd {
                    Command::SessionClosed(s) => Some(*s),
                    _ => None,
                };
                self.count_command(&cmd);
                let get_no_ack = match &cmd {
                    Command::Get { no_ack, .. } => Some(*no_ack),
                    _ => None,
                };
                let answer = self.run_cmd(now, cmd);
                if let Some(no_ack) = get_no_ack {
                    self.count_get(&answer, no_ack);
                }
                if let Some(session) = closed {
                    self.sinks.remove(&session);
                    self.no_ack.retain(|_, s| *s != session);
                }
                if let Some(reply) = reply {
                    self.reply(reply, answer);
                }
            }
            QueueCmd::Sync { reply } => self.log.reply_after_sync(reply),
            QueueCmd::Stats { reply } => {
                let _ = reply.send(self.snapshot());
            }
            QueueCmd::Stop { reply } => {
                self.log.stop();
                self.ended = true;
                let _ = reply.send(());
            }
        }
    }

    /// The queue's numbers now.
    fn snapshot(&self) -> QueueSnapshot {
        let m = &self.machine;
        QueueSnapshot {
            messages_ready: m.message_count(),
            messages_unacknowledged: m.unacked_count(),
            consumers: m.consumer_count(),
            message_bytes_ready: m.ready_bytes(),
            message_bytes_ram: m.loaded_bytes(),
            counters: self.counters,
        }
    }

    /// Counts what a client command says (acks; a cancelled no-ack consumer is forgotten).
    fn count_command(&mut self, cmd: &Command) {
        match cmd {
            Command::Settle {
                seqs,
                how: Settlement::Ack,
            } => self.counters.add(Counter::Ack, seqs.len() as u64),
            Command::Cancel(id) => {
                self.no_ack.remove(id);
            }
            _ => {}
        }
    }

    fn count_get(&mut self, answer: &Reply, no_ack: bool) {
        match answer {
            Reply::Got(Some(got)) => {
                let counter = if no_ack { Counter::GetNoAck } else { Counter::Get };
                self.counters.add(counter, 1);
                if got.delivery.redelivered {
                    self.counters.add(Counter::Redeliver, 1);
                }
            }
            Reply::Got(None) => self.counters.add(Counter::GetEmpty, 1),
            _ => {}
        }
    }

    /// Answers a caller; if the queue just ended, its inboxes close first, so that the
    /// caller's next look at the queue already finds it gone.
    fn reply<T>(&mut self, reply: tokio::sync::oneshot::Sender<T>, answer: T) {
        if self.ended {
            self.inbox.close();
            self.control.close();
        }
        let _ = reply.send(answer);
    }

    /// Applies one command and carries out everything it leads to.
    fn run_cmd(&mut self, now: u64, cmd: Command) -> Reply {
        let reply = self.machine.apply(now, cmd);
        let mut effects = std::mem::take(&mut self.effects);
        loop {
            self.machine.drain_effects(&mut effects);
            if effects.is_empty() {
                break;
            }
            for effect in effects.drain(..) {
                self.carry_out(now, effect);
            }
        }
        self.effects = effects;
        reply
    }

    fn carry_out(&mut self, now: u64, effect: Effect) {
        match effect {
            Effect::Deliver {
                session,
                consumer,
                delivery,
            } => {
                let counter = if self.no_ack.contains_key(&consumer) {
                    Counter::DeliverNoAck
                } else {
                    Counter::Deliver
                };
                self.counters.add(counter, 1);
                if delivery.redelivered {
                    self.counters.add(Counter::Redeliver, 1);
                }
                let d = OutDelivery {
                    session,
                    consumer,
                    delivery,
                };
                self.send_to(session, |out| match out.last_mut() {
                    Some(Outbound::Deliveries(batch)) => batch.push(d),
                    _ => out.push(Outbound::Deliveries(vec![d])),
                });
            }
            Effect::Append {
                seq,
                message,
                enqueued_ms,
                confirm,
            } => {
                let written = self.log.append(seq, &message, enqueued_ms);
                if let Some(id) = confirm {
                    match (&self.confirm_to, written) {
                        (Some(to), true) => self.log.confirm_after_sync(&to.clone(), id),
                        // Not written: its publisher hears so now, whatever a later sync does.
                        (Some(_), false) => self.confirm_now(id, false),
                        (None, _) => {}
                    }
                }
            }
            Effect::Confirm { id, ok } => self.confirm_now(id, ok),
            Effect::LogAck(seqs) => self.log.ack(&seqs),
            Effect::LogDelivered(seqs) => self.log.mark_delivered(&seqs),
            Effect::PageOut {
                seq,
                message,
                in_log,
            } => {
                let in_log = in_log && self.log.appends_ok();
                if let Some(place) = self.pager.place_for(seq, &message, in_log) {
                    let priority = message.properties.priority.unwrap_or(0);
                    let cmd = Command::PagedOut {
                        seq,
                        priority,
                        place,
                    };
                    if let Reply::PagedOut(false) = self.machine.apply(now, cmd) {
                        self.pager.release(place);
                    }
                }
            }
            Effect::ReadBack(ahead) => self.read_back(now, ahead),
            Effect::Release(paged) => self.pager.release(paged.place),
            Effect::DeadLetter(d) => self.dead_letter(*d),
            Effect::ConsumerCancelled { session, consumer } => {
                self.send_to(session, |out| {
                    out.push(Outbound::Cancelled { session, consumer })
                });
            }
            Effect::CreditWanted { session, consumer } => self.send_to(session, |out| {
                out.push(Outbound::Credit {
                    session,
                    consumer,
                    returned: None,
                })
            }),
            Effect::CreditReturned {
                session,
                consumer,
                n,
            } => self.send_to(session, |out| {
                out.push(Outbound::Credit {
                    session,
                    consumer,
                    returned: Some(n),
                })
            }),
            Effect::Deleted => {
                self.log.destroy();
                self.pager.destroy();
                self.ended = true;
                let _ = self.events.send(QueueGone(self.queue.clone()));
            }
        }
    }

    /// Adds to the messages for `session`'s connection.
    fn send_to(&mut self, session: SessionId, add: impl FnOnce(&mut Vec<Outbound>)) {
        let Some(sink) = self.sinks.get(&session) else {
            return;
        };
        let slot = match self.outbox.iter().position(|(s, _)| s.same_channel(sink)) {
            Some(i) => i,
            None => {
                self.outbox.push((sink.clone(), Vec::new()));
                self.outbox.len() - 1
            }
        };
        add(&mut self.outbox[slot].1);
    }

    fn confirm_now(&mut self, id: ConfirmId, ok: bool) {
        let Some(to) = &self.confirm_to else { return };
        match self.confirms.last_mut() {
            Some((last, last_ok, ids))
                if *last_ok == ok
                    && last.session == to.session
                    && last.sink.same_channel(&to.sink) =>
            {
                ids.push(id)
            }
            _ => self.confirms.push((to.clone(), ok, vec![id])),
        }
    }

    /// Reads paged messages back for the machine (unreadable ones leave the queue).
    fn read_back(&mut self, now: u64, ahead: Vec<(u64, Paged)>) {
        if ahead.is_empty() {
            return;
        }
        let loaded = blocking(|| {
            ahead
                .into_iter()
                .map(|(seq, paged)| {
                    let message = self.read_paged(seq, paged);
                    (seq, paged, message.map(std::sync::Arc::new))
                })
                .collect()
        });
        self.machine.apply(now, Command::Loaded(loaded));
    }

    /// Reads a paged message back. `None` if it cannot be read (the error is logged).
    fn read_paged(&mut self, seq: u64, paged: Paged) -> Option<warren_core::Message> {
        let read = if paged.place == IN_LOG {
            self.log.read(seq)
        } else {
            self.pager.read(seq, paged)
        };
        match read {
            Ok(m) => Some(stored::restored(m).0),
            Err(e) => {
                error!(
                    "{}: paged message {seq} cannot be read back and is dropped: {e}",
                    self.queue.describe()
                );
                None
            }
        }
    }

    /// Republishes a dead message through the dead-letter exchange (a paged one is read
    /// back for it first, before the log learns that it is gone).
    fn dead_letter(&mut self, d: DeadLetter) {
        let message = match &d.content {
            Content::Loaded(m) => m.clone(),
            Content::Paged(p) => {
                let seq = d.seq.unwrap_or_default();
                match blocking(|| self.read_paged(seq, *p)) {
                    Some(m) => std::sync::Arc::new(m),
                    None => return,
                }
            }
        };
        let republished = d.republished(&message, self.queue.name());
        self.dead
            .republish(republished, d.reason, &self.queue.describe());
    }

    /// Sends what the batch produced: deliveries and other messages per connection, confirms
    /// answered now, dead letters; then syncs the log for the confirms that wait for it.
    fn flush(&mut self) {
        for (sink, messages) in self.outbox.drain(..) {
            for m in messages {
                // A closed connection's deliveries come back through `SessionClosed`.
                let _ = sink.send(m);
            }
        }
        for (to, ok, ids) in self.confirms.drain(..) {
            let _ = to.sink.send(Outbound::Confirmed {
                session: to.session,
                ok,
                ids,
            });
        }
        self.dead.flush();
        if !self.ended {
            self.log.after_batch();
        }
    }
}

async fn changed(pressure: &mut Option<watch::Receiver<bool>>) -> Result<(), watch::error::RecvError> {
    match pressure.as_mut() {
        Some(p) => p.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

