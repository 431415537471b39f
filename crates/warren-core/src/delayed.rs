//! Delayed messages, as the rabbitmq-delayed-message-exchange plugin defines them: an
//! `x-delayed-message` exchange holds a message whose `x-delay` header is a delay in
//! milliseconds within `1..=`[`MAX_DELAY_MS`], then routes it as its `x-delayed-type` with
//! `x-delay` turned negative (so that a delayed exchange it passes through next does not
//! delay it again, and consumers can tell it was delayed). Any other message is routed at
//! once, unchanged.
//!
//! What counts as a delay, as the plugin reads it: an integer of any width; a string holding
//! an integer (`"5000"`); a float, truncated. Anything else (a bool, a string that is not an
//! integer, a table…) means no delay. (The plugin fails on a string that is not an integer;
//! Warren routes such a message at once, as for the other types it cannot read.)
//!
//! [`DelaySchedule`] orders held messages by due time, then by arrival (FIFO among equal due
//! times); [`DelayStore`] is a delayed exchange's store built on it. Pure state: time is an
//! argument.

mod store;

use crate::Message;
use bytes::BytesMut;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use warren_amqp::{FieldValue, ShortStr};

pub use store::{DelayStore, Hold, Release};

/// The message header holding the delay.
pub const DELAY_HEADER: &str = "x-delay";

/// The longest delay the plugin holds a message for (the largest Erlang timer, ~49.7 days);
/// a longer one routes the message at once.
pub const MAX_DELAY_MS: u64 = 4_294_967_295;

/// The delay `message` asks for, if it is to be held: `x-delay` read as above, in
/// `1..=MAX_DELAY_MS`.
pub fn delay_of(message: &Message) -> Option<u64> {
    let value = message.properties.headers.as_ref()?.get(DELAY_HEADER)?;
    let delay = header_delay(value)?;
    (delay > 0 && delay as u64 <= MAX_DELAY_MS).then_some(delay as u64)
}

fn header_delay(value: &FieldValue) -> Option<i64> {
    match value {
        FieldValue::LongString(b) | FieldValue::ByteArray(b) => {
            std::str::from_utf8(b).ok()?.parse::<i64>().ok()
        }
        // `as` saturates, and a NaN becomes 0 (no delay).
        FieldValue::F32(f) => Some(f.trunc() as i64),
        FieldValue::F64(f) => Some(f.trunc() as i64),
        other => other.as_i64(),
    }
}

/// `message` as its delayed exchange routes it once `delay_ms` has passed: `x-delay` is
/// `-delay_ms`, in place, a signed 32-bit integer as the plugin for RabbitMQ 3.x writes it
/// (a long for the few delays beyond its range).
pub fn released(message: &Message, delay_ms: u64) -> Message {
    let mut properties = message.properties.clone();
    let mut headers = properties.headers.take().unwrap_or_default();
    let negated = -(delay_ms as i64);
    let value = i32::try_from(negated).map_or(FieldValue::I64(negated), FieldValue::I32);
    match headers
        .0
        .iter_mut()
        .find(|(k, _)| k.as_str() == DELAY_HEADER)
    {
        Some((_, v)) => *v = value,
        None => headers.0.push((ShortStr::from_static(DELAY_HEADER), value)),
    }
    properties.headers = Some(headers);
    let mut raw = BytesMut::new();
    properties.encode(&mut raw);
    Message {
        exchange: message.exchange.clone(),
        routing_key: message.routing_key.clone(),
        properties_raw: raw.freeze(),
        properties,
        body: message.body.clone(),
    }
}

struct Held<T> {
    due_ms: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due_ms, self.seq) == (other.due_ms, other.seq)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due_ms, self.seq).cmp(&(other.due_ms, other.seq))
    }
}

/// Held items by due time (a min-heap), FIFO by `seq` among equal due times.
pub struct DelaySchedule<T> {
    heap: BinaryHeap<Reverse<Held<T>>>,
}

impl<T> Default for DelaySchedule<T> {
    fn default() -> Self {
        DelaySchedule {
            heap: BinaryHeap::new(),
        }
    }
}

impl<T> DelaySchedule<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Holds `item` until `due_ms`; `seq` orders items due at the same millisecond.
    pub fn push(&mut self, due_ms: u64, seq: u64, item: T) {
        self.heap.push(Reverse(Held { due_ms, seq, item }));
    }

    /// When the next item is due.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(h)| h.due_ms)
    }

    /// The next item due at or before `now_ms`, with its `seq`.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<(u64, T)> {
        if self.next_due_ms()? > now_ms {
            return None;
        }
        self.heap.pop().map(|Reverse(h)| (h.seq, h.item))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use warren_amqp::{BasicProperties, FieldTable};

    fn message(delay: Option<FieldValue>) -> Message {
        let mut headers = FieldTable::new();
        headers.insert("before", FieldValue::I32(1));
        if let Some(d) = delay {
            headers.insert(DELAY_HEADER, d);
        }
        headers.insert("after", FieldValue::I32(2));
        let properties = BasicProperties {
            headers: Some(headers),
            delivery_mode: Some(2),
            ..Default::default()
        };
        let mut raw = BytesMut::new();
        properties.encode(&mut raw);
        Message {
            exchange: ShortStr::from("delayed"),
            routing_key: ShortStr::from("rk"),
            properties,
            properties_raw: raw.freeze(),
            body: Bytes::from_static(b"payload"),
        }
    }

    #[test]
    fn integer_delays_of_any_width_are_read() {
        assert_eq!(delay_of(&message(Some(FieldValue::I32(500)))), Some(500));
        assert_eq!(delay_of(&message(Some(FieldValue::U16(7)))), Some(7));
        assert_eq!(delay_of(&message(Some(FieldValue::I64(1)))), Some(1));
    }

    #[test]
    fn strings_and_floats_are_converted_as_the_plugin_does() {
        assert_eq!(
            delay_of(&message(Some(FieldValue::string("250")))),
            Some(250)
        );
        assert_eq!(delay_of(&message(Some(FieldValue::F64(99.9)))), Some(99));
        assert_eq!(delay_of(&message(Some(FieldValue::string("soon")))), None);
        assert_eq!(delay_of(&message(Some(FieldValue::string("1.5")))), None);
        assert_eq!(delay_of(&message(Some(FieldValue::Bool(true)))), None);
        assert_eq!(delay_of(&message(Some(FieldValue::F64(f64::NAN)))), None);
    }

    #[test]
    fn missing_non_positive_and_too_long_delays_route_at_once() {
        assert_eq!(delay_of(&message(None)), None);
        assert_eq!(delay_of(&message(Some(FieldValue::I32(0)))), None);
        assert_eq!(delay_of(&message(Some(FieldValue::I32(-300)))), None);
        assert_eq!(
            delay_of(&message(Some(FieldValue::I64(MAX_DELAY_MS as i64)))),
            Some(MAX_DELAY_MS)
        );
        assert_eq!(
            delay_of(&message(Some(FieldValue::I64(MAX_DELAY_MS as i64 + 1)))),
            None
        );
    }

    #[test]
    fn a_released_message_carries_the_negated_delay_in_place() {
        let held = message(Some(FieldValue::string("250")));
        let out = released(&held, 250);
        let headers = out.properties.headers.as_ref().unwrap();
        let keys: Vec<&str> = headers.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["before", DELAY_HEADER, "after"]);
        assert_eq!(headers.get(DELAY_HEADER), Some(&FieldValue::I32(-250)));
        let longest = released(&held, MAX_DELAY_MS);
        assert_eq!(
            longest.properties.headers.unwrap().get(DELAY_HEADER),
            Some(&FieldValue::I64(-(MAX_DELAY_MS as i64)))
        );
        assert_eq!(delay_of(&out), None, "released messages are not held again");
        assert_eq!(
            BasicProperties::decode(&out.properties_raw).unwrap(),
            out.properties
        );
        assert!(out.is_persistent());
        assert_eq!(out.body, held.body);
    }

    #[test]
    fn the_schedule_releases_by_due_time_then_arrival() {
        let mut s = DelaySchedule::new();
        for (seq, due) in [(1, 500), (2, 100), (3, 300), (4, 100), (5, 400)] {
            s.push(due, seq, format!("m{seq}"));
        }
        assert_eq!(s.next_due_ms(), Some(100));
        assert_eq!(s.pop_due(99), None);
        let mut out = Vec::new();
        while let Some((seq, item)) = s.pop_due(350) {
            out.push((seq, item));
        }
        assert_eq!(
            out,
            [(2, "m2".to_string()), (4, "m4".into()), (3, "m3".into())]
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s.next_due_ms(), Some(400));
    }
}
