//! What the management API asks of a connection (`stats::ConnectionControl`): a description
//! of its channels and consumers, answered from the task's own state, and a forced close
//! with an operator's reason. Also keeps the registry's channel counts current.

use super::channel::ChannelState;
use super::{Connection, End};
use crate::stats::{ChannelInfo, ConnectionControl, ConsumerInfo};
use std::sync::atomic::Ordering;
use warren_core::BrokerError;

impl Connection {
    /// Serves one request; `Some` when the connection ends because of it.
    pub(super) async fn on_control(&mut self, request: ConnectionControl) -> Option<End> {
        match request {
            ConnectionControl::Describe(reply) => {
                let _ = reply.send(self.describe_channels());
                None
            }
            ConnectionControl::Close(reason) => {
                let error = BrokerError::forced(reason);
                Some(self.close_connection(error, 0, 0).await)
            }
        }
    }

    /// A channel was opened (`true`) or is gone.
    pub(super) fn channels_changed(&mut self, opened: bool) {
        let registry = &self.broker.registry;
        let churn = if opened {
            &registry.channels_opened
        } else {
            &registry.channels_closed
        };
        churn.fetch_add(1, Ordering::Relaxed);
        self.stats
            .channels
            .store(self.channels.len() as u32, Ordering::Relaxed);
    }

    fn describe_channels(&self) -> Vec<ChannelInfo> {
        let mut all: Vec<ChannelInfo> = self
            .channels
            .values()
            .map(|c| ChannelInfo {
                number: c.id,
                state: match c.state {
                    ChannelState::Open => "running",
                    ChannelState::Closing => "closing",
                },
                prefetch_count: c.subs.prefetch(),
                global_prefetch_count: c.subs.shared_limit(),
                confirm: c.publisher.is_confirming(),
                transactional: c.tx.is_some(),
                messages_unacknowledged: c.subs.unsettled_count(),
                consumers: c
                    .subs
                    .consumers()
                    .map(|s| {
                        let meta = c.consumer_meta.get(&s.id).cloned().unwrap_or_default();
                        ConsumerInfo {
                            tag: s.tag.to_string(),
                            queue: s.queue.name().to_string(),
                            ack_required: !s.no_ack,
                            exclusive: meta.exclusive,
                            prefetch_count: meta.prefetch,
                            arguments: meta.arguments,
                        }
                    })
                    .collect(),
            })
            .collect();
        all.sort_by_key(|c| c.number);
        all
    }
}
