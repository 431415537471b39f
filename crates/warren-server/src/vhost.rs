//! A virtual host: its exchanges, queues and bindings, and routing through them.
//!
//! Definition changes (declare, delete, bind) are serialized by one lock per vhost and are
//! rare; the publish path reads immutable snapshots (see `snapshot`) and takes no lock.
//! Policies, and how they reach queues and exchanges, are in `policies`.

mod policies;

use crate::durability::{self, Durability};
use crate::exchange_state::{Admission, ExchangeState};
use crate::delay_store::DelayRef;
use crate::queue_task::{self, LogSource, QueueEnv, QueueRef};
use crate::target::{QueueEvents, QueueGone, Routes, RoutesRef, Target};
use crate::snapshot::Snapshot;
use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use warren_core::args::QueueArgs;
use warren_amqp::{FieldTable, ShortStr};
use warren_core::entity::{ExchangeMeta, QueueMeta};
use warren_core::exchange_type::ExchangeType;
use warren_core::policy::PolicySet;
use warren_core::routing::{ExchangeKind, Router};
use warren_core::{AmqpError, Message};
use warren_store::{BindingDef, DefinitionChange, Definitions};

/// Exchange-to-exchange hops a message may take before routing stops (cycles are cut by
/// remembering visited exchanges; this bounds pathological chains).
const MAX_ROUTING_DEPTH: usize = 64;

/// Where a binding leads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Queue(QueueRef),
    Exchange(ShortStr),
}

pub struct Exchange {
    pub meta: ExchangeMeta,
    pub router: Snapshot<Router<Destination>>,
    /// The `alternate-exchange` of the policy that applies, if any (the argument wins).
    policy_alternate: ArcSwapOption<ShortStr>,
    /// How its type routes, and what a delayed or deduplication exchange keeps.
    pub state: ExchangeState,
}

impl Exchange {
    fn new(meta: ExchangeMeta, state: ExchangeState) -> Exchange {
        let router = Snapshot::new(Router::new(state.behaviour.routes_as));
        Exchange {
            meta,
            router,
            policy_alternate: ArcSwapOption::empty(),
            state,
        }
    }

    pub fn is_default(&self) -> bool {
        self.meta.name.is_empty()
    }
}

pub struct VHost {
    pub name: String,
    /// Serializes compound definition changes (e.g. delete a queue and its bindings).
    changes: Mutex<()>,
    /// Bumped after every definition change: publishers cache routing results per
    /// (exchange, routing key) and drop them when this moves.
    generation: AtomicU64,
    exchanges: Snapshot<HashMap<ShortStr, Arc<Exchange>>>,
    queues: Snapshot<HashMap<ShortStr, QueueRef>>,
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
        let mut exchanges = HashMap::new();
        for (n, kind) in [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            let meta = ExchangeMeta {
                name: ShortStr::from(n),
                kind: ExchangeType::Builtin(kind),
                durable: true,
                auto_delete: false,
                internal: false,
                arguments: FieldTable::new(),
            };
            let state = ExchangeState::plain(kind);
            exchanges.insert(meta.name.clone(), Arc::new(Exchange::new(meta, state)));
        }
        let (events, mut gone) = tokio::sync::mpsc::unbounded_channel::<QueueGone>();
        let vhost = Arc::new_cyclic(|this| VHost {
            name: name.to_string(),
            changes: Mutex::new(()),
            generation: AtomicU64::new(0),
            exchanges: Snapshot::new(exchanges),
            queues: Snapshot::new(HashMap::new()),
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
    /// from the stores, at start-up.
    pub fn restore(self: &Arc<Self>, defs: &Definitions) {
        if self.durability.is_none() {
            return;
        }
        self.restore_policies(defs);
        for d in defs.exchanges.iter().filter(|d| d.vhost == self.name) {
            if let Some(meta) = durability::exchange_meta(d) {
                let state = match ExchangeState::restore(self, &meta) {
                    Ok(state) => state,
                    Err(e) => {
                        tracing::error!("exchange '{}' cannot be recovered: {}", d.name, e.text);
                        continue;
                    }
                };
                let ex = Arc::new(Exchange::new(meta, state));
                self.exchanges
                    .update(|m| m.insert(ex.meta.name.clone(), ex));
            }
        }
        for d in defs.queues.iter().filter(|d| d.vhost == self.name) {
            let Some(meta) = durability::queue_meta(d) else {
                continue;
            };
            let id = self.next_queue_id.fetch_add(1, Ordering::Relaxed);
            let args = self.effective_args(&meta);
            let env = self.queue_env();
            match queue_task::spawn(id, meta, &self.name, args, Some(LogSource::Recover(d.log_id)), env) {
                Ok(queue) => {
                    self.queues
                        .update(|m| m.insert(queue.meta.name.clone(), queue));
                }
                Err(e) => tracing::error!("queue '{}' cannot be recovered: {e}", d.name),
            }
        }
        for b in defs.bindings.iter().filter(|b| b.vhost == self.name) {
            let Some(ex) = self.exchange(&b.source) else {
                continue;
            };
            let dest = match b.destination_kind.as_str() {
                "queue" => self.queue(&b.destination).map(Destination::Queue),
                _ => self
                    .exchange(&b.destination)
                    .map(|e| Destination::Exchange(e.meta.name.clone())),
            };
            let (Some(dest), Some(key)) = (
                dest,
                ShortStr::from_bytes(bytes::Bytes::copy_from_slice(b.routing_key.as_bytes())),
            ) else {
                continue;
            };
            ex.router.update(|r| r.bind(&key, &b.arguments, dest));
        }
        self.apply_exchange_policies();
        // Delayed messages whose time came while the broker was down go now that their
        // bindings are back.
        for ex in self.exchanges.load().values() {
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
                e.text
            );
            QueueArgs::default()
        });
        self.queue_args_with_policy(meta, declared)
    }

    /// A new queue id (queues and delay stores are routing destinations numbered alike).
    pub(crate) fn next_queue_id(&self) -> u64 {
        self.next_queue_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes definition changes durable, if this vhost keeps any.
    fn persist(&self, changes: &[DefinitionChange]) -> Result<(), AmqpError> {
        match &self.durability {
            Some(d) if !changes.is_empty() => d.apply(changes),
            _ => Ok(()),
        }
    }

    /// A binding survives restarts when both its ends do (as in RabbitMQ).
    fn durable_binding(
        &self,
        source: &Exchange,
        dest: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Option<BindingDef> {
        let (kind, name) = match dest {
            Destination::Queue(q) if q.log_id.is_some() => ("queue", q.name().to_string()),
            Destination::Exchange(n)
                if self
                    .exchanges
                    .read(|m| m.get(n).is_some_and(|e| e.meta.durable)) =>
            {
                ("exchange", n.to_string())
            }
            _ => return None,
        };
        if !source.meta.durable || self.durability.is_none() {
            return None;
        }
        Some(BindingDef {
            vhost: self.name.clone(),
            source: source.meta.name.to_string(),
            destination_kind: kind.to_string(),
            destination: name,
            routing_key: routing_key.to_string(),
            arguments: arguments.clone(),
        })
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
        self.exchanges.load().get(name).cloned()
    }

    pub fn queue(&self, name: &str) -> Option<QueueRef> {
        self.queues.load().get(name).cloned()
    }

    /// Every queue of this vhost, at this moment.
    pub fn all_queues(&self) -> Vec<QueueRef> {
        self.queues.load().values().cloned().collect()
    }

    /// At shutdown: makes persistent deduplication caches durable and returns the delay
    /// stores of delayed exchanges, to be stopped like queues.
    pub fn stop_exchanges(&self) -> Vec<DelayRef> {
        let exchanges = self.exchanges.load();
        exchanges.values().for_each(|e| e.state.sync());
        exchanges
            .values()
            .filter_map(|e| e.state.delay.clone())
            .collect()
    }

    pub fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::no_exchange(name, &self.name)
    }

    pub fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::no_queue(name, &self.name)
    }

    /// `exchange.declare` (not passive). Returns the existing exchange if an equivalent one
    /// exists.
    pub fn declare_exchange(
        self: &Arc<Self>,
        meta: ExchangeMeta,
    ) -> Result<Arc<Exchange>, AmqpError> {
        let _guard = self.change();
        if let Some(existing) = self.exchanges.read(|m| m.get(&meta.name).cloned()) {
            existing.meta.check_equivalent(&meta, &self.name)?;
            return Ok(existing);
        }
        // Arguments are validated when an exchange is created, as queues' are.
        let state = ExchangeState::create(self, &meta)?;
        if meta.durable {
            if let Err(e) = self.persist(&[DefinitionChange::PutExchange(
                durability::exchange_def(&self.name, &meta),
            )]) {
                state.destroy();
                return Err(e);
            }
        }
        let ex = Arc::new(Exchange::new(meta, state));
        self.apply_exchange_policy(&ex);
        self.exchanges
            .update(|m| m.insert(ex.meta.name.clone(), ex.clone()));
        Ok(ex)
    }

    /// `exchange.delete`.
    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        let _guard = self.change();
        let Some(ex) = self.exchanges.read(|m| m.get(name).cloned()) else {
            return Err(self.no_exchange(name));
        };
        if if_unused && !ex.router.read(|r| r.is_empty()) {
            return Err(AmqpError::precondition(format!(
                "exchange '{}' in vhost '{}' in use",
                name, self.name
            )));
        }
        self.remove_exchange_locked(&ex)
    }

    /// Removes an exchange with its bindings, both as source and as destination.
    fn remove_exchange_locked(&self, ex: &Arc<Exchange>) -> Result<(), AmqpError> {
        if ex.meta.durable {
            // The store drops the bindings that name it.
            self.persist(&[DefinitionChange::DeleteExchange {
                vhost: self.name.clone(),
                name: ex.meta.name.to_string(),
            }])?;
        }
        self.exchanges.update(|m| m.remove(&ex.meta.name));
        ex.state.destroy();
        self.remove_destination_locked(&Destination::Exchange(ex.meta.name.clone()));
        Ok(())
    }

    /// Removes every binding to `dest`, then any auto-delete exchange left without bindings.
    fn remove_destination_locked(&self, dest: &Destination) {
        let all: Vec<Arc<Exchange>> = self.exchanges.read(|m| m.values().cloned().collect());
        for ex in all {
            if ex.router.read(|r| r.has_destination(dest)) {
                let now_empty = ex.router.update(|r| {
                    r.remove_destination(dest);
                    r.is_empty()
                });
                if now_empty && ex.meta.auto_delete {
                    if let Err(e) = self.remove_exchange_locked(&ex) {
                        tracing::error!(
                            "auto-delete of exchange '{}' not stored: {}",
                            ex.meta.name,
                            e.text
                        );
                    }
                }
            }
        }
    }

    /// `queue.declare`. `connection` is the declaring connection (for exclusivity).
    /// Returns the queue and whether it was created now.
    pub fn declare_queue(
        self: &Arc<Self>,
        meta: QueueMeta,
        passive: bool,
        connection: u64,
    ) -> Result<(QueueRef, bool), AmqpError> {
        let _guard = self.change();
        if let Some(gone) = self
            .queues
            .read(|m| m.get(&meta.name).filter(|q| q.is_gone()).cloned())
        {
            // Its task ended and its vhost has not heard yet: it no longer exists.
            self.forget_queue_locked(&gone);
        }
        if let Some(existing) = self.queues.read(|m| m.get(&meta.name).cloned()) {
            check_exclusive_access(&existing, connection)?;
            if !passive {
                existing.meta.check_equivalent(&meta, &self.name)?;
                if existing.meta.exclusive_owner.is_some() != meta.exclusive_owner.is_some() {
                    return Err(locked(&existing));
                }
            }
            return Ok((existing, false));
        }
        if passive {
            return Err(self.no_queue(&meta.name));
        }
        // Arguments are validated when a queue is created; a redeclaration only compares them.
        warren_core::args::QueueArgs::from_declaration(&meta, &self.name)?;
        let log = match &self.durability {
            Some(d) if meta.durable && meta.exclusive_owner.is_none() => {
                let (log_id, log) = d.create_queue_log()?;
                self.persist(&[DefinitionChange::PutQueue(durability::queue_def(
                    &self.name, &meta, log_id,
                ))])?;
                Some(LogSource::New(log_id, log))
            }
            // Exclusive queues die with their connection, so never outlive a restart.
            _ => None,
        };
        let id = self.next_queue_id.fetch_add(1, Ordering::Relaxed);
        let args = self.effective_args(&meta);
        let queue = queue_task::spawn(id, meta, &self.name, args, log, self.queue_env())
            .expect("a new queue's log needs no recovery");
        self.queues
            .update(|m| m.insert(queue.meta.name.clone(), queue.clone()));
        Ok((queue, true))
    }

    /// Looks a queue up for an operation by `connection`, checking exclusive ownership.
    pub fn queue_for(&self, name: &str, connection: u64) -> Result<QueueRef, AmqpError> {
        let q = self.queue(name).ok_or_else(|| self.no_queue(name))?;
        check_exclusive_access(&q, connection)?;
        Ok(q)
    }

    /// Removes a queue that is gone (its task ended by deletion), with its bindings and its
    /// stored definition. Idempotent: the queue's deleter and its vhost's event both call it.
    pub fn forget_queue(&self, queue: &QueueRef) {
        let _guard = self.change();
        self.forget_queue_locked(queue);
    }

    fn forget_queue_locked(&self, queue: &QueueRef) {
        if !self.queues.read(|m| m.get(queue.name()).is_some_and(|q| q == queue)) {
            return;
        }
        if queue.log_id.is_some() {
            let change = DefinitionChange::DeleteQueue {
                vhost: self.name.clone(),
                name: queue.name().to_string(),
            };
            if let Err(e) = self.persist(&[change]) {
                tracing::error!(
                    "deletion of queue '{}' not stored: {}",
                    queue.name(),
                    e.text
                );
            }
        }
        self.queues.update(|m| {
            if m.get(queue.name()).is_some_and(|q| q == queue) {
                m.remove(queue.name());
            }
        });
        self.remove_destination_locked(&Destination::Queue(queue.clone()));
    }

    /// `queue.bind` / `exchange.bind`.
    pub fn bind(
        &self,
        source: &str,
        dest: Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        let _guard = self.change();
        let ex = self.source_exchange(source)?;
        warren_core::routing::validate_binding_arguments(ex.state.behaviour.routes_as, arguments)
            .map_err(AmqpError::precondition)?;
        if let Destination::Exchange(name) = &dest {
            if !self.exchanges.read(|m| m.contains_key(name)) {
                return Err(self.no_exchange(name));
            }
        }
        let def = self.durable_binding(&ex, &dest, routing_key, arguments);
        let added = ex
            .router
            .update(|r| r.bind(routing_key, arguments, dest.clone()));
        if let (true, Some(def)) = (added, def) {
            if let Err(e) = self.persist(&[DefinitionChange::PutBinding(def)]) {
                ex.router
                    .update(|r| r.unbind(routing_key, arguments, &dest));
                return Err(e);
            }
        }
        Ok(())
    }

    /// `queue.unbind` / `exchange.unbind`. Unbinding what is not bound succeeds, as in RabbitMQ.
    pub fn unbind(
        &self,
        source: &str,
        dest: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Result<(), AmqpError> {
        let _guard = self.change();
        let ex = self.source_exchange(source)?;
        let def = self.durable_binding(&ex, dest, routing_key, arguments);
        let (removed, now_empty) = ex
            .router
            .update(|r| (r.unbind(routing_key, arguments, dest), r.is_empty()));
        if let (true, Some(def)) = (removed, def) {
            if let Err(e) = self.persist(&[DefinitionChange::DeleteBinding(def)]) {
                ex.router
                    .update(|r| r.bind(routing_key, arguments, dest.clone()));
                return Err(e);
            }
        }
        let now_empty = removed && now_empty;
        if now_empty && ex.meta.auto_delete {
            self.remove_exchange_locked(&ex)?;
        }
        Ok(())
    }

    fn source_exchange(&self, name: &str) -> Result<Arc<Exchange>, AmqpError> {
        if name.is_empty() {
            return Err(default_exchange_refusal());
        }
        self.exchanges
            .read(|m| m.get(name).cloned())
            .ok_or_else(|| self.no_exchange(name))
    }

    /// Routes a message from `ex`, following exchange-to-exchange bindings and alternate
    /// exchanges; appends each destination queue once to `out`. Returns whether the result
    /// depends only on (exchange, routing key) and so may be reused for the next message
    /// with the same pair while [`VHost::generation`] stays the same: it may not when a
    /// headers exchange took part.
    pub fn route(&self, ex: &Exchange, message: &Message, out: &mut Vec<Target>) -> bool {
        let start = out.len();
        let mut visited: Vec<ShortStr> = Vec::new();
        let mut by_key_only = true;
        self.route_from(ex, message, out, &mut visited, 0, &mut by_key_only);
        if out.len() - start > 1 {
            out[start..].sort_unstable();
            let mut deduped = out.split_off(start);
            deduped.dedup();
            out.extend(deduped);
        }
        by_key_only
    }

    fn route_from(
        &self,
        ex: &Exchange,
        message: &Message,
        out: &mut Vec<Target>,
        visited: &mut Vec<ShortStr>,
        depth: usize,
        by_key_only: &mut bool,
    ) {
        let before = out.len();
        *by_key_only &= ex.state.behaviour.routes_by_key_only();
        if ex.is_default() {
            if let Some(q) = self.queue(&message.routing_key) {
                out.push(Target::Queue(q));
            }
            return;
        }
        let router = ex.router.load();
        let mut dests = Vec::new();
        match ex.state.admit(message) {
            Admission::Route => router.route(
                &message.routing_key,
                message.properties.headers.as_ref(),
                &mut dests,
            ),
            // Held by the exchange: routed when its delay is over.
            Admission::Delay(store) => {
                out.push(Target::Delay(store));
                return;
            }
            // A duplicate matches no binding (its alternate exchange may take it).
            Admission::Drop => {}
        }
        let mut routed_any =
            !dests.is_empty() && dests.iter().any(|d| matches!(d, Destination::Queue(_)));
        for d in dests {
            match d {
                Destination::Queue(q) => out.push(Target::Queue(q)),
                Destination::Exchange(name) => {
                    if depth < MAX_ROUTING_DEPTH && !visited.contains(&name) && name != ex.meta.name
                    {
                        visited.push(name.clone());
                        if let Some(next) = self.exchange(&name) {
                            self.route_from(&next, message, out, visited, depth + 1, by_key_only);
                        }
                    }
                }
            }
        }
        routed_any |= out.len() > before;
        if !routed_any {
            let policy_ae = ex.policy_alternate.load();
            let policy_ae = policy_ae.as_deref().map(ShortStr::as_str);
            if let Some(ae) = ex.meta.alternate_exchange().or(policy_ae) {
                if depth < MAX_ROUTING_DEPTH
                    && !visited.iter().any(|v| v.as_str() == ae)
                    && ae != ex.meta.name.as_str()
                {
                    visited.push(ShortStr::from(ae));
                    if let Some(next) = self.exchange(ae) {
                        self.route_from(&next, message, out, visited, depth + 1, by_key_only);
                    }
                }
            }
        }
    }
}

impl Routes for VHost {
    fn route(&self, exchange: &str, message: &Message, out: &mut Vec<Target>) -> Result<bool, AmqpError> {
        let ex = self.exchange(exchange).ok_or_else(|| self.no_exchange(exchange))?;
        Ok(VHost::route(self, &ex, message, out))
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

fn check_exclusive_access(q: &QueueRef, connection: u64) -> Result<(), AmqpError> {
    match q.meta.exclusive_owner {
        Some(owner) if owner != connection => Err(locked(q)),
        _ => Ok(()),
    }
}

fn locked(q: &QueueRef) -> AmqpError {
    AmqpError::resource_locked(format!(
        "cannot obtain exclusive access to locked {}. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
        q.describe()
    ))
}

pub fn default_exchange_refusal() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}
