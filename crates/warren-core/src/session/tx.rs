//! [`Transaction`]: what a transacted session (AMQP `tx.select`, STOMP `BEGIN`) publishes
//! and settles, held back until commit. At commit the publishes are made first, in order,
//! then the settlements, in order (as RabbitMQ applies a committed transaction); rollback
//! drops both. `P` is the adapter's form of a publish.

use crate::queue::Settlement;

/// A settlement made inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxSettle {
    pub tag: u64,
    pub multiple: bool,
    pub how: Settlement,
}

#[derive(Debug)]
pub struct Transaction<P> {
    publishes: Vec<P>,
    settles: Vec<TxSettle>,
}

impl<P> Default for Transaction<P> {
    fn default() -> Self {
        Transaction {
            publishes: Vec::new(),
            settles: Vec::new(),
        }
    }
}

impl<P> Transaction<P> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn publish(&mut self, publish: P) {
        self.publishes.push(publish);
    }

    pub fn settle(&mut self, tag: u64, multiple: bool, how: Settlement) {
        self.settles.push(TxSettle { tag, multiple, how });
    }

    /// Ends this transaction and starts the next one: what to apply, publishes first.
    pub fn commit(&mut self) -> (Vec<P>, Vec<TxSettle>) {
        (
            std::mem::take(&mut self.publishes),
            std::mem::take(&mut self.settles),
        )
    }

    /// Drops what this transaction held.
    pub fn rollback(&mut self) {
        self.publishes.clear();
        self.settles.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.publishes.is_empty() && self.settles.is_empty()
    }
}
