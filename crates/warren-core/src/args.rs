//! Queue and consumer arguments (`x-message-ttl`, `x-max-length`, `x-dead-letter-exchange`,
//! `x-queue-type`, `x-priority`, …): their validation at declare and consume time, in
//! RabbitMQ 3.10's order and words, and the typed settings a queue runs with.
//!
//! Validation only applies when a queue is created: a redeclaration is checked for
//! equivalence instead (`entity::QueueMeta::check_equivalent`), as RabbitMQ does. The texts
//! reproduce RabbitMQ's Erlang-term rendering of its reasons (`{value_negative,-1}`,
//! `"expected integer, got longstr"`), so that clients matching on them keep working.
//!
//! This module never reads a clock: TTLs are durations here; deadlines are the queue's
//! business (`queue`).

use crate::entity::QueueMeta;
use crate::BrokerError;
use warren_amqp::{FieldTable, FieldValue, ShortStr};

/// The largest TTL and expiry RabbitMQ accepts, in milliseconds (ten years).
pub const MAX_EXPIRY_MS: u64 = 315_360_000_000;

/// The highest `x-max-priority` RabbitMQ supports.
pub const MAX_SUPPORTED_PRIORITY: i64 = 255;

/// `x-queue-type`. Streams are refused until Warren has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    #[default]
    Classic,
    /// One-node quorum queue: durable only, delivery counting (`x-delivery-count`,
    /// `x-delivery-limit`). Approximations of RabbitMQ's replicated quorum queues:
    /// dead-lettering is at-most-once like a classic queue's (`x-dead-letter-strategy` is
    /// accepted and ignored), and delivery counts live in memory: after a restart a message
    /// that had been handed out counts one earlier delivery.
    Quorum,
}

/// `x-overflow`: what a queue at its length limit does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (dead-letter with reason `maxlen`) the oldest ready messages.
    #[default]
    DropHead,
    /// Refuse the new message: a confirming publisher gets `basic.nack`.
    RejectPublish,
    /// As `RejectPublish`, and also dead-letter the refused message (reason `maxlen`).
    RejectPublishDlx,
}

/// Where dead-lettered messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterTarget {
    pub exchange: ShortStr,
    /// Replaces the message's routing key when set; the original key is kept otherwise.
    pub routing_key: Option<ShortStr>,
}

/// A queue's settings from its arguments. The default is a plain classic queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueArgs {
    pub queue_type: QueueType,
    /// `x-message-ttl`.
    pub message_ttl_ms: Option<u64>,
    /// `x-expires`: the queue deletes itself after being unused this long.
    pub expires_ms: Option<u64>,
    /// `x-max-length` (ready messages).
    pub max_length: Option<u64>,
    /// `x-max-length-bytes` (bodies of ready messages).
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter: Option<DeadLetterTarget>,
    /// `x-max-priority`: priorities 0..=max; `None` for a FIFO queue.
    pub max_priority: Option<u8>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
    /// `x-delivery-limit` (quorum queues): a message returned more often is dead-lettered.
    pub delivery_limit: Option<i64>,
    /// `x-message-deduplication` (see `crate::dedup`).
    pub deduplication: bool,
}

/// Arguments RabbitMQ's classic queues refuse (they belong to other queue types).
const NOT_FOR_CLASSIC: &[&str] = &[
    "x-delivery-limit",
    "x-dead-letter-strategy",
    "x-quorum-initial-group-size",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// Arguments RabbitMQ's quorum queues refuse.
const NOT_FOR_QUORUM: &[&str] = &[
    "x-max-priority",
    "x-queue-mode",
    "x-queue-master-locator",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
];

impl QueueArgs {
    /// Validates the arguments and flags of a queue being created and returns its settings.
    /// Checks run in RabbitMQ's order: the dead-letter exchange's type, each known argument,
    /// then the queue type's own rules.
    pub fn from_declaration(meta: &QueueMeta, vhost: &str) -> Result<QueueArgs, BrokerError> {
        let what = format!("queue '{}' in vhost '{}'", meta.name, vhost);
        let args = &meta.arguments;
        if let Some(v) = args.get("x-dead-letter-exchange") {
            if !matches!(v, FieldValue::LongString(_)) {
                return Err(BrokerError::precondition(format!(
                    "invalid type '{}' for arg 'x-dead-letter-exchange' in {what}",
                    v.type_name()
                )));
            }
        }
        let invalid = |key: &str, reason: String| {
            BrokerError::precondition(format!("invalid arg '{key}' for {what}: {reason}"))
        };
        let mut out = QueueArgs::default();
        let check = |key: &str,
                     rule: fn(&FieldValue, &FieldTable) -> Result<(), String>|
         -> Result<Option<&FieldValue>, BrokerError> {
            match args.get(key) {
                None => Ok(None),
                Some(v) => rule(v, args)
                    .map(|()| Some(v))
                    .map_err(|reason| invalid(key, reason)),
            }
        };
        out.expires_ms = check("x-expires", expires_rule)?.map(as_u64);
        out.message_ttl_ms = check("x-message-ttl", ttl_rule)?.map(as_u64);
        let dlx = check("x-dead-letter-exchange", |_, _| Ok(()))?;
        let dlrk = check("x-dead-letter-routing-key", dlrk_rule)?;
        out.max_length = check("x-max-length", non_neg_int_rule)?.map(as_u64);
        out.max_length_bytes = check("x-max-length-bytes", non_neg_int_rule)?.map(as_u64);
        check("x-max-in-memory-length", non_neg_int_rule)?;
        check("x-max-in-memory-bytes", non_neg_int_rule)?;
        out.max_priority = check("x-max-priority", max_priority_rule)?.map(|v| as_u64(v) as u8);
        out.overflow = match check("x-overflow", overflow_rule)?.and_then(FieldValue::as_str) {
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            _ => Overflow::DropHead,
        };
        check("x-queue-mode", queue_mode_rule)?;
        out.single_active_consumer = check("x-single-active-consumer", bool_rule)?
            .and_then(FieldValue::as_bool)
            .unwrap_or(false);
        let queue_type = check("x-queue-type", queue_type_rule)?
            .and_then(FieldValue::as_str)
            .unwrap_or("classic");
        check("x-quorum-initial-group-size", positive_int_rule)?;
        out.deduplication = check("x-message-deduplication", bool_rule)?
            .and_then(FieldValue::as_bool)
            .unwrap_or(false);
        out.dead_letter = dlx.map(|exchange| DeadLetterTarget {
            exchange: short(exchange),
            routing_key: dlrk.map(short),
        });

        let refused: &[&str] = if queue_type == "classic" {
            NOT_FOR_CLASSIC
        } else {
            NOT_FOR_QUORUM
        };
        let type_name = if queue_type == "classic" {
            "rabbit_classic_queue"
        } else {
            "rabbit_quorum_queue"
        };
        if let Some((key, _)) = args.iter().find(|(k, _)| refused.contains(&k.as_str())) {
            return Err(BrokerError::precondition(format!(
                "invalid arg '{key}' for {what} of queue type {type_name}"
            )));
        }
        if queue_type != "classic" {
            for (bad, property) in [
                (meta.auto_delete, "auto-delete"),
                (meta.exclusive_owner.is_some(), "exclusive-owner"),
                (!meta.durable, "non-durable"),
            ] {
                if bad {
                    return Err(BrokerError::precondition(format!(
                        "invalid property '{property}' for {what}"
                    )));
                }
            }
        }
        match queue_type {
            "quorum" => {
                out.queue_type = QueueType::Quorum;
                // RabbitMQ takes any integer here and ignores other types.
                out.delivery_limit = args.get("x-delivery-limit").and_then(FieldValue::as_i64);
            }
            "stream" => {
                return Err(invalid(
                    "x-queue-type",
                    "\"unsupported queue type 'stream'\"".into(),
                ))
            }
            _ => {}
        }
        Ok(out)
    }

    /// True if this queue may refuse a publish (so every publish in confirm mode needs the
    /// queue's answer, not only persistent ones).
    pub fn may_refuse_publishes(&self) -> bool {
        self.overflow != Overflow::DropHead
            && (self.max_length.is_some() || self.max_length_bytes.is_some())
    }
}

/// Validates a consumer's `x-priority` (RabbitMQ checks its type only) and returns it
/// (0 when absent). `queue_desc` is `queue 'q' in vhost '/'`.
pub fn consumer_priority(arguments: &FieldTable, queue_desc: &str) -> Result<i64, BrokerError> {
    match arguments.get("x-priority") {
        None => Ok(0),
        Some(v) => v.as_i64().ok_or_else(|| {
            BrokerError::precondition(format!(
                "invalid arg 'x-priority' for {queue_desc}: {}",
                expected_integer(v)
            ))
        }),
    }
}

/// Parses a message's `expiration` property as RabbitMQ does (an integer number of
/// milliseconds, 0 to [`MAX_EXPIRY_MS`]), with its texts for what it refuses.
pub fn parse_expiration(expiration: &str) -> Result<u64, BrokerError> {
    let refuse = |reason: String| {
        BrokerError::precondition(format!("invalid expiration '{expiration}': {reason}"))
    };
    // Erlang's string:to_integer: an optional sign, digits, and whatever is left over.
    let unsigned = expiration.strip_prefix(['+', '-']).unwrap_or(expiration);
    let digits = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(refuse("no_integer".into()));
    }
    let rest = &unsigned[digits..];
    if !rest.is_empty() {
        return Err(refuse(format!(
            "{{leftover_string,{}}}",
            erlang_string(rest)
        )));
    }
    let magnitude: u128 = unsigned.parse().unwrap_or(u128::MAX);
    let negative = expiration.starts_with('-') && magnitude != 0;
    let shown = if negative {
        format!("-{magnitude}")
    } else {
        magnitude.to_string()
    };
    if negative {
        return Err(refuse(format!("{{value_negative,{shown}}}")));
    }
    if magnitude > MAX_EXPIRY_MS as u128 {
        return Err(refuse(format!("{{value_too_large,{shown}}}")));
    }
    Ok(magnitude as u64)
}

fn as_u64(v: &FieldValue) -> u64 {
    v.as_i64().map_or(0, |i| i.max(0) as u64)
}

fn short(v: &FieldValue) -> ShortStr {
    let text = match v {
        FieldValue::LongString(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    // A longer name cannot name an exchange anyway.
    ShortStr::truncating(&text)
}

/// `"expected integer, got longstr"`: RabbitMQ 3.10 renders this reason as a quoted string.
fn expected_integer(v: &FieldValue) -> String {
    format!("\"expected integer, got {}\"", v.type_name())
}

fn unacceptable_type(v: &FieldValue) -> String {
    format!("{{unacceptable_type,{}}}", v.type_name())
}

fn int_rule(v: &FieldValue) -> Result<i64, String> {
    v.as_i64().ok_or_else(|| expected_integer(v))
}

fn non_neg_int_rule(v: &FieldValue, _: &FieldTable) -> Result<(), String> {
    match int_rule(v)? {
        n if n < 0 => Err(format!("{{value_negative,{n}}}")),
        _ => Ok(()),
    }
}

fn positive_int_rule(v: &FieldValue, args: &FieldTable) -> Result<(), String> {
    non_neg_int_rule(v, args)?;
    match int_rule(v)? {
        0 => Err("{value_zero,0}".into()),
        _ => Ok(()),
    }
}

fn expiry_rule(n: i64) -> Result<(), String> {
    if n < 0 {
        Err(format!("{{value_negative,{n}}}"))
    } else if n as u64 > MAX_EXPIRY_MS {
        Err(format!("{{value_too_large,{n}}}"))
    } else {
        Ok(())
    }
}

fn ttl_rule(v: &FieldValue, _: &FieldTable) -> Result<(), String> {
    expiry_rule(int_rule(v)?)
}

fn expires_rule(v: &FieldValue, _: &FieldTable) -> Result<(), String> {
    match int_rule(v)? {
        0 => Err("{value_zero,0}".into()),
        n => expiry_rule(n),
    }
}

fn max_priority_rule(v: &FieldValue, args: &FieldTable) -> Result<(), String> {
    non_neg_int_rule(v, args)?;
    match int_rule(v)? {
        n if n > MAX_SUPPORTED_PRIORITY => Err(format!("{{max_value_exceeded,{n}}}")),
        _ => Ok(()),
    }
}

fn dlrk_rule(v: &FieldValue, args: &FieldTable) -> Result<(), String> {
    match v {
        FieldValue::LongString(_) if args.get("x-dead-letter-exchange").is_none() => {
            Err("routing_key_but_no_dlx_defined".into())
        }
        FieldValue::LongString(_) => Ok(()),
        other => Err(unacceptable_type(other)),
    }
}

fn bool_rule(v: &FieldValue, _: &FieldTable) -> Result<(), String> {
    match v {
        FieldValue::Bool(_) => Ok(()),
        other => Err(unacceptable_type(other)),
    }
}

fn one_of(
    v: &FieldValue,
    allowed: &[&str],
    refusal: impl FnOnce(&str) -> String,
) -> Result<(), String> {
    match v {
        FieldValue::LongString(b) => {
            let s = String::from_utf8_lossy(b);
            if allowed.contains(&s.as_ref()) {
                Ok(())
            } else {
                Err(refusal(&s))
            }
        }
        other => Err(unacceptable_type(other)),
    }
}

fn overflow_rule(v: &FieldValue, _: &FieldTable) -> Result<(), String> {
    one_of(
        v,
        &["drop-head", "reject-publish", "reject-publish-dlx"],
        |_| "invalid_overflow".into(),
    )
}

fn queue_mode_rule(v: &FieldValue, _: &FieldTable) -> Result<(), String> {
    one_of(v, &["default", "lazy"], |s| {
        format!("\"unsupported queue mode '{s}'\"")
    })
}

fn queue_type_rule(v: &FieldValue, _: &FieldTable) -> Result<(), String> {
    one_of(v, &["classic", "quorum", "stream"], |s| {
        format!("\"unsupported queue type '{s}'\"")
    })
}

/// An Erlang string as `~p` prints it: in double quotes, with `"` and `\` escaped.
fn erlang_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
