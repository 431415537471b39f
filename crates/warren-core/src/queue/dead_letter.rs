//! The headers RabbitMQ 3.10 writes on messages that leave a queue abnormally: `x-death`
//! (and `x-first-death-*`) on dead-lettered messages, `x-delivery-count` on quorum queue
//! redeliveries, and the dead-letter cycle rule.
//!
//! These are pure functions of the message, the queue and the time (an argument): the queue
//! task decides when a message dies, routes the result through the dead-letter exchange and
//! drops it for the destinations [`is_death_cycle`] names.
//!
//! The `x-death` rules, as RabbitMQ 3.10 applies them (pinned against it by the pika tests):
//! - The first death adds `x-death = [{count, reason, queue, time, exchange, routing-keys,
//!   original-expiration?}]` (in that key order) and `x-first-death-reason/queue/exchange`.
//! - A later death first groups the existing entries by (queue, reason), which keeps the
//!   first entry of each pair and *reverses* their order (a quirk of RabbitMQ's fold, kept so
//!   headers compare equal); the entry for this (queue, reason) gets `count + 1` and nothing
//!   else (its `time` stays the first death's) or a new entry with count 1 is made; either
//!   way that entry's keys are sorted and it goes first.
//! - An `x-death` that is not an array is replaced by one new entry.
//! - The header table is then sorted by key; with a dead-letter routing key the `CC` header
//!   is removed; the `expiration` property is removed (its value is kept as
//!   `original-expiration`).

use crate::args::DeadLetterTarget;
use crate::Message;
use bytes::{Bytes, BytesMut};
use warren_amqp::{BasicProperties, FieldTable, FieldValue, ShortStr};

/// Why a message left its queue without being acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeathReason {
    /// `basic.reject` / `basic.nack` with `requeue = false`.
    Rejected,
    /// Its TTL (queue `x-message-ttl` or message `expiration`) passed.
    Expired,
    /// Dropped or refused at the queue's length limit.
    Maxlen,
    /// Returned more often than the quorum queue's `x-delivery-limit`.
    DeliveryLimit,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::Maxlen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// The message a queue named `queue` republishes to `target` for `reason`, at `now_secs`
/// (seconds since the Unix epoch, written as the death's `time`).
pub fn dead_letter_message(
    message: &Message,
    reason: DeathReason,
    queue: &str,
    target: &DeadLetterTarget,
    now_secs: u64,
) -> Message {
    let mut properties = message.properties.clone();
    let mut headers = properties.headers.take().unwrap_or_default();
    let mut info = vec![
        (
            ShortStr::from_static("reason"),
            FieldValue::string(reason.as_str()),
        ),
        (ShortStr::from_static("queue"), FieldValue::string(queue)),
        (
            ShortStr::from_static("time"),
            FieldValue::Timestamp(now_secs),
        ),
        (
            ShortStr::from_static("exchange"),
            FieldValue::string(&message.exchange),
        ),
        (
            ShortStr::from_static("routing-keys"),
            FieldValue::Array(death_routing_keys(message, &headers)),
        ),
    ];
    if let Some(expiration) = &properties.expiration {
        info.push((
            ShortStr::from_static("original-expiration"),
            FieldValue::string(expiration),
        ));
    }
    record_death(&mut headers, info, queue, reason, &message.exchange);
    sort_by_key(&mut headers);
    if target.routing_key.is_some() {
        if let Some(i) = headers.0.iter().position(|(k, _)| k.as_str() == "CC") {
            headers.0.remove(i);
        }
    }
    properties.headers = Some(headers);
    properties.expiration = None;
    Message {
        exchange: target.exchange.clone(),
        routing_key: target
            .routing_key
            .clone()
            .unwrap_or_else(|| message.routing_key.clone()),
        properties_raw: encode(&properties),
        properties,
        body: message.body.clone(),
    }
}

/// True if delivering the dead-lettered `message` to the queue named `queue` would close a
/// cycle with no rejection in it (RabbitMQ then drops the message for that queue). Reason
/// `rejected` never cycles: the caller skips the check for it.
pub fn is_death_cycle(message: &Message, queue: &str) -> bool {
    let Some(FieldValue::Array(deaths)) = message
        .properties
        .headers
        .as_ref()
        .and_then(|h| h.get("x-death"))
    else {
        return false;
    };
    let Some(pos) = deaths.iter().position(|d| matches!(d, FieldValue::Table(t) if t.get("queue").and_then(FieldValue::as_str) == Some(queue))) else {
        return false;
    };
    // Anything but a table here was put there by a client: the cycle is not automatic.
    deaths[..=pos]
        .iter()
        .all(|d| matches!(d, FieldValue::Table(t) if t.get("reason").and_then(FieldValue::as_str) != Some("rejected")))
}

/// The message as a quorum queue delivers it after `count` earlier delivery attempts: with
/// an `x-delivery-count` header (and the header table sorted by key, as RabbitMQ does).
pub fn with_delivery_count(message: &Message, count: u32) -> Message {
    let mut properties = message.properties.clone();
    let mut headers = properties.headers.take().unwrap_or_default();
    set_value(
        &mut headers,
        "x-delivery-count",
        FieldValue::I64(count as i64),
    );
    sort_by_key(&mut headers);
    properties.headers = Some(headers);
    Message {
        exchange: message.exchange.clone(),
        routing_key: message.routing_key.clone(),
        properties_raw: encode(&properties),
        properties,
        body: message.body.clone(),
    }
}

/// The routing keys a death records: the message's own, then those of its `CC` and `BCC`
/// headers (RabbitMQ's sender-selected distribution headers).
fn death_routing_keys(message: &Message, headers: &FieldTable) -> Vec<FieldValue> {
    let mut keys = vec![FieldValue::string(&message.routing_key)];
    for name in ["CC", "BCC"] {
        if let Some(FieldValue::Array(routes)) = headers.get(name) {
            keys.extend(
                routes
                    .iter()
                    .filter(|r| matches!(r, FieldValue::LongString(_)))
                    .cloned(),
            );
        }
    }
    keys
}

fn record_death(
    headers: &mut FieldTable,
    info: Vec<(ShortStr, FieldValue)>,
    queue: &str,
    reason: DeathReason,
    exchange: &str,
) {
    let mut first = vec![(ShortStr::from_static("count"), FieldValue::I64(1))];
    first.extend(info);
    let deaths = match headers.get("x-death") {
        None => {
            set_value(
                headers,
                "x-first-death-reason",
                FieldValue::string(reason.as_str()),
            );
            set_value(headers, "x-first-death-queue", FieldValue::string(queue));
            set_value(
                headers,
                "x-first-death-exchange",
                FieldValue::string(exchange),
            );
            vec![FieldValue::Table(FieldTable(first))]
        }
        Some(FieldValue::Array(existing)) => {
            let key = (
                Some(FieldValue::string(queue)),
                Some(FieldValue::string(reason.as_str())),
            );
            let mut grouped = group_by_queue_and_reason(existing);
            let mut entry = match grouped.iter().position(|t| death_key(t) == key) {
                Some(i) => {
                    let mut t = grouped.remove(i);
                    increment_count(&mut t);
                    t
                }
                None => FieldTable(first),
            };
            sort_by_key(&mut entry);
            let mut deaths = vec![FieldValue::Table(entry)];
            deaths.extend(grouped.into_iter().map(FieldValue::Table));
            deaths
        }
        // Clients that republish a consumed message sometimes turn x-death into a string.
        Some(_) => vec![FieldValue::Table(FieldTable(first))],
    };
    set_value(headers, "x-death", FieldValue::Array(deaths));
}

type DeathKey = (Option<FieldValue>, Option<FieldValue>);

fn death_key(t: &FieldTable) -> DeathKey {
    (t.get("queue").cloned(), t.get("reason").cloned())
}

/// One entry per (queue, reason), the first of each; entries without a count get the number
/// of entries sharing their pair. The result is in reverse order of first appearance, as
/// RabbitMQ's fold builds it.
fn group_by_queue_and_reason(deaths: &[FieldValue]) -> Vec<FieldTable> {
    let tables: Vec<&FieldTable> = deaths
        .iter()
        .filter_map(|d| match d {
            FieldValue::Table(t) => Some(t),
            _ => None,
        })
        .collect();
    if tables.len() <= 1 {
        return tables.into_iter().cloned().collect();
    }
    let mut seen: Vec<DeathKey> = Vec::new();
    let mut grouped = Vec::new();
    for t in &tables {
        let key = death_key(t);
        if seen.contains(&key) {
            continue;
        }
        let mut entry = (*t).clone();
        if entry.get("count").is_none() {
            let n = tables.iter().filter(|o| death_key(o) == key).count();
            entry.0.insert(
                0,
                (ShortStr::from_static("count"), FieldValue::I64(n as i64)),
            );
        }
        seen.push(key);
        grouped.insert(0, entry);
    }
    grouped
}

fn increment_count(t: &mut FieldTable) {
    match t.0.iter_mut().find(|(k, _)| k.as_str() == "count") {
        Some((_, v)) => *v = FieldValue::I64(v.as_i64().unwrap_or(0) + 1),
        None => {
            t.0.insert(0, (ShortStr::from_static("count"), FieldValue::I64(1)))
        }
    }
}

/// Replaces the first value under `key`, or appends it.
fn set_value(t: &mut FieldTable, key: &'static str, value: FieldValue) {
    match t.0.iter_mut().find(|(k, _)| k.as_str() == key) {
        Some((_, v)) => *v = value,
        None => t.0.push((ShortStr::from_static(key), value)),
    }
}

/// Stable sort by key bytes (Erlang's `lists:keysort` on binaries).
fn sort_by_key(t: &mut FieldTable) {
    t.0.sort_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
}

fn encode(properties: &BasicProperties) -> Bytes {
    let mut out = BytesMut::new();
    properties.encode(&mut out);
    out.freeze()
}
