//! The vhost model: one vhost's exchanges, queues and bindings as a plain state machine, with
//! RabbitMQ's definition rules and routing through exchange-to-exchange bindings and
//! alternate exchanges.
//!
//! [`VHostState`] owns the rules: the predeclared `amq.*` exchanges and their protection,
//! redeclaration equivalence, `if-unused`, exclusive access, binding and unbinding with
//! RabbitMQ's idempotence, the auto-delete cascade, which bindings are durable (both ends
//! durable, in a durable vhost; an exclusive queue never is), and [`VHostState::route`]. Every
//! definition change returns the [`DefinitionChange`]s to make durable: plain data with no
//! runtime handle in it, what a replicated log would carry.
//!
//! It never persists, spawns, locks or reads a clock. The runtime serializes changes, creates
//! queue tasks and exchange state, persists the returned changes and publishes the result.
//! The state is persistent: its tables are `PMap`s of `Arc`s, so a clone is O(1) and a change
//! copies only the path to what it touches. A runtime changes a clone and publishes it once
//! its changes are durable; a failed persist just drops the clone, and readers never lock.
//!
//! Generic over the runtime's queue handle `Q` (see [`QueueHandle`]) and over `X`, what the
//! runtime keeps per exchange (a delayed exchange's store, a deduplication cache), opaque here
//! and consulted only through the admission closure given to [`VHostState::route`].

mod change;
mod route;

#[cfg(test)]
mod tests;

use crate::entity::{ExchangeMeta, QueueMeta};
use crate::exchange_type::{ExchangeBehaviour, ExchangeType};
use crate::policy::PolicySet;
use crate::routing::pmap::PMap;
use crate::routing::{ExchangeKind, Router};
use crate::BrokerError;
use std::hash::Hash;
use std::sync::Arc;
use warren_amqp::{FieldTable, ShortStr};

pub use route::{Admission, MAX_ROUTING_DEPTH};

/// RabbitMQ's predeclared exchanges, in every vhost.
const PREDECLARED: [(&str, ExchangeKind); 6] = [
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

/// What the model needs of the runtime's handle to a queue: identity (equal, hashed and
/// ordered alike for one queue, distinct for a queue redeclared under the same name) and its
/// name.
pub trait QueueHandle: Clone + Eq + Hash + Ord {
    fn name(&self) -> &ShortStr;
}

/// Where a binding leads. `Destination<ShortStr>` names the ends of a stored binding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination<Q> {
    Queue(Q),
    Exchange(ShortStr),
}

/// An exchange: its definition, how its type routes, its bindings, and what the runtime keeps
/// for it (`state`).
#[derive(Clone)]
pub struct Exchange<Q, X> {
    pub meta: ExchangeMeta,
    pub behaviour: ExchangeBehaviour,
    /// The runtime's own state for this exchange (cheap to clone: an `Arc`).
    pub state: X,
    /// Bindings to queues and to exchanges, apart: routing appends queues straight to the
    /// caller's output and looks at exchange bindings only when there are some.
    to_queues: Router<Q>,
    to_exchanges: Router<ShortStr>,
    /// The `alternate-exchange` argument (it wins over a policy's).
    argument_alternate: Option<ShortStr>,
    /// The `alternate-exchange` of the policy that applies, if any.
    policy_alternate: Option<ShortStr>,
}

impl<Q: QueueHandle, X> Exchange<Q, X> {
    fn new(meta: ExchangeMeta, behaviour: ExchangeBehaviour, state: X) -> Self {
        // A name over 255 bytes names no exchange.
        let argument_alternate = meta
            .alternate_exchange()
            .and_then(|n| ShortStr::from_bytes(bytes::Bytes::copy_from_slice(n.as_bytes())));
        Exchange {
            to_queues: Router::new(behaviour.routes_as),
            to_exchanges: Router::new(behaviour.routes_as),
            meta,
            behaviour,
            state,
            argument_alternate,
            policy_alternate: None,
        }
    }

    pub fn is_default(&self) -> bool {
        self.meta.name.is_empty()
    }

    /// Where messages that match no binding go: the argument, else the policy's.
    pub fn alternate_exchange(&self) -> Option<&ShortStr> {
        self.argument_alternate
            .as_ref()
            .or(self.policy_alternate.as_ref())
    }

    /// Bindings with this exchange as their source.
    pub fn binding_count(&self) -> usize {
        self.to_queues.len() + self.to_exchanges.len()
    }

    pub fn has_bindings(&self) -> bool {
        !self.to_queues.is_empty() || !self.to_exchanges.is_empty()
    }

    /// Whether some binding of this exchange leads to `dest`.
    pub fn has_destination(&self, dest: &Destination<Q>) -> bool {
        match dest {
            Destination::Queue(q) => self.to_queues.has_destination(q),
            Destination::Exchange(n) => self.to_exchanges.has_destination(n),
        }
    }

    /// False if an identical binding exists (a no-op, as in RabbitMQ).
    fn bind(&mut self, routing_key: &ShortStr, arguments: &FieldTable, dest: Destination<Q>) -> bool {
        match dest {
            Destination::Queue(q) => self.to_queues.bind(routing_key, arguments, q),
            Destination::Exchange(n) => self.to_exchanges.bind(routing_key, arguments, n),
        }
    }

    /// False if there was no such binding.
    fn unbind(&mut self, routing_key: &ShortStr, arguments: &FieldTable, dest: &Destination<Q>) -> bool {
        match dest {
            Destination::Queue(q) => self.to_queues.unbind(routing_key, arguments, q),
            Destination::Exchange(n) => self.to_exchanges.unbind(routing_key, arguments, n),
        }
    }

    fn remove_destination(&mut self, dest: &Destination<Q>) {
        match dest {
            Destination::Queue(q) => self.to_queues.remove_destination(q),
            Destination::Exchange(n) => self.to_exchanges.remove_destination(n),
        };
    }
}

/// A queue as the vhost knows it: the runtime's handle and the definition it was declared
/// with.
pub struct QueueEntry<Q> {
    pub handle: Q,
    pub meta: QueueMeta,
    /// Its definition is stored (durable, not exclusive, in a durable vhost): bindings to it
    /// can be durable too.
    pub durable: bool,
}

/// A binding as stored: its ends by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub source: ShortStr,
    pub destination: Destination<ShortStr>,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

/// A change to the vhost's durable definitions, to be made durable (and, later, replicated)
/// before the change takes effect. Deleting an exchange or a queue deletes the bindings that
/// name it: no `DeleteBinding` is given for those.
#[derive(Debug, Clone, PartialEq)]
pub enum DefinitionChange {
    PutExchange(ExchangeMeta),
    DeleteExchange(ShortStr),
    PutQueue(QueueMeta),
    DeleteQueue(ShortStr),
    PutBinding(Binding),
    DeleteBinding(Binding),
}

/// What a definition change did, for the runtime to act on.
#[must_use = "the changes must be persisted before the new state is published"]
pub struct Applied<Q, X> {
    /// To make durable before the new state is published, in this order.
    pub changes: Vec<DefinitionChange>,
    /// Exchanges that are gone (deleted, or auto-deleted by the change): the runtime releases
    /// what it kept for them once the new state is published.
    pub removed_exchanges: Vec<Arc<Exchange<Q, X>>>,
}

impl<Q, X> Default for Applied<Q, X> {
    fn default() -> Self {
        Applied {
            changes: Vec::new(),
            removed_exchanges: Vec::new(),
        }
    }
}

/// The answer to an `exchange.declare`, before anything changes.
pub enum ExchangeDeclaration<Q, X> {
    /// An equivalent exchange exists: nothing to do.
    Existing(Arc<Exchange<Q, X>>),
    /// A new exchange, validated: the runtime sets up its state, persists
    /// [`NewExchange::changes`], then calls [`VHostState::insert_exchange`].
    New(NewExchange),
}

/// An exchange about to be created.
pub struct NewExchange {
    meta: ExchangeMeta,
    behaviour: ExchangeBehaviour,
    persist: bool,
}

impl NewExchange {
    /// An exchange read back from the definitions store at start-up: nothing to persist.
    pub fn restored(meta: ExchangeMeta, behaviour: ExchangeBehaviour) -> Self {
        NewExchange {
            meta,
            behaviour,
            persist: false,
        }
    }

    pub fn meta(&self) -> &ExchangeMeta {
        &self.meta
    }

    pub fn behaviour(&self) -> ExchangeBehaviour {
        self.behaviour
    }

    /// Its definition, if it is to be stored.
    pub fn changes(&self) -> Vec<DefinitionChange> {
        match self.persist {
            true => vec![DefinitionChange::PutExchange(self.meta.clone())],
            false => Vec::new(),
        }
    }
}

/// The answer to a `queue.declare`, before anything changes.
pub enum QueueDeclaration<Q> {
    /// The queue exists and may be used by the declaring connection.
    Existing(Q),
    /// A new queue, validated: the runtime persists [`NewQueue::changes`], creates the queue
    /// (with a message log if [`NewQueue::is_durable`]), then calls
    /// [`VHostState::insert_queue`].
    New(NewQueue),
}

/// A queue about to be created.
pub struct NewQueue {
    meta: QueueMeta,
    durable: bool,
    restored: bool,
}

impl NewQueue {
    /// A durable queue read back from the definitions store at start-up.
    pub fn restored(meta: QueueMeta) -> Self {
        NewQueue {
            meta,
            durable: true,
            restored: true,
        }
    }

    pub fn meta(&self) -> &QueueMeta {
        &self.meta
    }

    /// Its definition is stored and it outlives a restart (so it keeps a message log).
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Its definition, if it is to be stored now.
    pub fn changes(&self) -> Vec<DefinitionChange> {
        match self.durable && !self.restored {
            true => vec![DefinitionChange::PutQueue(self.meta.clone())],
            false => Vec::new(),
        }
    }
}

/// One vhost's exchanges and queues (with their bindings). Cloning is O(1).
pub struct VHostState<Q, X> {
    name: Arc<str>,
    /// Definitions are stored: durable objects produce [`DefinitionChange`]s.
    durable: bool,
    exchanges: PMap<ShortStr, Arc<Exchange<Q, X>>>,
    queues: PMap<ShortStr, Arc<QueueEntry<Q>>>,
}

impl<Q, X> Clone for VHostState<Q, X> {
    fn clone(&self) -> Self {
        VHostState {
            name: self.name.clone(),
            durable: self.durable,
            exchanges: self.exchanges.clone(),
            queues: self.queues.clone(),
        }
    }
}

impl<Q: QueueHandle, X: Clone + Default> VHostState<Q, X> {
    /// A vhost with RabbitMQ's predeclared exchanges (durable, each with `X::default()`).
    /// `durable`: whether its durable definitions are stored.
    pub fn new(name: &str, durable: bool) -> Self {
        let mut vhost = VHostState {
            name: name.into(),
            durable,
            exchanges: PMap::new(),
            queues: PMap::new(),
        };
        for (name, kind) in PREDECLARED {
            let meta = ExchangeMeta {
                name: ShortStr::from_static(name),
                kind: ExchangeType::Builtin(kind),
                durable: true,
                auto_delete: false,
                internal: false,
                arguments: FieldTable::new(),
            };
            let ex = Exchange::new(meta, ExchangeBehaviour::plain(kind), X::default());
            vhost.exchanges.insert(ex.meta.name.clone(), Arc::new(ex));
        }
        vhost
    }
}

impl<Q: QueueHandle, X> VHostState<Q, X> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_durable(&self) -> bool {
        self.durable
    }

    pub fn exchange(&self, name: &str) -> Option<&Arc<Exchange<Q, X>>> {
        self.exchanges.get(name)
    }

    pub fn queue(&self, name: &str) -> Option<&Q> {
        self.queues.get(name).map(|e| &e.handle)
    }

    pub fn queue_entry(&self, name: &str) -> Option<&QueueEntry<Q>> {
        self.queues.get(name).map(|e| &**e)
    }

    /// Every exchange, in no particular order.
    pub fn exchanges(&self) -> impl Iterator<Item = &Arc<Exchange<Q, X>>> {
        self.exchanges.iter().map(|(_, ex)| ex)
    }

    /// Every queue, in no particular order.
    pub fn queues(&self) -> impl Iterator<Item = &QueueEntry<Q>> {
        self.queues.iter().map(|(_, q)| &**q)
    }

    /// Looks a queue up for an operation by `connection`: 404 if there is none, 405 if another
    /// connection holds it exclusively.
    pub fn queue_for(&self, name: &str, connection: u64) -> Result<&Q, BrokerError> {
        let entry = self.queues.get(name).ok_or_else(|| self.no_queue(name))?;
        self.check_exclusive_access(entry, connection)?;
        Ok(&entry.handle)
    }

    pub fn no_exchange(&self, name: &str) -> BrokerError {
        BrokerError::no_exchange(name, &self.name)
    }

    pub fn no_queue(&self, name: &str) -> BrokerError {
        BrokerError::no_queue(name, &self.name)
    }

    fn check_exclusive_access(&self, q: &QueueEntry<Q>, connection: u64) -> Result<(), BrokerError> {
        match q.meta.exclusive_owner {
            Some(owner) if owner != connection => Err(self.locked(q)),
            _ => Ok(()),
        }
    }

    /// RabbitMQ's 405 for a queue another connection holds exclusively.
    fn locked(&self, q: &QueueEntry<Q>) -> BrokerError {
        BrokerError::resource_locked(format!(
            "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
            q.meta.name, self.name
        ))
    }
}

/// RabbitMQ's refusal of any change involving the default exchange.
pub fn default_exchange_refusal() -> BrokerError {
    BrokerError::access_refused("operation not permitted on the default exchange")
}

/// The `alternate-exchange` of the policy that applies to exchange `name`.
fn policy_alternate(policies: &PolicySet, name: &str) -> Option<ShortStr> {
    policies
        .for_exchange(name)
        .and_then(|p| p.alternate_exchange().cloned())
}
