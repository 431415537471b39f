//! Definitions of exchanges and queues (what `declare` creates), their names' rules, and
//! the equivalence checks RabbitMQ applies when something is declared again.

use crate::exchange_type::ExchangeType;
use crate::BrokerError;
use warren_amqp::{FieldTable, FieldValue, ShortStr};

/// Queue arguments whose values must match on redeclare (RabbitMQ checks these and
/// ignores unknown ones).
const EQUIVALENCE_CHECKED_QUEUE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
];

#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeMeta {
    pub name: ShortStr,
    /// The declared type (a built-in one or a plugin type).
    pub kind: ExchangeType,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

impl ExchangeMeta {
    /// The `alternate-exchange` argument, where unroutable messages go.
    pub fn alternate_exchange(&self) -> Option<&str> {
        self.arguments
            .get("alternate-exchange")
            .and_then(FieldValue::as_str)
    }

    /// Checks a redeclaration against this exchange as RabbitMQ does: type, durable,
    /// auto-delete, internal and the `alternate-exchange` argument must match.
    pub fn check_equivalent(&self, other: &ExchangeMeta, vhost: &str) -> Result<(), BrokerError> {
        let what = format!("exchange '{}' in vhost '{}'", self.name, vhost);
        if self.kind != other.kind {
            return Err(inequivalent(
                "type",
                &what,
                other.kind.as_str(),
                self.kind.as_str(),
            ));
        }
        check_flag("durable", &what, other.durable, self.durable)?;
        check_flag("auto_delete", &what, other.auto_delete, self.auto_delete)?;
        check_flag("internal", &what, other.internal, self.internal)?;
        check_args(
            &["alternate-exchange"],
            &what,
            &other.arguments,
            &self.arguments,
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueMeta {
    pub name: ShortStr,
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

impl QueueMeta {
    /// Checks a redeclaration as RabbitMQ does. Exclusivity is checked by the caller
    /// (it needs the declaring connection, and answers 405 rather than 406).
    pub fn check_equivalent(&self, other: &QueueMeta, vhost: &str) -> Result<(), BrokerError> {
        let what = format!("queue '{}' in vhost '{}'", self.name, vhost);
        check_flag("durable", &what, other.durable, self.durable)?;
        check_flag("auto_delete", &what, other.auto_delete, self.auto_delete)?;
        check_args(
            EQUIVALENCE_CHECKED_QUEUE_ARGS,
            &what,
            &other.arguments,
            &self.arguments,
        )
    }
}

fn inequivalent(arg: &str, what: &str, received: &str, current: &str) -> BrokerError {
    BrokerError::precondition(format!(
        "inequivalent arg '{arg}' for {what}: received '{received}' but current is '{current}'"
    ))
}

fn check_flag(arg: &str, what: &str, received: bool, current: bool) -> Result<(), BrokerError> {
    if received == current {
        Ok(())
    } else {
        Err(inequivalent(
            arg,
            what,
            &received.to_string(),
            &current.to_string(),
        ))
    }
}

/// RabbitMQ's texts: `received '6' but current is '5'` when both sides have the argument,
/// `received none but current is the value '5' of type 'signedint'` when one lacks it.
fn check_args(
    keys: &[&str],
    what: &str,
    received: &FieldTable,
    current: &FieldTable,
) -> Result<(), BrokerError> {
    for key in keys {
        let (r, c) = (received.get(key), current.get(key));
        let (r, c) = if *key == "x-queue-type" {
            (r.filter(|v| !is_classic(v)), c.filter(|v| !is_classic(v)))
        } else {
            (r, c)
        };
        if !args_equal(r, c) {
            let (received, current) = match (r, c) {
                (Some(r), Some(c)) => (
                    format!("'{}'", display_value(r)),
                    format!("'{}'", display_value(c)),
                ),
                _ => (describe_value(r), describe_value(c)),
            };
            return Err(BrokerError::precondition(format!(
                "inequivalent arg '{key}' for {what}: received {received} but current is {current}"
            )));
        }
    }
    Ok(())
}

/// A queue declared without `x-queue-type` is a classic queue: RabbitMQ treats an explicit
/// `classic` as equivalent to no type at all.
fn is_classic(v: &FieldValue) -> bool {
    v.as_str() == Some("classic")
}

/// Integers compare by value whatever their width (clients pick different widths for the same
/// number); everything else compares exactly.
fn args_equal(a: Option<&FieldValue>, b: Option<&FieldValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        _ => false,
    }
}

/// RabbitMQ's wording: `the value '100' of type 'long'`, or `none`.
pub fn describe_value(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".to_string(),
        Some(v) => format!(
            "the value '{}' of type '{}'",
            display_value(v),
            v.type_name()
        ),
    }
}

pub fn display_value(v: &FieldValue) -> String {
    match v {
        FieldValue::LongString(b) => String::from_utf8_lossy(b).into_owned(),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::F32(f) => f.to_string(),
        FieldValue::F64(f) => f.to_string(),
        FieldValue::Timestamp(t) => t.to_string(),
        other => match other.as_i64() {
            Some(i) => i.to_string(),
            None => format!("{other:?}"),
        },
    }
}

/// Names starting with `amq.` are reserved for the broker (RabbitMQ answers 403).
pub fn check_not_reserved(kind: &str, name: &str) -> Result<(), BrokerError> {
    if name.starts_with("amq.") {
        Err(BrokerError::access_refused(format!(
            "{kind} name '{name}' contains reserved prefix 'amq.*'"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(durable: bool, args: FieldTable) -> QueueMeta {
        QueueMeta {
            name: "q".into(),
            durable,
            exclusive_owner: None,
            auto_delete: false,
            arguments: args,
        }
    }

    #[test]
    fn redeclare_with_other_durability_names_the_argument() {
        let err = queue(true, FieldTable::new())
            .check_equivalent(&queue(false, FieldTable::new()), "/")
            .unwrap_err();
        assert_eq!(err.reply_code(), warren_amqp::ReplyCode::PreconditionFailed);
        assert_eq!(
            err.reply_text(),
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but current is 'true'"
        );
    }

    #[test]
    fn integer_arguments_of_different_widths_are_equivalent() {
        let mut a = FieldTable::new();
        a.insert("x-message-ttl", FieldValue::I32(100));
        let mut b = FieldTable::new();
        b.insert("x-message-ttl", FieldValue::I64(100));
        assert!(queue(true, a)
            .check_equivalent(&queue(true, b), "/")
            .is_ok());
    }

    #[test]
    fn missing_checked_argument_is_inequivalent_and_unknown_ones_are_ignored() {
        let mut a = FieldTable::new();
        a.insert("x-max-length", FieldValue::I64(10));
        let mut b = FieldTable::new();
        b.insert("x-whatever", FieldValue::I64(1));
        let err = queue(true, a)
            .check_equivalent(&queue(true, b.clone()), "/")
            .unwrap_err();
        assert!(
            err.reply_text().contains("inequivalent arg 'x-max-length'"),
            "{}",
            err.reply_text()
        );
        assert!(
            err.reply_text()
                .contains("received none but current is the value '10' of type 'long'"),
            "{}",
            err.reply_text()
        );
        assert!(queue(true, FieldTable::new())
            .check_equivalent(&queue(true, b), "/")
            .is_ok());
    }

    #[test]
    fn reserved_prefix_is_refused() {
        let err = check_not_reserved("queue", "amq.x").unwrap_err();
        assert_eq!(err.reply_code(), warren_amqp::ReplyCode::AccessRefused);
        assert!(check_not_reserved("queue", "amqx").is_ok());
    }
}
