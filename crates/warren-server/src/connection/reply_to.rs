//! Direct reply-to, as RabbitMQ implements it: RPC replies that go straight to the caller's
//! channel without a queue.
//!
//! A caller consumes (no-ack) from the pseudo-queue `amq.rabbitmq.reply-to` and publishes
//! requests with `reply_to = amq.rabbitmq.reply-to`; the broker rewrites that property to an
//! opaque `amq.rabbitmq.reply-to.<token>` naming the caller's channel. A reply published to
//! the default exchange with that name as routing key is handed to the caller's connection
//! as a delivery on its reply consumer. Nothing is queued: a caller that is gone loses the
//! reply (returned with 312 NO_ROUTE if the publish was mandatory).
//!
//! This module owns the reply consumers of one connection ([`ReplyConsumers`]) and the
//! broker-wide [`REGISTRY`] through which any connection finds a caller. It never touches a
//! queue, and a reply costs one read lock on one registry shard: no lock is shared by all
//! connections per message.
//!
//! Differences from RabbitMQ 3.10, both deliberate: a mandatory reply that reached its
//! caller is not also returned (3.10 returns every mandatory reply, since its default
//! exchange routes a reply to no queue), and each reply gets a fresh delivery tag (3.10
//! reuses the channel's next tag, so a reply and the next queue delivery share a tag).

use super::Connection;
use crate::names;
use crate::queue_task::{Outbound, Sink};
use bytes::BytesMut;
use parking_lot::RwLock;
use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use warren_amqp::{BasicConsume, ContentHeader, Method, QueueDeclare, QueueDeclareOk, ShortStr};
use warren_core::queue::Delivery;
use warren_core::{BrokerError, Message};

/// The pseudo-queue a caller consumes from and names as `reply_to`.
pub(super) const PSEUDO_QUEUE: &str = "amq.rabbitmq.reply-to";
/// What every generated reply-to name starts with.
const NAME_PREFIX: &str = "amq.rabbitmq.reply-to.";
/// Hex digits of a token: a 64-bit caller id then a 128-bit secret.
const TOKEN_HEX_LEN: usize = 16 + 32;
/// Registry shards: replies to different callers rarely touch the same lock.
const SHARDS: usize = 32;

/// A reply consumer as other connections find it.
struct Caller {
    sink: Sink,
    channel: u16,
    /// Makes a name unguessable: knowing a caller id is not enough to reach its channel.
    secret: u128,
}

/// Every live reply consumer of the process, by caller id.
///
/// Process-wide rather than per broker: ids come from one process-wide counter and names
/// carry a 128-bit secret, so brokers sharing a process (tests) cannot mistake each other's
/// callers. Writes happen on consume, cancel and close; a reply only reads one shard.
struct Registry {
    shards: Vec<RwLock<HashMap<u64, Caller>>>,
}

impl Registry {
    fn shard(&self, id: u64) -> &RwLock<HashMap<u64, Caller>> {
        &self.shards[id as usize % SHARDS]
    }
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
});
static NEXT_CALLER_ID: AtomicU64 = AtomicU64::new(1);

/// `amq.rabbitmq.reply-to.<id><secret>` in fixed-width hex.
fn reply_name(id: u64, secret: u128) -> String {
    format!("{NAME_PREFIX}{id:016x}{secret:032x}")
}

/// The caller id and secret a reply-to name carries; `None` for anything we did not make.
fn parse_reply_name(name: &str) -> Option<(u64, u128)> {
    let token = name.strip_prefix(NAME_PREFIX)?;
    if token.len() != TOKEN_HEX_LEN || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = u64::from_str_radix(&token[..16], 16).ok()?;
    let secret = u128::from_str_radix(&token[16..], 16).ok()?;
    Some((id, secret))
}

/// Whether a reply-to name belongs to a live reply consumer.
fn is_live(name: &str) -> bool {
    parse_reply_name(name).is_some_and(|(id, secret)| {
        REGISTRY
            .shard(id)
            .read()
            .get(&id)
            .is_some_and(|c| c.secret == secret)
    })
}

/// Hands a message published to the default exchange with a reply-to name as routing key to
/// its caller's connection. True if a live caller took it; false otherwise (not a reply-to
/// name, unknown name, or the caller is gone), in which case the reply is dropped.
pub(super) fn route_reply(message: &Arc<Message>) -> bool {
    if !message.exchange.is_empty() || !message.routing_key.starts_with(NAME_PREFIX) {
        return false;
    }
    let Some((id, secret)) = parse_reply_name(&message.routing_key) else {
        return false;
    };
    let shard = REGISTRY.shard(id).read();
    let Some(caller) = shard.get(&id).filter(|c| c.secret == secret) else {
        return false;
    };
    caller
        .sink
        .send(Outbound::DirectReply {
            channel: caller.channel,
            caller: id,
            message: message.clone(),
        })
        .is_ok()
}

/// The reply consumer of one channel.
struct ReplyConsumer {
    channel: u16,
    tag: ShortStr,
    caller: u64,
    /// The generated `amq.rabbitmq.reply-to.…` name this channel's requests carry.
    name: ShortStr,
}

/// The reply consumers of one connection (at most one per channel). Dropping it removes them
/// from the registry, so a connection that ends by any path stops receiving replies.
#[derive(Default)]
pub(super) struct ReplyConsumers {
    /// Few channels of a connection consume replies: a short list beats a map.
    consumers: Vec<ReplyConsumer>,
}

impl ReplyConsumers {
    fn on_channel(&self, channel: u16) -> Option<&ReplyConsumer> {
        self.consumers.iter().find(|c| c.channel == channel)
    }

    /// Forgets the channel's reply consumer; replies still arriving for it are dropped.
    pub(super) fn channel_closed(&mut self, channel: u16) {
        if let Some(i) = self.consumers.iter().position(|c| c.channel == channel) {
            let c = self.consumers.swap_remove(i);
            REGISTRY.shard(c.caller).write().remove(&c.caller);
        }
    }
}

impl Drop for ReplyConsumers {
    fn drop(&mut self) {
        for c in self.consumers.drain(..) {
            REGISTRY.shard(c.caller).write().remove(&c.caller);
        }
    }
}

impl Connection {
    /// `basic.consume` from `amq.rabbitmq.reply-to`; `None` for any other queue.
    pub(super) fn consume_replies(
        &mut self,
        ch: u16,
        m: &BasicConsume,
    ) -> Option<Result<(), BrokerError>> {
        if m.queue.as_str() != PSEUDO_QUEUE {
            return None;
        }
        Some(self.start_reply_consumer(ch, m))
    }

    fn start_reply_consumer(&mut self, ch: u16, m: &BasicConsume) -> Result<(), BrokerError> {
        let channel = self
            .channels
            .get(&ch)
            .expect("method dispatch checked the channel is open");
        if channel.subs.has_consumer(&m.consumer_tag)
            || self
                .replies
                .on_channel(ch)
                .is_some_and(|c| c.tag == m.consumer_tag)
        {
            return Err(BrokerError::not_allowed(format!(
                "attempt to reuse consumer tag '{}'",
                m.consumer_tag
            )));
        }
        if !m.no_ack {
            return Err(BrokerError::precondition("reply consumer cannot acknowledge"));
        }
        if self.replies.on_channel(ch).is_some() {
            return Err(BrokerError::precondition("reply consumer already set"));
        }
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(names::consumer_tag())
        } else {
            m.consumer_tag.clone()
        };
        let caller = NEXT_CALLER_ID.fetch_add(1, Ordering::Relaxed);
        let secret: u128 = rand::thread_rng().gen();
        REGISTRY.shard(caller).write().insert(
            caller,
            Caller {
                sink: self.sink.clone(),
                channel: ch,
                secret,
            },
        );
        let name = ShortStr::from(reply_name(caller, secret));
        self.replies.consumers.push(ReplyConsumer {
            channel: ch,
            tag: tag.clone(),
            caller,
            name,
        });
        self.reply(ch, !m.nowait, Method::BasicConsumeOk { consumer_tag: tag })
    }

    /// `basic.cancel` of the channel's reply consumer, if `tag` names it. The caller replies
    /// cancel-ok as for any tag.
    pub(super) fn cancel_replies(&mut self, ch: u16, tag: &ShortStr) {
        if self.replies.on_channel(ch).is_some_and(|c| &c.tag == tag) {
            self.replies.channel_closed(ch);
        }
    }

    /// A publish whose `reply_to` is `amq.rabbitmq.reply-to` gets the channel's generated
    /// name instead; without a reply consumer on the channel that is RabbitMQ's 406.
    pub(super) fn rewrite_reply_to(
        &self,
        ch: u16,
        mut header: Box<ContentHeader>,
    ) -> Result<Box<ContentHeader>, BrokerError> {
        if header
            .properties
            .reply_to
            .as_ref()
            .is_none_or(|r| r.as_str() != PSEUDO_QUEUE)
        {
            return Ok(header);
        }
        let Some(consumer) = self.replies.on_channel(ch) else {
            return Err(BrokerError::precondition(
                "fast reply consumer does not exist",
            ));
        };
        header.properties.reply_to = Some(consumer.name.clone());
        let mut raw = BytesMut::with_capacity(
            header.properties_raw.len() + NAME_PREFIX.len() + TOKEN_HEX_LEN,
        );
        header.properties.encode(&mut raw);
        header.properties_raw = raw.freeze();
        Ok(header)
    }

    /// `queue.declare` of `amq.rabbitmq.reply-to` or of a name starting with it (passive or
    /// not, as RabbitMQ): the pseudo-queue and live reply-to names exist with no messages and
    /// one consumer, anything else is 404. `None` for other queue names.
    pub(super) fn declare_reply_queue(
        &mut self,
        ch: u16,
        m: &QueueDeclare,
    ) -> Option<Result<(), BrokerError>> {
        let name = m.queue.as_str();
        if !name.starts_with(PSEUDO_QUEUE) {
            return None;
        }
        if name != PSEUDO_QUEUE && !is_live(name) {
            return Some(Err(self.vhost.no_queue(name)));
        }
        let ok = QueueDeclareOk {
            queue: m.queue.clone(),
            message_count: 0,
            consumer_count: 1,
        };
        Some(self.reply(ch, !m.nowait, Method::QueueDeclareOk(ok)))
    }

    /// Writes a reply that another connection routed to one of our channels, unless that
    /// channel's reply consumer is gone meanwhile (then the reply is dropped).
    pub(super) fn deliver_reply(&mut self, ch: u16, caller: u64, message: Arc<Message>) {
        let Some(consumer) = self.replies.on_channel(ch).filter(|c| c.caller == caller) else {
            return;
        };
        let Some(channel) = self
            .channels
            .get_mut(&ch)
            .filter(|c| c.state == super::channel::ChannelState::Open)
        else {
            return;
        };
        let delivery_tag = channel.subs.unsettled_number();
        let delivery = Delivery {
            seq: 0,
            message,
            redelivered: false,
        };
        super::deliver::write_delivery(
            &mut self.wbuf,
            ch,
            consumer.tag.as_bytes(),
            delivery_tag,
            &delivery,
            self.frame_max,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_name_round_trips_id_and_secret() {
        let name = reply_name(42, u128::MAX - 7);
        assert!(name.starts_with(NAME_PREFIX));
        assert_eq!(parse_reply_name(&name), Some((42, u128::MAX - 7)));
    }

    #[test]
    fn names_not_made_by_us_do_not_parse() {
        assert_eq!(parse_reply_name(PSEUDO_QUEUE), None);
        assert_eq!(parse_reply_name("amq.rabbitmq.reply-to.garbage"), None);
        let short = &reply_name(1, 2)[..NAME_PREFIX.len() + TOKEN_HEX_LEN - 1];
        assert_eq!(parse_reply_name(short), None);
        let signed = format!(
            "{NAME_PREFIX}+{}",
            &reply_name(1, 2)[NAME_PREFIX.len() + 1..]
        );
        assert_eq!(parse_reply_name(&signed), None);
    }

    #[test]
    fn reply_reaches_registered_caller_only_with_the_right_secret() {
        let (sink, mut outbound) = tokio::sync::mpsc::unbounded_channel();
        let id = NEXT_CALLER_ID.fetch_add(1, Ordering::Relaxed);
        REGISTRY.shard(id).write().insert(
            id,
            Caller {
                sink,
                channel: 3,
                secret: 99,
            },
        );
        let reply = |name: String| {
            Arc::new(Message {
                exchange: ShortStr::from(""),
                routing_key: ShortStr::from(name),
                properties: Default::default(),
                properties_raw: Default::default(),
                body: Default::default(),
            })
        };
        assert!(!route_reply(&reply(reply_name(id, 98))));
        assert!(route_reply(&reply(reply_name(id, 99))));
        match outbound.try_recv() {
            Ok(Outbound::DirectReply {
                channel: 3, caller, ..
            }) => assert_eq!(caller, id),
            other => panic!("expected a direct reply for channel 3, got {other:?}"),
        }
        assert!(is_live(&reply_name(id, 99)));
        REGISTRY.shard(id).write().remove(&id);
        assert!(!is_live(&reply_name(id, 99)));
        assert!(!route_reply(&reply(reply_name(id, 99))));
    }

    #[test]
    fn reply_to_a_caller_whose_connection_ended_is_not_taken() {
        let (sink, outbound) = tokio::sync::mpsc::unbounded_channel();
        drop(outbound);
        let id = NEXT_CALLER_ID.fetch_add(1, Ordering::Relaxed);
        REGISTRY.shard(id).write().insert(
            id,
            Caller {
                sink,
                channel: 1,
                secret: 5,
            },
        );
        let message = Arc::new(Message {
            exchange: ShortStr::from(""),
            routing_key: ShortStr::from(reply_name(id, 5)),
            properties: Default::default(),
            properties_raw: Default::default(),
            body: Default::default(),
        });
        assert!(!route_reply(&message));
        REGISTRY.shard(id).write().remove(&id);
    }
}
