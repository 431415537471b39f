//! The task that owns one queue: it applies the commands connections send it, in batches,
//! then hands ready messages to consumers through their connections' outbound channels.
//!
//! Commands arrive on a bounded channel, so a publisher faster than the queue waits on
//! `send` and stops reading its socket (TCP backpressure). The queue never waits on a
//! connection: deliveries go out on unbounded channels whose depth the consumers' credit
//! bounds (see `warren_core::queue`).

use crate::vhost::VHost;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot};
use warren_amqp::ShortStr;
use warren_core::entity::QueueMeta;
use warren_core::queue::{ChannelKey, ConsumerId, ConsumerSpec, Delivery, QueueState, Seq};
use warren_core::{AmqpError, Message};

/// Commands waiting for a queue before its publishers are made to wait.
const INBOX_CAPACITY: usize = 1024;
/// Commands a queue applies before it dispatches.
const BATCH: usize = 128;

/// How a queue reaches a consumer's connection.
pub type Sink = mpsc::UnboundedSender<Outbound>;

/// What queues send to a connection.
#[derive(Debug)]
pub enum Outbound {
    Deliveries(Vec<OutDelivery>),
    /// The queue was deleted under this consumer (RabbitMQ's server-sent `basic.cancel`).
    Cancelled { channel: u16, consumer: ConsumerId },
}

#[derive(Debug)]
pub struct OutDelivery {
    pub channel: u16,
    pub consumer: ConsumerId,
    pub delivery: Delivery,
}

pub struct QueueStats {
    pub messages: u32,
    pub consumers: u32,
}

pub enum QueueCmd {
    Publish(Vec<Arc<Message>>),
    Consume { spec: ConsumerSpec<Sink>, reply: oneshot::Sender<Result<(), AmqpError>> },
    Cancel { consumer: ConsumerId, reply: oneshot::Sender<()> },
    Get { owner: ChannelKey, no_ack: bool, reply: oneshot::Sender<Option<(Delivery, usize)>> },
    Ack(Vec<Seq>),
    Requeue(Vec<Seq>),
    Discard(Vec<Seq>),
    Credit { consumer: ConsumerId, n: u32 },
    /// Channel credit was released; consumers blocked on it may take messages again.
    Dispatch,
    ChannelClosed { owner: ChannelKey, reply: Option<oneshot::Sender<()>> },
    Purge { reply: oneshot::Sender<usize> },
    Stats { reply: oneshot::Sender<QueueStats> },
    Delete { if_unused: bool, if_empty: bool, reply: oneshot::Sender<Result<usize, AmqpError>> },
}

/// A queue as the rest of the broker sees it: its definition and its inbox.
pub struct QueueHandle {
    pub id: u64,
    pub meta: QueueMeta,
    pub vhost: String,
    inbox: mpsc::Sender<QueueCmd>,
}

impl QueueHandle {
    /// `queue 'q' in vhost '/'`, for error texts.
    pub fn describe(&self) -> String {
        format!("queue '{}' in vhost '{}'", self.meta.name, self.vhost)
    }

    pub fn name(&self) -> &ShortStr {
        &self.meta.name
    }

    /// Sends a command; false if the queue is gone (deleted meanwhile).
    pub async fn send(&self, cmd: QueueCmd) -> bool {
        self.inbox.send(cmd).await.is_ok()
    }

    /// Sends a command that carries a reply channel and waits for the reply; `None` if the
    /// queue is gone.
    pub async fn call<R>(&self, make: impl FnOnce(oneshot::Sender<R>) -> QueueCmd) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)).await {
            return None;
        }
        rx.await.ok()
    }
}

/// Shared handle to a queue; equal, ordered and hashed by the queue's id so it can be a
/// routing destination.
#[derive(Clone)]
pub struct QueueRef(pub Arc<QueueHandle>);

impl Deref for QueueRef {
    type Target = QueueHandle;
    fn deref(&self) -> &QueueHandle {
        &self.0
    }
}
impl PartialEq for QueueRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for QueueRef {}
impl Hash for QueueRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state)
    }
}
impl PartialOrd for QueueRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for QueueRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.id.cmp(&other.0.id)
    }
}
impl std::fmt::Debug for QueueRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Queue({}#{})", self.0.meta.name, self.0.id)
    }
}

/// Creates the queue and starts its task.
pub fn spawn(id: u64, meta: QueueMeta, vhost: &Arc<VHost>) -> QueueRef {
    let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
    let queue = QueueRef(Arc::new(QueueHandle { id, meta, vhost: vhost.name.clone(), inbox: tx }));
    let task = QueueTask {
        queue: queue.clone(),
        vhost: Arc::downgrade(vhost),
        state: QueueState::new(),
        had_consumer: false,
        deleted: false,
    };
    tokio::spawn(task.run(rx));
    queue
}

struct QueueTask {
    queue: QueueRef,
    vhost: Weak<VHost>,
    state: QueueState<Sink>,
    had_consumer: bool,
    deleted: bool,
}

impl QueueTask {
    async fn run(mut self, mut inbox: mpsc::Receiver<QueueCmd>) {
        let mut cmds = Vec::with_capacity(BATCH);
        while !self.deleted {
            if inbox.recv_many(&mut cmds, BATCH).await == 0 {
                break;
            }
            for cmd in cmds.drain(..) {
                self.apply(cmd);
                if self.deleted {
                    break;
                }
            }
            if self.deleted {
                break;
            }
            self.dispatch();
        }
        // Commands still queued find the queue gone: dropping their reply senders tells
        // their callers so.
        inbox.close();
    }

    fn apply(&mut self, cmd: QueueCmd) {
        match cmd {
            QueueCmd::Publish(messages) => {
                for m in messages {
                    self.state.publish(m);
                }
            }
            QueueCmd::Consume { spec, reply } => {
                let result = self.state.add_consumer(spec, &self.queue.describe());
                if result.is_ok() {
                    self.had_consumer = true;
                }
                let _ = reply.send(result);
            }
            QueueCmd::Cancel { consumer, reply } => {
                self.state.cancel_consumer(consumer);
                // Decide auto-deletion before replying, so the canceller's next command
                // already finds the queue gone.
                self.maybe_auto_delete();
                let _ = reply.send(());
            }
            QueueCmd::Get { owner, no_ack, reply } => {
                let _ = reply.send(self.state.get(owner, no_ack));
            }
            QueueCmd::Ack(seqs) => self.state.ack(&seqs),
            QueueCmd::Requeue(seqs) => self.state.requeue(&seqs),
            QueueCmd::Discard(seqs) => {
                // Dead-lettering hooks in here.
                self.state.discard(&seqs);
            }
            QueueCmd::Credit { consumer, n } => self.state.credit(consumer, n),
            QueueCmd::Dispatch => {}
            QueueCmd::ChannelClosed { owner, reply } => {
                self.state.channel_closed(owner);
                self.maybe_auto_delete();
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
            }
            QueueCmd::Purge { reply } => {
                let _ = reply.send(self.state.purge());
            }
            QueueCmd::Stats { reply } => {
                let _ = reply.send(QueueStats {
                    messages: self.state.message_count() as u32,
                    consumers: self.state.consumer_count() as u32,
                });
            }
            QueueCmd::Delete { if_unused, if_empty, reply } => {
                if if_unused && self.state.consumer_count() > 0 {
                    let _ = reply.send(Err(AmqpError::precondition(format!("{} in use", self.queue.describe()))));
                } else if if_empty && self.state.message_count() > 0 {
                    let _ = reply.send(Err(AmqpError::precondition(format!("{} not empty", self.queue.describe()))));
                } else {
                    let count = self.delete();
                    let _ = reply.send(Ok(count));
                }
            }
        }
    }

    fn dispatch(&mut self) {
        let mut batches: Vec<(u64, Sink, Vec<OutDelivery>)> = Vec::new();
        self.state.dispatch(|spec, delivery| {
            let conn = spec.owner.connection;
            let slot = match batches.iter().position(|(c, _, _)| *c == conn) {
                Some(i) => i,
                None => {
                    batches.push((conn, spec.sink.clone(), Vec::new()));
                    batches.len() - 1
                }
            };
            batches[slot].2.push(OutDelivery { channel: spec.owner.channel, consumer: spec.id, delivery });
        });
        for (_, sink, deliveries) in batches {
            // A closed connection's deliveries come back through `ChannelClosed`.
            let _ = sink.send(Outbound::Deliveries(deliveries));
        }
    }

    /// An auto-delete queue goes when its last consumer does (not before it ever had one).
    fn maybe_auto_delete(&mut self) {
        if self.queue.meta.auto_delete && self.had_consumer && self.state.consumer_count() == 0 && !self.deleted {
            self.delete();
        }
    }

    /// Deletes the queue: cancels its consumers, removes it and its bindings from the vhost.
    /// Returns the number of ready messages dropped.
    fn delete(&mut self) -> usize {
        let count = self.state.message_count();
        for spec in self.state.drain_consumers() {
            let _ = spec.sink.send(Outbound::Cancelled { channel: spec.owner.channel, consumer: spec.id });
        }
        if let Some(vhost) = self.vhost.upgrade() {
            vhost.forget_queue(&self.queue);
        }
        self.deleted = true;
        count
    }
}
