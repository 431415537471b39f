//! A virtual host at run time: the shell around `warren_core::vhost::VHostState`, which owns
//! the exchanges, queues and bindings and every rule about them.
//!
//! This module keeps what needs a runtime: the definitions lock that serializes changes, the
//! published state the publish path reads without a lock, persistence through `durability`,
//! queue tasks and exchange state (delay stores, deduplication caches). A change runs as:
//! lock, clone the published state (O(1)), apply the change to the clone, persist the
//! definition changes it returned, publish the clone. A failed persist drops the clone, so
//! nothing changed. Policies, and how they reach queues and exchanges, are in `policies`.

mod policies;

use crate::delay_store::DelayRef;
use crate::durability::{self, Durability};
use crate::exchange_state::ExchangeState;
use crate::queue_task::{self, LogSource, QueueEnv, QueueRef};
use crate::target::{QueueEvents, QueueGone, Routes, RoutesRef, Target};
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use warren_amqp::{FieldTable, ShortStr};
use warren_core::args::QueueArgs;
use warren_core::entity::{ExchangeMeta, QueueMeta};
use warren_core::policy::PolicySet;
use warren_core::vhost::{
    self as model, Applied, ExchangeDeclaration, NewExchange, NewQueue, QueueDeclaration,
    VHostState,
};
use warren_core::{BrokerError, Message};
use warren_store::Definitions;

pub use warren_core::vhost::default_exchange_refusal;

/// Where a binding leads.
pub type Destination = model::Destination<QueueRef>;

/// An exchange with what the runtime keeps for it (`state`).
pub type Exchange = model::Exchange<QueueRef, Arc<ExchangeState>>;

type Model = VHostState<QueueRef, Arc<ExchangeState>>;

impl model::QueueHandle for QueueRef {
    fn name(&self) -> &ShortStr {
        &self.meta.name
    }
}

pub struct VHost {
    pub name: String,
    /// Serializes definition changes (each may touch several exchanges and queues).
    changes: Mutex<()>,
    /// Bumped after every definition change: publishers cache routing results per
    /// (exchange, routing key) and drop them when this moves.
    generation: AtomicU64,
    /// The exchanges, queues and bindings as of the last change; replaced whole, read
    /// without a lock.
    published: ArcSwap<Model>,
    next_queue_id: AtomicU64,
    /// Where durable definitions and messages go; `None` keeps everything in memory.
    durability: Option<Arc<Durability>>,
    /// Changed under the definitions lock too (see `policies`).
    policies: Mutex<PolicySet>,
    /// Where this vhost's queues report that they are gone.
    events: QueueEvents,
    /// This vhost, for the routing its queues and delay stores do.
    this: Weak<VHost>,
}

impl VHost {
    /// A vhost with RabbitMQ's predeclared exchanges.
    pub fn new(name: &str, durability: Option<Arc<Durability>>) -> Arc<VHost> {
        let (events, mut gone) = tokio::sync::mpsc::unbounded_channel::<QueueGone>();
        let vhost = Arc::new_cyclic(|this| VHost {
            name: name.to_string(),
            changes: Mutex::new(()),
            generation: AtomicU64::new(0),
            published: ArcSwap::from_pointee(Model::new(name, durability.is_some())),
            next_queue_id: AtomicU64::new(1),
            durability,
            policies: Mutex::new(PolicySet::new()),
            events,
            this: this.clone(),
        });
        // Queues that end by themselves (auto-delete, `x-expires`, their exclusive owner gone)
        // say so here; the vhost then forgets them, their bindings and their definition.
        let weak = Arc::downgrade(&vhost);
        tokio::spawn(async move {
            while let Some(QueueGone(queue)) = gone.recv().await {
                match weak.upgrade() {
                    Some(vhost) => vhost.forget_queue(&queue),
                    None => return,
                }
            }
        });
        vhost
    }

    /// The stores, if this vhost keeps durable state.
    pub fn durability(&self) -> Option<&Arc<Durability>> {
        self.durability.as_ref()
    }

    /// Rebuilds this vhost's durable exchanges, queues (with their messages) and bindings
    /// from the stores, at start-up. Each kind is published as soon as it is back.
    pub fn restore(self: &Arc<Self>, defs: &Definitions) {
        if self.durability.is_none() {
            return;
        }
        let _guard = self.change();
        self.restore_policies(defs);
        let mut next = self.next();
        for d in defs.exchanges.iter().filter(|d| d.vhost == self.name) {
            let Some(meta) = durability::exchange_meta(d) else {
                continue;
            };
            match ExchangeState::restore(self, &meta) {
                Ok((behaviour, state)) => {
                    let new = NewExchange::restored(meta, behaviour);
                    next.insert_exchange(new, Arc::new(state), &self.policies.lock());
                }
                Err(e) => tracing::error!("exchange '{}' cannot be recovered: {}", d.name, e.reply_text()),
            }
        }
        self.publish(next.clone());
        for d in defs.queues.iter().filter(|d| d.vhost == self.name) {
            let Some(meta) = durability::queue_meta(d) else {
                continue;
            };
            let id = self.next_queue_id();
            let restored = NewQueue::restored(meta.clone());
            let args = self.effective_args(&meta);
            let log = Some(LogSource::Recover(d.log_id));
            match queue_task::spawn(id, meta, &self.name, args, log, self.queue_env()) {
                Ok(queue) => next.insert_queue(restored, queue),
                Err(e) => tracing::error!("queue '{}' cannot be recovered: {e}", d.name),
            }
        }
        self.publish(next.clone());
        for b in defs.bindings.iter().filter(|b| b.vhost == self.name) {
            let dest = match b.destination_kind.as_str() {
                "queue" => next.queue(&b.destination).cloned().map(Destination::Queue),
                _ => durability::short(&b.destination).map(Destination::Exchange),
            };
            let (Some(dest), Some(key)) = (dest, durability::short(&b.routing_key)) else {
                continue;
            };
            next.restore_binding(&b.source, dest, &key, &b.arguments);
        }
        self.publish(next);
        // Delayed messages whose time came while the broker was down go now that their
        // bindings are back, and so do recovered messages whose TTL ran out meanwhile (to
        // their dead-letter exchanges).
        for q in self.all_queues() {
            q.start();
        }
        for ex in self.published.load().exchanges() {
            ex.state.start();
        }
    }

    /// What a queue task needs from its vhost.
    fn queue_env(&self) -> QueueEnv {
        QueueEnv {
            durability: self.durability.clone(),
            routes: self.routes(),
            events: self.events.clone(),
        }
    }

    /// This vhost's routing, for its queues and delay stores.
    pub(crate) fn routes(&self) -> RoutesRef {
        self.this.clone()
    }

    /// The settings a queue runs with: its arguments (validated when it was declared) under
    /// the policy that applies. Recovered definitions whose arguments no longer pass run as
    /// plain queues, with an error logged.
    fn effective_args(&self, meta: &QueueMeta) -> QueueArgs {
        let declared = QueueArgs::from_declaration(meta, &self.name).unwrap_or_else(|e| {
            tracing::error!(
                "queue '{}' in vhost '{}': arguments ignored: {}",
                meta.name,
                self.name,
                e.reply_text()
            );
            QueueArgs::default()
        });
        self.queue_args_with_policy(meta, declared)
    }

    /// A new queue id (queues and delay stores are routing destinations numbered alike).
    pub(crate) fn next_queue_id(&self) -> u64 {
        self.next_queue_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes the model's definition changes durable, if this vhost keeps any.
    /// `new_queue_log`: the log of the queue a `PutQueue` among them declares.
    fn persist(
        &self,
        changes: &[model::DefinitionChange],
        new_queue_log: Option<u64>,
    ) -> Result<(), BrokerError> {
        match &self.durability {
            Some(d) if !changes.is_empty() => d.apply(&durability::stored_changes(
                &self.name,
                changes,
                new_queue_log,
            )),
            _ => Ok(()),
        }
    }

    /// A copy of the published state to change (under the definitions lock).
    fn next(&self) -> Model {
        (**self.published.load()).clone()
    }

    fn publish(&self, next: Model) {
        self.published.store(Arc::new(next));
    }

    /// Persists what a change did, then publishes the changed state and releases what removed
    /// exchanges kept. On a failed persist nothing is published: the change did not happen.
    fn commit(&self, next: Model, applied: Applied<QueueRef, Arc<ExchangeState>>) -> Result<(), BrokerError> {
        self.persist(&applied.changes, None)?;
        self.install(next, applied.removed_exchanges);
        Ok(())
    }

    /// Publishes a changed state, then stops and removes what its removed exchanges kept.
    fn install(&self, next: Model, removed_exchanges: Vec<Arc<Exchange>>) {
        self.publish(next);
        for ex in removed_exchanges {
            ex.state.destroy();
        }
    }

    /// Takes the definitions lock; the generation moves when the change is done.
    fn change(&self) -> ChangeGuard<'_> {
        ChangeGuard {
            _lock: self.changes.lock(),
            generation: &self.generation,
        }
    }

    /// Changes whenever exchanges, queues or bindings change (see [`VHost::route`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        self.published.load().exchange(name).cloned()
    }

    pub fn queue(&self, name: &str) -> Option<QueueRef> {
        self.published.load().queue(name).cloned()
    }

    /// Every queue of this vhost, at this moment.
    pub fn all_queues(&self) -> Vec<QueueRef> {
        self.published
            .load()
            .queues()
            .map(|q| q.handle.clone())
            .collect()
    }

    /// At shutdown: makes persistent deduplication caches durable and returns the delay
    /// stores of delayed exchanges, to be stopped like queues.
    pub fn stop_exchanges(&self) -> Vec<DelayRef> {
        let published = self.published.load();
        published.exchanges().for_each(|e| e.state.sync());
        published
            .exchanges()
            .filter_map(|e| e.state.delay.clone())
            .collect()
    }

    pub fn no_exchange(&self, name: &str) -> BrokerError {
        BrokerError::no_exchange(name, &self.name)
    }

    pub fn no_queue(&self, name: &str) -> BrokerError {
        BrokerError::no_queue(name, &self.name)
    }

    /// `exchange.declare` (not passive). Returns the existing exchange if an equivalent one
    /// exists.
    pub fn declare_exchange(
        self: &Arc<Self>,
        meta: ExchangeMeta,
    ) -> Result<Arc<Exchange>, BrokerError> {
        let _guard = self.change();
        let new = match self.published.load().check_exchange_declaration(&meta)? {
            ExchangeDeclaration::Existing(existing) => return Ok(existing),
            ExchangeDeclaration::New(new) => new,
        };
        let state = ExchangeState::create(self, new.meta(), new.behaviour())?;
        if let Err(e) = self.persist(&new.changes(), None) {
            state.destroy();
            return Err(e);
        }
        let mut next = self.next();
        let ex = next.insert_exchange(new, Arc::new(state), &self.policies.lock());
        self.publish(next);
        Ok(ex)
    }

    /// `exchange.delete`.
    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), BrokerError> {
        let _guard = self.change();
        let mut next = self.next();
        let applied = next.delete_exchange(name, if_unused)?;
        self.commit(next, applied)
    }

    /// `queue.declare`. `connection` is the declaring connection (for exclusivity).
    /// Returns the queue and whether it was created now.
    pub fn declare_queue(
        self: &Arc<Self>,
        meta: QueueMeta,
        passive: bool,
        connection: u64,
    ) -> Result<(QueueRef, bool), BrokerError> {
        let _guard = self.change();
        if let Some(gone) = self.queue(&meta.name).filter(|q| q.is_gone()) {
            // Its task ended and its vhost has not heard yet: it no longer exists.
            self.forget_queue_locked(&gone);
        }
        let checked = self
            .published
            .load()
            .check_queue_declaration(&meta, passive, connection)?;
        let new = match checked {
            QueueDeclaration::Existing(existing) => return Ok((existing, false)),
            QueueDeclaration::New(new) => new,
        };
        let log = match &self.durability {
            Some(d) if new.is_durable() => {
                let (log_id, log) = d.create_queue_log()?;
                self.persist(&new.changes(), Some(log_id))?;
                Some(LogSource::New(log_id, log))
            }
            _ => None,
        };
        let id = self.next_queue_id();
        let args = self.effective_args(&meta);
        let queue = queue_task::spawn(id, meta, &self.name, args, log, self.queue_env())
            .expect("a new queue's log needs no recovery");
        let mut next = self.next();
        next.insert_queue(new, queue.clone());
        self.publish(next);
        Ok((queue, true))
    }

    /// Looks a queue up for an operation by `connection`, checking exclusive ownership.
    pub fn queue_for(&self, name: &str, connection: u64) -> Result<QueueRef, BrokerError> {
        self.published.load().queue_for(name, connection).cloned()
    }

    /// Removes a queue whose task ended by deletion: it goes with its bindings (and
    /// auto-delete exchanges left without any). Its deleter and the queue's gone event both
    /// call this; the second finds nothing to do. The task is gone, so a failed persist is
    /// logged and the queue forgotten anyway.
    pub fn forget_queue(&self, queue: &QueueRef) {
        let _guard = self.change();
        self.forget_queue_locked(queue);
    }

    fn forget_queue_locked(&self, queue: &QueueRef) {
        let mut next = self.next();
        let applied = next.forget_queue(queue);
        if let Err(e) = self.persist(&applied.changes, None) {
            tracing::error!("deletion of queue '{}' not stored: {}", queue.name(), e.reply_text());
        }
        self.install(next, applied.removed_exchanges);
    }

    /// `queue.bind` / `exchange.bind`.
    pub fn bind(
        &self,
        source: &str,
        dest: Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Result<(), BrokerError> {
        let _guard = self.change();
        let mut next = self.next();
        let applied = next.bind(source, dest, routing_key, arguments)?;
        self.commit(next, applied)
    }

    /// `queue.unbind` / `exchange.unbind`. Unbinding what is not bound (or whose source or
    /// destination is gone) succeeds, as in RabbitMQ.
    pub fn unbind(
        &self,
        source: &str,
        dest: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Result<(), BrokerError> {
        let _guard = self.change();
        let mut next = self.next();
        let applied = next.unbind(source, dest, routing_key, arguments)?;
        self.commit(next, applied)
    }

    /// Routes a message from `ex`, following exchange-to-exchange bindings and alternate
    /// exchanges; appends each destination queue once to `out`. Returns whether the result
    /// depends only on (exchange, routing key) and so may be reused for the next message
    /// with the same pair while [`VHost::generation`] stays the same: it may not when a
    /// headers, delayed or deduplication exchange took part.
    pub fn route(&self, ex: &Exchange, message: &Message, out: &mut Vec<Target>) -> bool {
        self.published
            .load()
            .route(ex, message, |ex, m| ex.state.admit(m), out)
    }
}

impl Routes for VHost {
    fn route(
        &self,
        exchange: &str,
        message: &Message,
        out: &mut Vec<Target>,
    ) -> Result<bool, BrokerError> {
        let ex = self
            .exchange(exchange)
            .ok_or_else(|| self.no_exchange(exchange))?;
        Ok(VHost::route(self, &ex, message, out))
    }
}

impl From<QueueRef> for Target {
    fn from(q: QueueRef) -> Target {
        Target::Queue(q)
    }
}

/// The definitions lock; dropping it publishes the change by moving the generation.
struct ChangeGuard<'a> {
    _lock: parking_lot::MutexGuard<'a, ()>,
    generation: &'a AtomicU64,
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        self.generation.fetch_add(1, Ordering::Release);
    }
}
