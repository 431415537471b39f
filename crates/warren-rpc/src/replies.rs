//! Matches replies to the calls waiting for them, by `correlation_id`.
//!
//! A client consumes its replies (direct reply-to) on one channel; one task reads that
//! consumer and hands each reply to the call registered under its correlation id. Replies
//! nobody waits for any more (the call timed out) are dropped.

use futures_lite::StreamExt;
use lapin::Consumer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

/// A reply as the waiting call needs it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

enum Waiter {
    /// A call: its first reply completes it.
    One(oneshot::Sender<Reply>),
    /// A discovery round: every instance answers.
    Many(mpsc::UnboundedSender<Reply>),
}

#[derive(Default)]
pub(crate) struct Replies {
    waiting: Mutex<HashMap<String, Waiter>>,
    /// Set once the reply consumer ended: new calls fail at once.
    closed: std::sync::atomic::AtomicBool,
}

impl Replies {
    /// Registers a call before its request is sent (a reply cannot overtake it).
    pub(crate) fn expect_one(&self, id: &str) -> Option<oneshot::Receiver<Reply>> {
        let (tx, rx) = oneshot::channel();
        self.register(id, Waiter::One(tx)).then_some(rx)
    }

    pub(crate) fn expect_many(&self, id: &str) -> Option<mpsc::UnboundedReceiver<Reply>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.register(id, Waiter::Many(tx)).then_some(rx)
    }

    fn register(&self, id: &str, waiter: Waiter) -> bool {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        self.waiting
            .lock()
            .expect("replies lock")
            .insert(id.to_string(), waiter);
        true
    }

    /// The call stopped waiting.
    pub(crate) fn forget(&self, id: &str) {
        self.waiting.lock().expect("replies lock").remove(id);
    }

    fn dispatch(&self, id: &str, reply: Reply) {
        let mut waiting = self.waiting.lock().expect("replies lock");
        match waiting.get(id) {
            Some(Waiter::Many(tx)) => {
                let _ = tx.send(reply);
            }
            Some(Waiter::One(_)) => {
                if let Some(Waiter::One(tx)) = waiting.remove(id) {
                    let _ = tx.send(reply);
                }
            }
            None => debug!(
                correlation_id = id,
                "reply for a call that no longer waits; dropped"
            ),
        }
    }

    /// Reads the reply consumer until it ends, then fails every waiting call (their
    /// senders drop).
    pub(crate) async fn run(self: Arc<Self>, mut consumer: Consumer) {
        while let Some(delivery) = consumer.next().await {
            let Ok(delivery) = delivery else { break };
            let Some(id) = delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.to_string())
            else {
                debug!("reply without correlation_id; dropped");
                continue;
            };
            let content_type = delivery
                .properties
                .content_type()
                .as_ref()
                .map(|c| c.to_string());
            self.dispatch(
                &id,
                Reply {
                    content_type,
                    body: delivery.data,
                },
            );
        }
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.waiting.lock().expect("replies lock").clear();
    }
}
