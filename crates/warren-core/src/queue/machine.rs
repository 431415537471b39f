//! [`QueueMachine`]: one queue driven by commands, reporting effects (see the module docs of
//! `queue`). This is where a queue decides what its log records, which publisher confirms
//! wait for the log, what deduplication keys it holds, what it pages out, what dies and goes
//! to the dead-letter exchange, and when the queue itself ends.

use super::state::{Dead, Enqueued, QueueState};
use super::{Command, ConfirmId, DeadLetter, Delivery, Effect, GetOk, Grant, Incoming};
use super::{Paged, QueueStats, Reply, Seq, Settlement};
use crate::args::QueueArgs;
use crate::dedup::{DedupKey, QueueDedup};
use crate::{BrokerError, Message};
use rustc_hash::FxHashSet;
use std::sync::Arc;
use warren_amqp::ShortStr;

/// Paged messages read back ahead of delivery.
pub const READ_AHEAD: usize = 256;

/// What a queue is, as its machine needs to know it.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub name: ShortStr,
    /// Its vhost's name (error texts).
    pub vhost: String,
    /// It keeps a log: its persistent messages are appended and confirmed once durable.
    pub durable: bool,
    /// It deletes itself when its last consumer leaves (once it had one).
    pub auto_delete: bool,
    /// Its effective settings (arguments under the policy that applies).
    pub args: QueueArgs,
}

#[derive(Debug)]
pub struct QueueMachine {
    name: ShortStr,
    vhost: String,
    durable: bool,
    auto_delete: bool,
    state: QueueState,
    /// The keys of the messages in a deduplicating queue.
    dedup: Option<QueueDedup>,
    effects: Vec<Effect>,
    /// Log marks gathered while applying one command, emitted once at its end.
    log_acks: Vec<Seq>,
    log_delivered: Vec<Seq>,
    /// Paged messages asked for with `ReadBack` and not loaded yet (never asked twice).
    reading: FxHashSet<Seq>,
    had_consumer: bool,
    deleted: bool,
}

impl QueueMachine {
    pub fn new(config: QueueConfig) -> QueueMachine {
        QueueMachine {
            name: config.name,
            vhost: config.vhost,
            durable: config.durable,
            auto_delete: config.auto_delete,
            dedup: config.args.deduplication.then(QueueDedup::new),
            state: QueueState::with_args(config.args),
            effects: Vec::new(),
            log_acks: Vec::new(),
            log_delivered: Vec::new(),
            reading: FxHashSet::default(),
            had_consumer: false,
            deleted: false,
        }
    }

    /// `queue 'q' in vhost '/'`, for error texts.
    pub fn describe(&self) -> String {
        format!("queue '{}' in vhost '{}'", self.name, self.vhost)
    }

    pub fn name(&self) -> &ShortStr {
        &self.name
    }

    pub fn args(&self) -> &QueueArgs {
        self.state.args()
    }

    pub fn message_count(&self) -> usize {
        self.state.message_count()
    }

    pub fn consumer_count(&self) -> usize {
        self.state.consumer_count()
    }

    pub fn unacked_count(&self) -> usize {
        self.state.unacked_count()
    }

    /// Body bytes of the ready messages.
    pub fn ready_bytes(&self) -> usize {
        self.state.ready_bytes()
    }

    /// Memory the loaded ready messages hold.
    pub fn loaded_bytes(&self) -> usize {
        self.state.loaded_bytes()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// True if a publisher confirm for `message` must wait for this queue's answer: the queue
    /// writes it to its log first, or may refuse it (`basic.nack`).
    pub fn answers_confirm(&self, message: &Message) -> bool {
        answers_confirm(self.durable, self.may_refuse(), message)
    }

    /// The queue may refuse publishes (`x-overflow` = `reject-publish(-dlx)` with a limit).
    pub fn may_refuse(&self) -> bool {
        self.state.args().may_refuse_publishes()
    }

    /// The earliest time a [`Command::Tick`] has work: the millisecond after a head
    /// message's deadline, or the queue's `x-expires` deadline.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let expiry = self.state.next_expiry_ms().map(|d| d.saturating_add(1));
        match (expiry, self.state.unused_deadline_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The paged messages among the next `n` to deliver (the runtime reads the head back
    /// before a [`Command::Get`]).
    pub fn paged_ahead(&self, n: usize) -> Vec<(Seq, Paged)> {
        self.state.paged_ahead(n)
    }

    /// Memory the loaded ready messages hold, and whether one more of `footprint` bytes would
    /// stay under the budget (recovery keeps loading while it does).
    pub fn keeps_loaded(&self, footprint: usize) -> bool {
        self.state.loaded_bytes() + footprint <= self.state.memory_budget()
    }

    /// The ready messages in delivery order (tests and diagnostics).
    pub fn ready_messages(&self) -> impl Iterator<Item = &super::Queued> {
        self.state.ready_messages()
    }

    /// The effects produced since the last call, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Moves the effects produced since the last call to the end of `out` (keeps both
    /// buffers' capacity).
    pub fn drain_effects(&mut self, out: &mut Vec<Effect>) {
        out.append(&mut self.effects);
    }

    /// Puts back a message recovered from the log (at start-up, before any command, in `Seq`
    /// order). `enqueued_ms`: when it was enqueued, if stored; otherwise a TTL that applies
    /// now counts from `now_ms`. With `paged_at`, only its index entry is kept.
    pub fn restore(
        &mut self,
        seq: Seq,
        message: Arc<Message>,
        redelivered: bool,
        enqueued_ms: Option<u64>,
        now_ms: u64,
        paged_at: Option<u64>,
    ) {
        let enqueued_ms = enqueued_ms.unwrap_or(now_ms);
        if let (Some(dedup), Some(key)) = (self.dedup.as_mut(), DedupKey::of(&message)) {
            dedup.insert(key, seq, self.state.deadline(&message, enqueued_ms));
        }
        self.state
            .restore(seq, message, redelivered, enqueued_ms, paged_at);
    }

    /// Makes the next publish number at least `seq` (after recovery of a log whose last
    /// messages were all acked).
    pub fn continue_after(&mut self, seq: Seq) {
        self.state.continue_after(seq);
    }

    /// Applies one command at `now_ms`; the effects wait for [`QueueMachine::take_effects`].
    pub fn apply(&mut self, now_ms: u64, cmd: Command) -> Reply {
        if self.deleted {
            return self.gone(cmd);
        }
        // Paging a message out changes nothing a consumer could see: no dispatch after it.
        let settles = !matches!(cmd, Command::PagedOut { .. });
        let reply = match cmd {
            Command::Enqueue(batch) => {
                self.enqueue(now_ms, batch);
                Reply::Done
            }
            Command::Settle { seqs, how } => {
                self.settle(&seqs, how);
                Reply::Done
            }
            Command::Consume(spec) => {
                let result = self.state.add_consumer(spec, &self.describe());
                self.had_consumer |= result.is_ok();
                self.touch(now_ms);
                Reply::Consumed(result)
            }
            Command::Cancel(consumer) => {
                self.state.cancel_consumer(consumer);
                self.consumer_left(now_ms);
                Reply::Done
            }
            Command::Written { consumer, n } => {
                self.state.written(consumer, n);
                Reply::Done
            }
            Command::Grant { consumer, grant } => {
                if let Some((session, n)) = self.state.grant(consumer, grant) {
                    if grant == Grant::Reclaim {
                        self.effects.push(Effect::CreditReturned {
                            session,
                            consumer,
                            n,
                        });
                    }
                }
                Reply::Done
            }
            Command::Get { session, no_ack } => {
                self.touch(now_ms);
                self.expire(now_ms);
                Reply::Got(self.get(session, no_ack))
            }
            Command::SessionClosed(session) => {
                self.state.session_closed(session);
                self.consumer_left(now_ms);
                Reply::Done
            }
            Command::Tick => {
                if self
                    .state
                    .unused_deadline_ms()
                    .is_some_and(|d| d <= now_ms)
                {
                    self.delete();
                }
                Reply::Done
            }
            Command::Purge => Reply::Purged(self.purge()),
            Command::Declared => {
                // A declaration (passive or not) counts as use, as in RabbitMQ.
                self.touch(now_ms);
                Reply::Declared(QueueStats {
                    messages: self.state.message_count() as u32,
                    consumers: self.state.consumer_count() as u32,
                })
            }
            Command::Delete {
                if_unused,
                if_empty,
            } => Reply::Deleted(self.delete_if(if_unused, if_empty)),
            Command::SetArgs(args) => {
                self.set_args(now_ms, args);
                Reply::Done
            }
            Command::SetMemoryBudget(bytes) => {
                self.set_memory_budget(bytes);
                Reply::Done
            }
            Command::PagedOut {
                seq,
                priority,
                place,
            } => Reply::PagedOut(self.state.page(seq, priority, place)),
            Command::Loaded(loaded) => {
                self.loaded(loaded);
                Reply::Done
            }
        };
        if settles && !self.deleted {
            self.settle_time(now_ms);
        }
        self.flush_log_marks();
        reply
    }

    /// What a command gets once the queue is gone: publishes count as dealt with (as if they
    /// had arrived just before the delete), everything else is answered [`Reply::Gone`].
    fn gone(&mut self, cmd: Command) -> Reply {
        if let Command::Enqueue(batch) = cmd {
            for id in batch.iter().filter_map(|i| i.confirm) {
                self.effects.push(Effect::Confirm { id, ok: true });
            }
        }
        Reply::Gone
    }

    /// After every command: expired heads leave, ready messages go to consumers with credit,
    /// the dead are buried.
    fn settle_time(&mut self, now_ms: u64) {
        self.expire(now_ms);
        self.dispatch();
        for (session, consumer) in self.state.credit_wanted() {
            self.effects
                .push(Effect::CreditWanted { session, consumer });
        }
        self.bury(now_ms);
    }

    fn expire(&mut self, now_ms: u64) {
        self.state.advance(now_ms);
        if self.state.next_expiry_ms().is_some_and(|d| d < now_ms) {
            self.state.expire(now_ms);
        }
    }

    /// `x-expires` counts from the queue's last use.
    fn touch(&mut self, now_ms: u64) {
        if self.state.args().expires_ms.is_some() {
            self.state.touch(now_ms);
        }
    }

    /// A consumer left (cancel, session closed): `x-expires` starts counting when the last
    /// one goes, and an auto-delete queue goes with it (not before it ever had one).
    fn consumer_left(&mut self, now_ms: u64) {
        if self.state.consumer_count() > 0 {
            return;
        }
        self.touch(now_ms);
        if self.auto_delete && self.had_consumer {
            self.delete();
        }
    }

    fn enqueue(&mut self, now_ms: u64, batch: Vec<Incoming>) {
        for Incoming { message, confirm } in batch {
            // A duplicate is dropped, and dealt with as far as its publisher is concerned.
            let key = self.dedup.as_ref().and_then(|_| DedupKey::of(&message));
            if let (Some(dedup), Some(key)) = (&self.dedup, &key) {
                if dedup.is_duplicate(key, || now_ms) {
                    self.confirm(confirm, true);
                    continue;
                }
            }
            let seq = match self.state.publish(message.clone(), now_ms) {
                Enqueued::Accepted(seq) => seq,
                Enqueued::Refused => {
                    self.confirm(confirm, false);
                    continue;
                }
            };
            if let (Some(dedup), Some(key)) = (self.dedup.as_mut(), key) {
                dedup.insert(key, seq, self.state.deadline(&message, now_ms));
            }
            let in_log = self.durable && message.is_persistent();
            if in_log {
                let enqueued_ms = self.state.needs_time(&message).then_some(now_ms);
                self.effects.push(Effect::Append {
                    seq,
                    message: message.clone(),
                    enqueued_ms,
                    confirm,
                });
            } else {
                self.confirm(confirm, true);
            }
            if self.state.over_budget() {
                self.effects.push(Effect::PageOut {
                    seq,
                    message,
                    in_log,
                });
            }
            // Messages this publish pushed out free their keys before the next publish.
            if self.dedup.is_some() && self.state.has_dead() {
                self.bury(now_ms);
            }
        }
    }

    fn confirm(&mut self, confirm: Option<ConfirmId>, ok: bool) {
        if let Some(id) = confirm {
            self.effects.push(Effect::Confirm { id, ok });
        }
    }

    fn settle(&mut self, seqs: &[Seq], how: Settlement) {
        match how {
            Settlement::Ack => {
                let mut left = Vec::new();
                let (durable, log_acks) = (self.durable, &mut self.log_acks);
                self.state.ack(seqs, |q| {
                    if durable && q.content.is_persistent() {
                        log_acks.push(q.seq);
                    }
                    left.push(q.seq);
                });
                self.dedup_release(left);
            }
            Settlement::Requeue => self.state.requeue(seqs),
            // The messages die (reason `rejected`): `bury` deals with them.
            Settlement::Discard => self.state.discard(seqs),
        }
    }

    fn get(&mut self, session: super::SessionId, no_ack: bool) -> Option<GetOk> {
        let (delivery, remaining) = self.state.get(session, no_ack)?;
        self.handed_out(&delivery, no_ack);
        Some(GetOk {
            delivery,
            remaining,
        })
    }

    fn handed_out(&mut self, d: &Delivery, no_ack: bool) {
        handed_out(
            d,
            no_ack,
            self.durable,
            &mut self.dedup,
            &mut self.log_acks,
            &mut self.log_delivered,
        );
    }

    /// Hands ready messages to consumers with credit, asking for paged ones to be read back
    /// ahead of delivery.
    fn dispatch(&mut self) {
        if self.state.consumer_count() == 0 {
            return;
        }
        let mut ahead = self.state.paged_ahead(READ_AHEAD);
        ahead.retain(|(seq, _)| self.reading.insert(*seq));
        let (effects, dedup, log_acks, log_delivered) = (
            &mut self.effects,
            &mut self.dedup,
            &mut self.log_acks,
            &mut self.log_delivered,
        );
        let durable = self.durable;
        self.state.dispatch(|spec, delivery| {
            handed_out(
                &delivery,
                spec.no_ack,
                durable,
                dedup,
                log_acks,
                log_delivered,
            );
            effects.push(Effect::Deliver {
                session: spec.session,
                consumer: spec.id,
                delivery,
            });
        });
        if !ahead.is_empty() {
            self.effects.push(Effect::ReadBack(ahead));
        }
    }

    /// Contents read back. What the runtime stored for each is released once the message
    /// is loaded (or found unreadable); a message that left meanwhile had its release already.
    fn loaded(&mut self, loaded: Vec<(Seq, Paged, Option<Arc<Message>>)>) {
        for (seq, paged, message) in loaded {
            self.reading.remove(&seq);
            match message {
                Some(m) => {
                    if self.state.load(seq, paged.priority, m) {
                        self.effects.push(Effect::Release(paged));
                    }
                }
                // Unreadable: it leaves the queue rather than block it.
                None => {
                    if let Some(q) = self.state.remove_ready(seq, paged.priority) {
                        if self.durable && q.content.is_persistent() {
                            self.log_acks.push(seq);
                        }
                        self.dedup_release([seq]);
                        self.effects.push(Effect::Release(paged));
                    }
                }
            }
        }
    }

    /// The messages that died: their keys are freed, the log forgets them, and they go to
    /// the dead-letter exchange if the queue has one (paged ones are read back for it first).
    fn bury(&mut self, now_ms: u64) {
        if !self.state.has_dead() {
            return;
        }
        let dead = self.state.take_dead();
        self.dedup_release(dead.iter().filter_map(|d| d.seq));
        let target = self.state.args().dead_letter.clone();
        for Dead {
            seq,
            content,
            reason,
        } in dead
        {
            if let Some(seq) = seq {
                if self.durable && content.is_persistent() {
                    self.log_acks.push(seq);
                }
                self.reading.remove(&seq);
            }
            let paged = content.paged();
            if let Some(target) = &target {
                // A paged one is read back for this before its stored copy is released.
                self.effects.push(Effect::DeadLetter(Box::new(DeadLetter {
                    content,
                    seq,
                    reason,
                    target: target.clone(),
                    now_ms,
                })));
            }
            if let Some(p) = paged {
                self.effects.push(Effect::Release(p));
            }
        }
    }

    fn purge(&mut self) -> usize {
        let (mut left, mut paged) = (Vec::new(), Vec::new());
        let (durable, log_acks) = (self.durable, &mut self.log_acks);
        let n = self.state.purge(|q| {
            if durable && q.content.is_persistent() {
                log_acks.push(q.seq);
            }
            paged.extend(q.content.paged());
            left.push(q.seq);
        });
        self.dedup_release(left);
        self.reading.clear();
        self.effects.extend(paged.into_iter().map(Effect::Release));
        n
    }

    fn delete_if(&mut self, if_unused: bool, if_empty: bool) -> Result<usize, BrokerError> {
        if if_unused && self.state.consumer_count() > 0 {
            return Err(BrokerError::precondition(format!(
                "{} in use",
                self.describe()
            )));
        }
        if if_empty && self.state.message_count() > 0 {
            return Err(BrokerError::precondition(format!(
                "{} not empty",
                self.describe()
            )));
        }
        Ok(self.delete())
    }

    /// Ends the queue: its consumers are cancelled; returns the ready messages dropped.
    fn delete(&mut self) -> usize {
        let count = self.state.message_count();
        for spec in self.state.drain_consumers() {
            self.effects.push(Effect::ConsumerCancelled {
                session: spec.session,
                consumer: spec.id,
            });
        }
        self.effects.push(Effect::Deleted);
        self.deleted = true;
        count
    }

    /// New effective settings (a policy changed). Messages a lower limit drops die at once.
    fn set_args(&mut self, now_ms: u64, args: QueueArgs) {
        if self.state.args() == &args {
            return;
        }
        let expires = args.expires_ms.is_some();
        self.state.set_args(args);
        // RabbitMQ restarts the `x-expires` countdown when a policy changes the settings.
        if expires {
            self.state.touch(now_ms);
        }
    }

    /// A lower budget pages out the excess at once.
    fn set_memory_budget(&mut self, bytes: usize) {
        if bytes == self.state.memory_budget() {
            return;
        }
        self.state.set_memory_budget(bytes);
        for (seq, message) in self.state.excess_loaded() {
            let in_log = self.durable && message.is_persistent();
            self.effects.push(Effect::PageOut {
                seq,
                message,
                in_log,
            });
        }
    }

    fn dedup_release(&mut self, seqs: impl IntoIterator<Item = Seq>) {
        if let Some(dedup) = &mut self.dedup {
            for seq in seqs {
                dedup.release(seq);
            }
        }
    }

    fn flush_log_marks(&mut self) {
        if !self.log_acks.is_empty() {
            self.effects
                .push(Effect::LogAck(std::mem::take(&mut self.log_acks)));
        }
        if !self.log_delivered.is_empty() {
            self.effects
                .push(Effect::LogDelivered(std::mem::take(&mut self.log_delivered)));
        }
    }
}

/// What the log and the keys record of a message handed out (a function of the fields it
/// touches, so that dispatch can call it while the queue state is borrowed).
fn handed_out(
    d: &Delivery,
    no_ack: bool,
    durable: bool,
    dedup: &mut Option<QueueDedup>,
    log_acks: &mut Vec<Seq>,
    log_delivered: &mut Vec<Seq>,
) {
    if no_ack {
        if let Some(dedup) = dedup {
            dedup.release(d.seq);
        }
    }
    if durable && d.message.is_persistent() {
        if no_ack {
            log_acks.push(d.seq);
        } else if !d.redelivered {
            log_delivered.push(d.seq);
        }
    }
}

/// Which queue must answer a publisher's confirm: one that writes the message to its log
/// first (persistent, durable queue), or one that may refuse it. Every other queue counts as
/// having taken the message when it was routed there.
pub fn answers_confirm(durable: bool, may_refuse: bool, message: &Message) -> bool {
    (durable && message.is_persistent()) || may_refuse
}
