//! How a queue task stores a message in its log and reads it back.
//!
//! The log stores what the publisher sent (exchange, routing key, raw properties, body). A
//! message with a TTL also needs its enqueue time, so that after a restart it expires when it
//! would have without one. `warren_store::StoredMessage` has no field for it, so it travels
//! in front of the raw properties, behind a marker no client can have sent:
//!
//! ```text
//! properties_raw := 0x00 0x01 0xFF 0xFE | enqueued_ms: u64 BE | the properties as received
//! ```
//!
//! `0x0001` is a property-flags word with only the continuation bit set, and `0xFFFE` a
//! continuation word that sets properties class `basic` does not have: the codec refuses such
//! a header at publish, so a stored message starts this way only if Warren wrote the marker.
//! Messages without a TTL are stored exactly as received.

use bytes::{BufMut, Bytes, BytesMut};
use tracing::error;
use warren_amqp::BasicProperties;
use warren_core::Message;
use warren_store::StoredMessage;

const ENQUEUED_MARKER: [u8; 4] = [0x00, 0x01, 0xFF, 0xFE];
const ENVELOPE_BYTES: usize = ENQUEUED_MARKER.len() + 8;

/// The stored form of `m`; `enqueued_ms` is kept when a TTL applies to it.
pub(super) fn stored(m: &Message, enqueued_ms: Option<u64>) -> StoredMessage {
    let properties_raw = match enqueued_ms {
        None => m.properties_raw.clone(),
        Some(ms) => {
            let mut out = BytesMut::with_capacity(ENVELOPE_BYTES + m.properties_raw.len());
            out.put_slice(&ENQUEUED_MARKER);
            out.put_u64(ms);
            out.put_slice(&m.properties_raw);
            out.freeze()
        }
    };
    StoredMessage {
        exchange: m.exchange.clone(),
        routing_key: m.routing_key.clone(),
        properties_raw,
        body: m.body.clone(),
    }
}

/// A message read back from disk, with its enqueue time if it was stored. Its properties are
/// decoded again from the bytes the publisher sent (which consumers receive unchanged).
pub(super) fn restored(m: StoredMessage) -> (Message, Option<u64>) {
    let (properties_raw, enqueued_ms) = split_envelope(m.properties_raw);
    let properties = BasicProperties::decode(&properties_raw).unwrap_or_else(|e| {
        error!("stored message properties do not decode ({e}); delivered without them");
        BasicProperties::default()
    });
    let message = Message {
        exchange: m.exchange,
        routing_key: m.routing_key,
        properties,
        properties_raw,
        body: m.body,
    };
    (message, enqueued_ms)
}

/// The message with its fields copied into their own allocations (a recovered message's
/// fields are slices of its whole segment's read buffer).
pub(super) fn detached(m: Message) -> Message {
    let copy = |b: &Bytes| Bytes::copy_from_slice(b);
    Message {
        exchange: warren_amqp::ShortStr::from(m.exchange.as_str()),
        routing_key: warren_amqp::ShortStr::from(m.routing_key.as_str()),
        properties: m.properties,
        properties_raw: copy(&m.properties_raw),
        body: copy(&m.body),
    }
}

fn split_envelope(raw: Bytes) -> (Bytes, Option<u64>) {
    if raw.len() >= ENVELOPE_BYTES && raw[..ENQUEUED_MARKER.len()] == ENQUEUED_MARKER {
        let ms = u64::from_be_bytes(
            raw[ENQUEUED_MARKER.len()..ENVELOPE_BYTES]
                .try_into()
                .expect("8 bytes"),
        );
        (raw.slice(ENVELOPE_BYTES..), Some(ms))
    } else {
        (raw, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn the_marker_is_a_header_the_codec_refuses() {
        let mut raw = ENQUEUED_MARKER.to_vec();
        raw.extend_from_slice(&[0; 8]);
        assert!(BasicProperties::decode(&Bytes::from(raw)).is_err());
    }
}
