//! Where a routed message goes ([`Target`]): a queue, or a delayed exchange's store that holds
//! it for later — two kinds of destination, not a flagged queue. Publishers
//! (`warren_core::publish::Publisher<Target>`) batch per target and send each batch here.
//!
//! Also the two narrow interfaces through which queue tasks and delay stores reach their
//! vhost without depending on it: [`Routes`] (route a message from an exchange, for dead
//! letters and delayed releases) and [`QueueEvents`] (a queue reports that it is gone; the
//! vhost removes it and its bindings).

use crate::delay_store::DelayRef;
use crate::queue_task::{ConfirmTo, QueueRef};
use std::sync::Weak;
use tokio::sync::mpsc;
use warren_core::publish::Destination;
use warren_core::queue::Incoming;
use warren_core::{BrokerError, Message};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Queue(QueueRef),
    Delay(DelayRef),
}

impl Destination for Target {
    fn answers_confirm(&self, message: &Message) -> bool {
        match self {
            Target::Queue(q) => q.answers_confirm(message),
            Target::Delay(d) => d.answers_confirm(message),
        }
    }

    fn counts_as_routed(&self) -> bool {
        matches!(self, Target::Queue(_))
    }
}

impl Target {
    /// Sends a publisher's batch, waiting for room in the target's inbox (backpressure);
    /// false if the target is gone.
    pub async fn publish(&self, batch: Vec<Incoming>, confirms: Option<ConfirmTo>) -> bool {
        match self {
            Target::Queue(q) => q.publish(batch, confirms).await,
            Target::Delay(d) => d.publish(batch, confirms).await,
        }
    }

    /// Sends a batch without waiting (from a queue or a delay store, which must never wait
    /// on another); false if the target is gone.
    pub fn publish_now(&self, batch: Vec<Incoming>, confirms: Option<ConfirmTo>) -> bool {
        match self {
            Target::Queue(q) => q.publish_now(batch, confirms),
            Target::Delay(d) => d.publish_now(batch, confirms),
        }
    }

    /// Waits until what was sent so far is on disk (`tx.commit`); false if it failed.
    pub async fn sync(&self) -> bool {
        match self {
            Target::Queue(q) => q.sync().await,
            Target::Delay(d) => d.sync().await,
        }
    }

    /// True if it writes persistent messages to disk before confirming them.
    pub fn persists(&self) -> bool {
        match self {
            Target::Queue(q) => q.persists(),
            Target::Delay(d) => d.persists(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Queue(q) => q.describe(),
            Target::Delay(d) => d.describe(),
        }
    }

    pub fn as_queue(&self) -> Option<&QueueRef> {
        match self {
            Target::Queue(q) => Some(q),
            Target::Delay(_) => None,
        }
    }
}

/// Routing as queue tasks and delay stores need it.
pub trait Routes: Send + Sync {
    /// Routes `message` from the exchange named `exchange`, appending each target once;
    /// whether the result may be reused for the same (exchange, routing key). A missing
    /// exchange is `NOT_FOUND`.
    fn route(&self, exchange: &str, message: &Message, out: &mut Vec<Target>)
        -> Result<bool, BrokerError>;
}

/// A task's handle on its vhost's routing; the vhost may be gone.
pub type RoutesRef = Weak<dyn Routes>;

/// A queue whose task ended by deletion (deleted, auto-deleted, expired, exclusive owner
/// gone): its vhost removes it, its bindings and its stored definition.
pub struct QueueGone(pub QueueRef);

pub type QueueEvents = mpsc::UnboundedSender<QueueGone>;
