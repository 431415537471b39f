//! Definition changes of a vhost: declaring and deleting exchanges and queues, binding and
//! unbinding, and the auto-delete cascade, in RabbitMQ's order of checks and with its texts.
//! Each returns the durable changes it made ([`Applied`]); none touches the runtime.

use super::{
    default_exchange_refusal, policy_alternate, Applied, Binding, DefinitionChange, Destination,
    Exchange, ExchangeDeclaration, NewExchange, NewQueue, QueueDeclaration, QueueEntry,
    QueueHandle, VHostState,
};
use crate::args::QueueArgs;
use crate::entity::{check_not_reserved, ExchangeMeta, QueueMeta};
use crate::exchange_type::ExchangeBehaviour;
use crate::policy::PolicySet;
use crate::routing::validate_binding_arguments;
use crate::{BrokerError, ErrorKind};
use std::sync::Arc;
use warren_amqp::{FieldTable, ShortStr};

impl<Q: QueueHandle, X: Clone> VHostState<Q, X> {
    /// Checks an `exchange.declare` (not passive): an existing exchange must be equivalent;
    /// a new one must not take a reserved `amq.` name and its arguments must validate.
    pub fn check_exchange_declaration(
        &self,
        meta: &ExchangeMeta,
    ) -> Result<ExchangeDeclaration<Q, X>, BrokerError> {
        if meta.name.is_empty() {
            return Err(default_exchange_refusal());
        }
        if let Some(existing) = self.exchanges.get(&meta.name) {
            existing.meta.check_equivalent(meta, &self.name)?;
            return Ok(ExchangeDeclaration::Existing(existing.clone()));
        }
        check_not_reserved("exchange", &meta.name)?;
        // Arguments are validated when an exchange is created, as queues' are.
        let behaviour = ExchangeBehaviour::from_declaration(meta.kind, &meta.arguments)?;
        Ok(ExchangeDeclaration::New(NewExchange {
            meta: meta.clone(),
            behaviour,
            persist: self.durable && meta.durable,
        }))
    }

    /// Adds the exchange (replacing one of the same name), with the `alternate-exchange` of
    /// the policy that applies to it.
    pub fn insert_exchange(
        &mut self,
        new: NewExchange,
        state: X,
        policies: &PolicySet,
    ) -> Arc<Exchange<Q, X>> {
        let mut ex = Exchange::new(new.meta, new.behaviour, state);
        ex.policy_alternate = policy_alternate(policies, &ex.meta.name);
        let ex = Arc::new(ex);
        self.exchanges.insert(ex.meta.name.clone(), ex.clone());
        ex
    }

    /// `exchange.delete`: with its bindings, as source and as destination, and any
    /// auto-delete exchange that loses its last binding with them. The default and `amq.*`
    /// exchanges cannot be deleted; `if_unused` refuses an exchange with bindings.
    pub fn delete_exchange(
        &mut self,
        name: &str,
        if_unused: bool,
    ) -> Result<Applied<Q, X>, BrokerError> {
        if name.is_empty() {
            return Err(default_exchange_refusal());
        }
        if name.starts_with("amq.") {
            return Err(BrokerError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.name
            )));
        }
        let Some(ex) = self.exchanges.get(name) else {
            return Err(self.no_exchange(name));
        };
        if if_unused && ex.has_bindings() {
            return Err(BrokerError::precondition(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.name
            )));
        }
        let mut applied = Applied::default();
        self.remove_exchange(name, &mut applied);
        Ok(applied)
    }

    /// Checks a `queue.declare` by `connection`: an existing queue must be usable by it
    /// (exclusivity, 405) and, unless `passive`, equivalent (406) with the same exclusivity
    /// (405); a new one's arguments must validate. `passive` finds or fails (404).
    pub fn check_queue_declaration(
        &self,
        meta: &QueueMeta,
        passive: bool,
        connection: u64,
    ) -> Result<QueueDeclaration<Q>, BrokerError> {
        if let Some(existing) = self.queues.get(&meta.name) {
            self.check_exclusive_access(existing, connection)?;
            if !passive {
                existing.meta.check_equivalent(meta, &self.name)?;
                if existing.meta.exclusive_owner.is_some() != meta.exclusive_owner.is_some() {
                    return Err(self.locked(existing));
                }
            }
            return Ok(QueueDeclaration::Existing(existing.handle.clone()));
        }
        if passive {
            return Err(self.no_queue(&meta.name));
        }
        // Arguments are validated when a queue is created; a redeclaration only compares them.
        QueueArgs::from_declaration(meta, &self.name)?;
        Ok(QueueDeclaration::New(NewQueue {
            meta: meta.clone(),
            // Exclusive queues die with their connection, so never outlive a restart.
            durable: self.durable && meta.durable && meta.exclusive_owner.is_none(),
            restored: false,
        }))
    }

    /// Adds the queue the runtime created for `new`.
    pub fn insert_queue(&mut self, new: NewQueue, handle: Q) {
        debug_assert_eq!(handle.name(), &new.meta.name);
        let entry = QueueEntry {
            handle,
            meta: new.meta,
            durable: new.durable,
        };
        self.queues.insert(entry.meta.name.clone(), Arc::new(entry));
    }

    /// The queue deleted itself: it goes with its bindings, and any auto-delete exchange
    /// left without bindings goes too. A handle the vhost no longer lists only loses its
    /// bindings.
    pub fn forget_queue(&mut self, queue: &Q) -> Applied<Q, X> {
        let mut applied = Applied::default();
        let listed = self
            .queues
            .get(queue.name())
            .is_some_and(|e| e.handle == *queue);
        if let Some(entry) = listed.then(|| self.queues.remove(queue.name())).flatten() {
            if entry.durable {
                applied
                    .changes
                    .push(DefinitionChange::DeleteQueue(entry.meta.name.clone()));
            }
        }
        self.remove_destination(&Destination::Queue(queue.clone()), &mut applied);
        applied
    }

    /// `queue.bind` / `exchange.bind`. Checks the destination (404; the default exchange
    /// 403), then the source (likewise), then the arguments for the source's type (406).
    /// Binding what is bound already succeeds and changes nothing.
    pub fn bind(
        &mut self,
        source: &str,
        dest: Destination<Q>,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Result<Applied<Q, X>, BrokerError> {
        let dest_durable = self.destination_durable(&dest)?;
        let ex = self.source(source)?;
        validate_binding_arguments(ex.behaviour.routes_as, arguments)
            .map_err(BrokerError::precondition)?;
        let binding = self.stored_binding(ex, &dest, dest_durable, routing_key, arguments);
        let mut applied = Applied::default();
        let ex = self.exchange_mut(source);
        if ex.bind(routing_key, arguments, dest) {
            applied
                .changes
                .extend(binding.map(DefinitionChange::PutBinding));
        }
        Ok(applied)
    }

    /// `queue.unbind` / `exchange.unbind`: idempotent, as in RabbitMQ: a missing binding,
    /// source or destination is not an error (the default exchange still is). An auto-delete
    /// source left without bindings goes, with whatever that cascades to.
    pub fn unbind(
        &mut self,
        source: &str,
        dest: &Destination<Q>,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Result<Applied<Q, X>, BrokerError> {
        let mut applied = Applied::default();
        let dest_durable = match self.destination_durable(dest) {
            Ok(durable) => durable,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(applied),
            Err(e) => return Err(e),
        };
        let ex = match self.source(source) {
            Ok(ex) => ex,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(applied),
            Err(e) => return Err(e),
        };
        let binding = self.stored_binding(ex, dest, dest_durable, routing_key, arguments);
        let ex = self.exchange_mut(source);
        if !ex.unbind(routing_key, arguments, dest) {
            return Ok(applied);
        }
        let now_unused = !ex.has_bindings() && ex.meta.auto_delete;
        applied
            .changes
            .extend(binding.map(DefinitionChange::DeleteBinding));
        if now_unused {
            self.remove_exchange(source, &mut applied);
        }
        Ok(applied)
    }

    /// Gives every exchange the `alternate-exchange` of the policy that now applies to it
    /// (after a policy change). Only exchanges whose alternate changes are copied.
    pub fn apply_policies(&mut self, policies: &PolicySet) {
        let changed: Vec<(ShortStr, Option<ShortStr>)> = self
            .exchanges
            .iter()
            .filter_map(|(name, ex)| {
                let ae = policy_alternate(policies, name);
                (ae != ex.policy_alternate).then(|| (name.clone(), ae))
            })
            .collect();
        for (name, ae) in changed {
            self.exchange_mut(&name).policy_alternate = ae;
        }
    }

    /// A binding read back from the definitions store at start-up: no checks, nothing to
    /// persist. False if one of its ends is gone.
    pub fn restore_binding(
        &mut self,
        source: &str,
        dest: Destination<Q>,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool {
        if self.destination_durable(&dest).is_err() || self.source(source).is_err() {
            return false;
        }
        self.exchange_mut(source).bind(routing_key, arguments, dest);
        true
    }

    /// The source of a binding: never the default exchange.
    fn source(&self, name: &str) -> Result<&Arc<Exchange<Q, X>>, BrokerError> {
        if name.is_empty() {
            return Err(default_exchange_refusal());
        }
        self.exchanges
            .get(name)
            .ok_or_else(|| self.no_exchange(name))
    }

    /// Checks that a binding's destination exists; returns whether it is durable.
    fn destination_durable(&self, dest: &Destination<Q>) -> Result<bool, BrokerError> {
        match dest {
            Destination::Exchange(name) if name.is_empty() => Err(default_exchange_refusal()),
            Destination::Exchange(name) => self
                .exchanges
                .get(name)
                .map(|e| e.meta.durable)
                .ok_or_else(|| self.no_exchange(name)),
            Destination::Queue(q) => self
                .queues
                .get(q.name())
                .filter(|e| e.handle == *q)
                .map(|e| e.durable)
                .ok_or_else(|| self.no_queue(q.name())),
        }
    }

    /// The binding's stored form, if it is durable: both its ends are (as in RabbitMQ), in a
    /// vhost that stores definitions.
    fn stored_binding(
        &self,
        source: &Exchange<Q, X>,
        dest: &Destination<Q>,
        dest_durable: bool,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Option<Binding> {
        if !(self.durable && source.meta.durable && dest_durable) {
            return None;
        }
        Some(Binding {
            source: source.meta.name.clone(),
            destination: match dest {
                Destination::Queue(q) => Destination::Queue(q.name().clone()),
                Destination::Exchange(n) => Destination::Exchange(n.clone()),
            },
            routing_key: routing_key.clone(),
            arguments: arguments.clone(),
        })
    }

    /// The exchange, copied first if a published state shares it. Only for names just
    /// checked to exist.
    fn exchange_mut(&mut self, name: &str) -> &mut Exchange<Q, X> {
        let ex = self
            .exchanges
            .get_mut(name)
            .expect("the exchange was looked up under the same borrow of the vhost");
        Arc::make_mut(ex)
    }

    /// Removes an exchange with its bindings, as source and as destination.
    fn remove_exchange(&mut self, name: &str, applied: &mut Applied<Q, X>) {
        let Some(ex) = self.exchanges.remove(name) else {
            return;
        };
        if self.durable && ex.meta.durable {
            // The store drops the bindings that name it.
            applied
                .changes
                .push(DefinitionChange::DeleteExchange(ex.meta.name.clone()));
        }
        let dest = Destination::Exchange(ex.meta.name.clone());
        applied.removed_exchanges.push(ex);
        self.remove_destination(&dest, applied);
    }

    /// Removes every binding to `dest`, then any auto-delete exchange left without bindings
    /// (which cascades).
    fn remove_destination(&mut self, dest: &Destination<Q>, applied: &mut Applied<Q, X>) {
        let sources: Vec<ShortStr> = self
            .exchanges
            .iter()
            .filter(|(_, ex)| ex.has_destination(dest))
            .map(|(name, _)| name.clone())
            .collect();
        for name in sources {
            // An earlier step of the cascade may have removed it.
            let Some(ex) = self.exchanges.get_mut(&name) else {
                continue;
            };
            let ex = Arc::make_mut(ex);
            ex.remove_destination(dest);
            if !ex.has_bindings() && ex.meta.auto_delete {
                self.remove_exchange(&name, applied);
            }
        }
    }
}
