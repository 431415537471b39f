//! Routing a message through a vhost: from an exchange through its bindings to queues, on
//! through exchange-to-exchange bindings, to alternate exchanges when nothing matched, and
//! through the default exchange to the queue named by the routing key.
//!
//! This is the publish hot path. One lookup per hop; nothing is allocated but the caller's
//! output unless the message crosses an exchange-to-exchange binding or an alternate
//! exchange (then the names to visit and the visited ones go into two small vectors).

use super::{Exchange, QueueHandle, VHostState};
use crate::routing::dedup_tail;
use crate::Message;
use warren_amqp::ShortStr;

/// Exchange-to-exchange hops a message may take before routing stops (cycles are cut by
/// remembering visited exchanges; this bounds pathological chains).
pub const MAX_ROUTING_DEPTH: usize = 64;

/// What an exchange that looks at each message first (a delayed or deduplication exchange)
/// does with one. `T` is what routing appends to (the runtime's destinations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission<T> {
    /// Route it through the bindings.
    Route,
    /// Hand it to this destination instead (a delayed exchange's store): routed, and no
    /// alternate exchange is consulted.
    Hold(T),
    /// Route it nowhere (a duplicate): as if no binding matched, so its alternate exchange may
    /// take it.
    Drop,
}

impl<Q: QueueHandle, X> VHostState<Q, X> {
    /// Routes `message` from `from`, following exchange-to-exchange bindings and alternate
    /// exchanges; appends each destination once to `out` (what `out` held before is left
    /// alone). `admit` is asked first at exchanges that look at each message (delayed,
    /// deduplicating). Returns whether the result depends only on (exchange, routing key), so
    /// that it may be reused for the next message with the same pair while no definition
    /// changes: not when a headers, delayed or deduplication exchange took part.
    ///
    /// Cycles: an exchange is entered at most once per message besides `from` itself (which
    /// may be re-entered once through a cycle back to it), never from itself, and no deeper
    /// than [`MAX_ROUTING_DEPTH`] hops. An alternate exchange is consulted only when the
    /// exchange routed the message nowhere, counting what its exchange-to-exchange bindings
    /// routed.
    pub fn route<T, A>(
        &self,
        from: &Exchange<Q, X>,
        message: &Message,
        admit: A,
        out: &mut Vec<T>,
    ) -> bool
    where
        T: From<Q> + Ord,
        A: FnMut(&Exchange<Q, X>, &Message) -> Admission<T>,
    {
        let start = out.len();
        let mut walk = Walk {
            vhost: self,
            message,
            admit,
            out,
            pending: Vec::new(),
            visited: Vec::new(),
            by_key_only: true,
        };
        walk.enter(from, 0);
        let by_key_only = walk.by_key_only;
        if out.len() - start > 1 {
            dedup_tail(out, start);
        }
        by_key_only
    }
}

/// One message's way through the vhost.
struct Walk<'v, 'm, Q, X, T, A> {
    vhost: &'v VHostState<Q, X>,
    message: &'m Message,
    admit: A,
    out: &'m mut Vec<T>,
    /// Exchange destinations matched at the hops under way, each hop's after its parent's.
    pending: Vec<ShortStr>,
    /// Exchanges entered through a binding or as an alternate.
    visited: Vec<&'v ShortStr>,
    by_key_only: bool,
}

impl<'v, Q: QueueHandle, X, T, A> Walk<'v, '_, Q, X, T, A>
where
    T: From<Q> + Ord,
    A: FnMut(&Exchange<Q, X>, &Message) -> Admission<T>,
{
    fn enter(&mut self, ex: &Exchange<Q, X>, depth: usize) {
        let before = self.out.len();
        self.by_key_only &= ex.behaviour.routes_by_key_only();
        let message = self.message;
        if ex.is_default() {
            if let Some(q) = self.vhost.queues.get(message.routing_key.as_str()) {
                self.out.push(q.handle.clone().into());
            }
            return;
        }
        let looks_first = ex.behaviour.delayed || ex.behaviour.dedup.is_some();
        let admission = match looks_first {
            true => (self.admit)(ex, message),
            false => Admission::Route,
        };
        match admission {
            Admission::Route => {
                let key = message.routing_key.as_str();
                let headers = message.properties.headers.as_ref();
                ex.to_queues.route(key, headers, self.out);
                if !ex.to_exchanges.is_empty() {
                    let mark = self.pending.len();
                    ex.to_exchanges.route(key, headers, &mut self.pending);
                    for i in mark..self.pending.len() {
                        let vhost = self.vhost;
                        let name = &self.pending[i];
                        if self.may_enter(ex, name, depth) {
                            if let Some(next) = vhost.exchanges.get(name) {
                                self.visited.push(&next.meta.name);
                                self.enter(next, depth + 1);
                            }
                        }
                    }
                    self.pending.truncate(mark);
                }
            }
            // Held by the exchange: routed when its delay is over.
            Admission::Hold(store) => {
                self.out.push(store);
                return;
            }
            // A duplicate matches no binding (its alternate exchange may take it).
            Admission::Drop => {}
        }
        if self.out.len() > before {
            return;
        }
        let vhost = self.vhost;
        if let Some(ae) = ex.alternate_exchange() {
            if self.may_enter(ex, ae, depth) {
                if let Some(next) = vhost.exchanges.get(ae) {
                    self.visited.push(&next.meta.name);
                    self.enter(next, depth + 1);
                }
            }
        }
    }

    /// Whether routing may go on from `ex` to the exchange `name`.
    fn may_enter(&self, ex: &Exchange<Q, X>, name: &ShortStr, depth: usize) -> bool {
        depth < MAX_ROUTING_DEPTH && *name != ex.meta.name && !self.visited.contains(&name)
    }
}
