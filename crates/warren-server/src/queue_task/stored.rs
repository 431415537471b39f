//! How a queue task stores a message in its log (or spill) and reads it back.
//!
//! The store keeps what the publisher sent (exchange, routing key, raw properties, body)
//! and, for a message with a TTL, its enqueue time, so that after a restart it expires when
//! it would have without one.

use bytes::Bytes;
use tracing::error;
use warren_amqp::BasicProperties;
use warren_core::Message;
use warren_store::StoredMessage;

/// The stored form of `m`; `enqueued_ms` is kept when a TTL applies to it.
pub(crate) fn stored(m: &Message, enqueued_ms: Option<u64>) -> StoredMessage {
    StoredMessage {
        exchange: m.exchange.clone(),
        routing_key: m.routing_key.clone(),
        properties_raw: m.properties_raw.clone(),
        body: m.body.clone(),
        enqueued_ms,
    }
}

/// A message read back from disk, with its enqueue time if it was stored. Its properties are
/// decoded again from the bytes the publisher sent (which consumers receive unchanged).
pub(crate) fn restored(m: StoredMessage) -> (Message, Option<u64>) {
    let properties = BasicProperties::decode(&m.properties_raw).unwrap_or_else(|e| {
        error!("stored message properties do not decode ({e}); delivered without them");
        BasicProperties::default()
    });
    let message = Message {
        exchange: m.exchange,
        routing_key: m.routing_key,
        properties,
        properties_raw: m.properties_raw,
        body: m.body,
    };
    (message, m.enqueued_ms)
}

/// The message with its fields copied into their own allocations (a recovered message's
/// fields are slices of its whole segment's read buffer).
pub(crate) fn detached(m: Message) -> Message {
    let copy = |b: &Bytes| Bytes::copy_from_slice(b);
    Message {
        exchange: warren_amqp::ShortStr::from(m.exchange.as_str()),
        routing_key: warren_amqp::ShortStr::from(m.routing_key.as_str()),
        properties: m.properties,
        properties_raw: copy(&m.properties_raw),
        body: copy(&m.body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use warren_amqp::ShortStr;

    fn message(properties: BasicProperties) -> Message {
        let mut raw = BytesMut::new();
        properties.encode(&mut raw);
        Message {
            exchange: ShortStr::from("ex"),
            routing_key: ShortStr::from("rk"),
            properties,
            properties_raw: raw.freeze(),
            body: Bytes::from_static(b"body"),
        }
    }

    #[test]
    fn enqueue_time_survives_storage_and_properties_come_back_as_sent() {
        let m = message(BasicProperties {
            expiration: Some("500".into()),
            ..Default::default()
        });
        let (back, enqueued) = restored(stored(&m, Some(1_700_000_000_123)));
        assert_eq!(enqueued, Some(1_700_000_000_123));
        assert_eq!(back.properties_raw, m.properties_raw);
        assert_eq!(back.properties, m.properties);
    }

    #[test]
    fn messages_without_ttl_are_stored_as_received() {
        let m = message(BasicProperties {
            priority: Some(1),
            ..Default::default()
        });
        let s = stored(&m, None);
        assert_eq!(s.properties_raw, m.properties_raw);
        assert_eq!(restored(s).1, None);
    }
}
