//! A published message as the broker keeps it: routing facts, decoded properties for the
//! rules that need them, the properties exactly as the publisher encoded them (forwarded to
//! consumers without re-encoding), and the body. Shared by `Arc` between every queue it was
//! routed to, so a fanout to N queues holds one copy.

use bytes::Bytes;
use warren_amqp::{BasicProperties, ShortStr};

#[derive(Debug, Clone)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: BasicProperties,
    /// Property flags + list as received (see `warren_amqp::ContentHeader::properties_raw`).
    pub properties_raw: Bytes,
    pub body: Bytes,
}

impl Message {
    pub fn is_persistent(&self) -> bool {
        self.properties.is_persistent()
    }

    /// Bytes the message accounts for in queue length limits (the body, as RabbitMQ counts).
    pub fn body_size(&self) -> usize {
        self.body.len()
    }

    /// An estimate of the memory a queued message holds: its bytes plus the decoded struct
    /// and its `Arc`. Queues count it against their memory budget (see `queue` paging).
    pub fn footprint(&self) -> usize {
        self.body.len()
            + self.properties_raw.len()
            + self.exchange.len()
            + self.routing_key.len()
            + std::mem::size_of::<Message>()
            + 16
    }
}
