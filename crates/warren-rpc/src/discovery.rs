//! Service discovery: which services are running, and how many live instances each has.
//!
//! Two ways, both plain AMQP so they work on any 0-9-1 broker:
//! - [`Client::discover`] publishes a ping to the fanout exchange `warren.rpc.discovery`;
//!   every live instance has an exclusive queue bound there and answers (by direct reply-to)
//!   with an [`InstanceInfo`]. Answers are collected for a short window. Only live
//!   instances answer (their queues die with their connections), so nothing goes stale and
//!   no heartbeat bookkeeping is needed; the price is the window's wait.
//! - [`Client::instance_count`] asks the broker for the consumer count of one service's
//!   queue (a passive `queue.declare`): exact and immediate, for a service you can name.

use crate::client::Client;
use crate::codec::Format;
use crate::error::RpcError;
use crate::protocol::{service_queue, DISCOVERY_EXCHANGE, REPLY_TO};
use crate::server::declare_discovery_exchange;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A method as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodDesc {
    pub name: String,
    pub idempotent: bool,
}

/// One live instance's answer to a discovery ping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub service: String,
    pub instance: String,
    pub methods: Vec<MethodDesc>,
    /// Requests it works on at once.
    pub concurrency: u16,
    /// Requests it was working on when it answered.
    pub in_flight: u32,
}

/// A service and its live instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub name: String,
    pub instances: Vec<InstanceInfo>,
}

impl ServiceInfo {
    /// The methods of the service (as its first instance reports them).
    pub fn methods(&self) -> &[MethodDesc] {
        self.instances.first().map_or(&[], |i| &i.methods)
    }
}

impl Client {
    /// Lists running services with their live instances, from the answers to one ping
    /// collected during `window` (a few hundred milliseconds suits a local network).
    pub async fn discover(&self, window: Duration) -> Result<Vec<ServiceInfo>, RpcError> {
        let channel = self.channel();
        declare_discovery_exchange(channel).await?;
        let id = self.new_correlation_id();
        let mut answers = self
            .replies()
            .expect_many(&id)
            .ok_or_else(|| RpcError::Transport("the client's reply consumer has stopped".into()))?;
        let props = BasicProperties::default()
            .with_content_type(Format::Json.content_type().into())
            .with_correlation_id(id.as_str().into())
            .with_reply_to(REPLY_TO.into())
            .with_expiration(window.as_millis().max(1).to_string().into());
        let sent = channel
            .basic_publish(
                DISCOVERY_EXCHANGE.into(),
                "".into(),
                BasicPublishOptions::default(),
                b"{}",
                props,
            )
            .await;
        let collected = async {
            sent?.await?;
            let mut by_service: BTreeMap<String, Vec<InstanceInfo>> = BTreeMap::new();
            let until = tokio::time::Instant::now() + window;
            while let Ok(Some(reply)) = tokio::time::timeout_at(until, answers.recv()).await {
                match Format::Json.decode::<InstanceInfo>(&reply.body) {
                    Ok(info) => by_service
                        .entry(info.service.clone())
                        .or_default()
                        .push(info),
                    Err(e) => tracing::debug!("ignoring an undecodable discovery answer: {e}"),
                }
            }
            Ok::<_, RpcError>(by_service)
        }
        .await;
        self.replies().forget(&id);
        Ok(collected?
            .into_iter()
            .map(|(name, mut instances)| {
                instances.sort_by(|a, b| a.instance.cmp(&b.instance));
                ServiceInfo { name, instances }
            })
            .collect())
    }

    /// The number of instances consuming from `service`'s queue right now.
    pub async fn instance_count(&self, service: &str) -> Result<u32, RpcError> {
        // A passive declare of a missing queue closes its channel: use a throwaway one.
        let channel = self.connection().create_channel().await?;
        let queue = service_queue(service);
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        match channel
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
        {
            Ok(q) => {
                let _ = channel.close(200, "done".into()).await;
                Ok(q.consumer_count())
            }
            Err(e) if is_not_found(&e) => Err(RpcError::NoService {
                service: service.to_string(),
                queue,
            }),
            Err(e) => Err(e.into()),
        }
    }
}

fn is_not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if p.get_id() == 404)
}
