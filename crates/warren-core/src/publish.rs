//! Publishing, whatever the protocol: a [`Publisher`] routes messages (reusing the last
//! route while the vhost's definitions stay the same), gathers them into one batch per
//! destination for the runtime to send, and tracks publisher confirms by opaque
//! [`ConfirmId`]s: a confirm is settled once every destination that must answer it has
//! ([`ConfirmTracker`]). The AMQP channel, dead-lettering, the delayed-message store and any
//! later protocol adapter (MQTT's packet ids, STOMP's receipts) publish through it.
//!
//! What it does not do: look up exchanges or follow bindings (the caller's `route` does, with
//! the vhost model), send anything, or render a confirm in a protocol.

mod confirm;

use crate::queue::{ConfirmId, Incoming};
use crate::Message;
use std::sync::Arc;
use warren_amqp::ShortStr;

pub use confirm::{ConfirmAnswers, ConfirmTracker};

/// Where a routed message goes, as a publisher sees it: the runtime's handle on a queue or
/// on something that holds messages for later (a delayed exchange's store).
pub trait Destination: Clone + Eq {
    /// The destination answers a confirm for `message` itself (it writes it to disk first, or
    /// may refuse it); otherwise the message counts as taken once routed there.
    fn answers_confirm(&self, message: &Message) -> bool;
    /// False for a destination that only holds the message for later: a message that
    /// reaches nothing else is unroutable for `mandatory` (as with RabbitMQ's delayed-message
    /// plugin, which returns it at publish and still routes it when due).
    fn counts_as_routed(&self) -> bool {
        true
    }
}

/// What became of one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The confirm to wait for, in confirm mode.
    pub confirm: Option<ConfirmId>,
    /// It reached a destination (for `mandatory`).
    pub routed: bool,
}

/// The last routing result, valid while the vhost's generation stays.
struct RouteCache<D> {
    generation: u64,
    exchange: ShortStr,
    routing_key: ShortStr,
    destinations: Vec<D>,
}

/// One publisher's routing cache, batches and confirms (see the module docs).
pub struct Publisher<D> {
    cache: Option<RouteCache<D>>,
    scratch: Vec<D>,
    batches: Vec<(D, Vec<Incoming>)>,
    /// Set in confirm mode.
    confirms: Option<ConfirmTracker>,
}

impl<D> Default for Publisher<D> {
    fn default() -> Self {
        Publisher {
            cache: None,
            scratch: Vec::new(),
            batches: Vec::new(),
            confirms: None,
        }
    }
}

impl<D: Destination> Publisher<D> {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on every publish gets a confirm id, numbered from 1 (AMQP's
    /// `confirm.select`: the ids are the confirms' delivery tags).
    pub fn start_confirms(&mut self) {
        self.confirms.get_or_insert_with(ConfirmTracker::new);
    }

    pub fn is_confirming(&self) -> bool {
        self.confirms.is_some()
    }

    /// Routes `message` and adds it to the batch of each destination. `generation` is the
    /// vhost's definitions generation: while it and the (exchange, routing key) pair stay
    /// the same, the last route is reused without calling `route`. `route` appends the
    /// destinations (each once) and says whether the result depends only on that pair;
    /// its error is the caller's (an unknown exchange, say).
    pub fn publish<E>(
        &mut self,
        generation: u64,
        message: Arc<Message>,
        route: impl FnOnce(&Message, &mut Vec<D>) -> Result<bool, E>,
    ) -> Result<Published, E> {
        let hit = self.cache.as_ref().is_some_and(|c| {
            c.generation == generation
                && c.exchange == message.exchange
                && c.routing_key == message.routing_key
        });
        let mut from_cache = hit;
        if !hit {
            self.scratch.clear();
            if route(&message, &mut self.scratch)? {
                self.cache = Some(RouteCache {
                    generation,
                    exchange: message.exchange.clone(),
                    routing_key: message.routing_key.clone(),
                    destinations: std::mem::take(&mut self.scratch),
                });
                from_cache = true;
            }
        }
        // Read the destinations in place: a cache hit clones nothing per message.
        let destinations = match (&self.cache, from_cache) {
            (Some(c), true) => &c.destinations,
            _ => &self.scratch,
        };
        let id = self.confirms.as_mut().map(ConfirmTracker::next_id);
        Ok(add_to_batches(
            &mut self.batches,
            self.confirms.as_mut(),
            id,
            destinations,
            message,
        ))
    }

    /// Adds `message` to the batches of `destinations` (routed by the caller), without the
    /// route cache.
    pub fn publish_to(&mut self, destinations: &[D], message: Arc<Message>) -> Published {
        let id = self.confirms.as_mut().map(ConfirmTracker::next_id);
        add_to_batches(
            &mut self.batches,
            self.confirms.as_mut(),
            id,
            destinations,
            message,
        )
    }

    /// As [`Publisher::publish_to`], with the caller's own confirm id (`None`: this publish
    /// is not tracked). For a publisher whose confirms are numbered by something else: the
    /// delayed-message store tracks each released message by its number in the store's log.
    pub fn publish_tracked(
        &mut self,
        destinations: &[D],
        message: Arc<Message>,
        confirm: Option<ConfirmId>,
    ) -> Published {
        let confirm = confirm.filter(|_| self.confirms.is_some());
        add_to_batches(
            &mut self.batches,
            self.confirms.as_mut(),
            confirm,
            destinations,
            message,
        )
    }

    /// The batches gathered so far, without taking them.
    pub fn batches(&self) -> impl Iterator<Item = (&D, &[Incoming])> {
        self.batches.iter().map(|(d, b)| (d, b.as_slice()))
    }

    pub fn has_batches(&self) -> bool {
        !self.batches.is_empty()
    }

    /// The batches gathered since the last call, one per destination, messages in publish
    /// order.
    pub fn take_batches(&mut self) -> Vec<(D, Vec<Incoming>)> {
        std::mem::take(&mut self.batches)
    }

    /// A destination answered these confirms (`ok`: it took the messages; else it refused
    /// them or could not store them). A destination that is gone counts as `ok`: its messages
    /// were dealt with as if it had been deleted just after taking them.
    pub fn answered(&mut self, ids: impl IntoIterator<Item = ConfirmId>, ok: bool) {
        if let Some(c) = self.confirms.as_mut() {
            for id in ids {
                c.answered(id, ok);
            }
        }
    }

    /// The confirms settled since the last call.
    pub fn take_answers(&mut self) -> ConfirmAnswers {
        match self.confirms.as_mut() {
            Some(c) => c.take_answers(),
            None => ConfirmAnswers::default(),
        }
    }
}

fn add_to_batches<D: Destination>(
    batches: &mut Vec<(D, Vec<Incoming>)>,
    confirms: Option<&mut ConfirmTracker>,
    confirm: Option<ConfirmId>,
    destinations: &[D],
    message: Arc<Message>,
) -> Published {
    let routed = destinations.iter().any(D::counts_as_routed);
    let mut awaiting = 0;
    for d in destinations {
        let confirm = confirm.filter(|_| d.answers_confirm(&message));
        awaiting += confirm.is_some() as u32;
        let incoming = Incoming {
            message: message.clone(),
            confirm,
        };
        // A publisher sends to few destinations at a time: a short list beats a map.
        match batches.iter_mut().find(|(b, _)| b == d) {
            Some((_, batch)) => batch.push(incoming),
            None => batches.push((d.clone(), vec![incoming])),
        }
    }
    if let (Some(id), Some(c)) = (confirm, confirms) {
        c.track(id, awaiting);
    }
    Published { confirm, routed }
}

#[cfg(test)]
mod tests;
