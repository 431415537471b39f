//! Exchange types: RabbitMQ's four built-in ones and the two plugin types Warren implements,
//! `x-delayed-message` (rabbitmq-delayed-message-exchange) and `x-message-deduplication`
//! (rabbitmq-message-deduplication); the validation of their arguments when an exchange is
//! created, in the plugins' words; and what an exchange of each type does besides routing
//! ([`ExchangeBehaviour`]).
//!
//! As in RabbitMQ, arguments are validated only when an exchange is created: a redeclaration
//! compares the type name (not `x-delayed-type` or the cache settings) and
//! `alternate-exchange` (`entity::ExchangeMeta::check_equivalent`).

use crate::routing::ExchangeKind;
use crate::BrokerError;
use warren_amqp::{FieldTable, FieldValue};

/// The `type` of `exchange.declare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeType {
    /// `direct`, `fanout`, `topic`, `headers`.
    Builtin(ExchangeKind),
    /// `x-delayed-message`: holds messages with a positive `x-delay` header for that many
    /// milliseconds, then routes them as its `x-delayed-type`.
    DelayedMessage,
    /// `x-message-deduplication`: drops messages whose `x-deduplication-header` it has seen
    /// within its cache, routes the others to every binding (as a fanout).
    MessageDeduplication,
}

impl ExchangeType {
    pub const DELAYED_MESSAGE: &'static str = "x-delayed-message";
    pub const MESSAGE_DEDUPLICATION: &'static str = "x-message-deduplication";

    /// Parses a type name; case-sensitive, as in RabbitMQ.
    pub fn parse(s: &str) -> Option<ExchangeType> {
        match s {
            Self::DELAYED_MESSAGE => Some(ExchangeType::DelayedMessage),
            Self::MESSAGE_DEDUPLICATION => Some(ExchangeType::MessageDeduplication),
            _ => ExchangeKind::parse(s).map(ExchangeType::Builtin),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ExchangeType::Builtin(kind) => kind.as_str(),
            ExchangeType::DelayedMessage => Self::DELAYED_MESSAGE,
            ExchangeType::MessageDeduplication => Self::MESSAGE_DEDUPLICATION,
        }
    }

    /// RabbitMQ's refusal of a type nobody registered: a 406 channel error, as RabbitMQ
    /// 3.13 and later answer (3.10 closed the connection with 503 COMMAND_INVALID).
    pub fn unknown(name: &str) -> BrokerError {
        BrokerError::precondition(format!("unknown exchange type '{name}'"))
    }
}

impl From<ExchangeKind> for ExchangeType {
    fn from(kind: ExchangeKind) -> Self {
        ExchangeType::Builtin(kind)
    }
}

/// Where a deduplication exchange keeps its cache (`x-cache-persistence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CachePersistence {
    /// Lost at restart (the plugin's default).
    #[default]
    Memory,
    /// Kept across restarts (for a durable exchange).
    Disk,
}

/// A deduplication exchange's cache settings (`x-cache-size`, `x-cache-ttl`,
/// `x-cache-persistence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Entries kept at most; the oldest go first when it is full.
    pub size: u64,
    /// How long an entry counts, unless the message's own `x-cache-ttl` header says
    /// otherwise; `None` keeps entries until they are pushed out.
    pub ttl_ms: Option<u64>,
    pub persistence: CachePersistence,
}

/// What an exchange does with a message, decided once from its type and arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeBehaviour {
    /// How its bindings match: the type itself, a delayed exchange's `x-delayed-type`, or
    /// fanout for a deduplication exchange.
    pub routes_as: ExchangeKind,
    /// Messages with a positive `x-delay` wait before they are routed.
    pub delayed: bool,
    /// Messages are deduplicated against this cache before they are routed.
    pub dedup: Option<CacheSettings>,
}

impl ExchangeBehaviour {
    /// The behaviour of a built-in type (also the fallback for definitions that no longer
    /// validate).
    pub fn plain(kind: ExchangeKind) -> Self {
        ExchangeBehaviour {
            routes_as: kind,
            delayed: false,
            dedup: None,
        }
    }

    /// Validates the arguments of an exchange being created, as the plugins do: a delayed
    /// exchange needs `x-delayed-type` naming another existing type (and that type's own
    /// arguments), a deduplication exchange a positive `x-cache-size`.
    pub fn from_declaration(kind: ExchangeType, arguments: &FieldTable) -> Result<Self, BrokerError> {
        match kind {
            ExchangeType::Builtin(kind) => Ok(Self::plain(kind)),
            ExchangeType::MessageDeduplication => Ok(ExchangeBehaviour {
                routes_as: ExchangeKind::Fanout,
                delayed: false,
                dedup: Some(cache_settings(arguments)?),
            }),
            ExchangeType::DelayedMessage => {
                let underlying = match arguments.get("x-delayed-type").and_then(text) {
                    Some(ExchangeType::DELAYED_MESSAGE) => return Err(BrokerError::precondition(
                        "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
                    )),
                    Some(name) => {
                        ExchangeType::parse(name).ok_or_else(|| ExchangeType::unknown(name))?
                    }
                    None => {
                        return Err(BrokerError::precondition(
                            "Invalid argument, 'x-delayed-type' must be an existing exchange type",
                        ))
                    }
                };
                let inner = Self::from_declaration(underlying, arguments)?;
                Ok(ExchangeBehaviour {
                    delayed: true,
                    ..inner
                })
            }
        }
    }

    /// True if which bindings match depends only on the routing key, so a publisher may reuse
    /// the result for the next message with the same key. Headers matching, a delay and a
    /// deduplication cache all look at each message.
    pub fn routes_by_key_only(&self) -> bool {
        self.routes_as != ExchangeKind::Headers && !self.delayed && self.dedup.is_none()
    }
}

/// A string argument (a long string or a byte array, which Erlang sees alike).
fn text(v: &FieldValue) -> Option<&str> {
    match v {
        FieldValue::LongString(b) | FieldValue::ByteArray(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// A positive integer: any integer type, or a string holding one (the plugin accepts both).
fn positive_int(v: &FieldValue) -> Option<u64> {
    let n = match v.as_i64() {
        Some(n) => n,
        None => text(v)?.parse::<i64>().ok()?,
    };
    (n > 0).then_some(n as u64)
}

fn cache_settings(arguments: &FieldTable) -> Result<CacheSettings, BrokerError> {
    let size = arguments
        .get("x-cache-size")
        .and_then(positive_int)
        .ok_or_else(|| {
            BrokerError::precondition(
                "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0",
            )
        })?;
    let ttl_ms = match arguments.get("x-cache-ttl") {
        None => None,
        Some(v) => Some(positive_int(v).ok_or_else(|| {
            BrokerError::precondition(
                "Invalid argument, 'x-cache-ttl' must be an integer greater than 0",
            )
        })?),
    };
    let persistence = match arguments.get("x-cache-persistence") {
        None => CachePersistence::Memory,
        Some(FieldValue::LongString(b)) if &b[..] == b"memory" => CachePersistence::Memory,
        Some(FieldValue::LongString(b)) if &b[..] == b"disk" => CachePersistence::Disk,
        Some(_) => {
            return Err(BrokerError::precondition(
                "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'",
            ))
        }
    };
    Ok(CacheSettings {
        size,
        ttl_ms,
        persistence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::ReplyCode;

    fn args(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        t
    }

    fn declare(kind: &str, pairs: &[(&str, FieldValue)]) -> Result<ExchangeBehaviour, BrokerError> {
        ExchangeBehaviour::from_declaration(ExchangeType::parse(kind).unwrap(), &args(pairs))
    }

    #[test]
    fn type_names_round_trip() {
        for name in [
            "direct",
            "fanout",
            "topic",
            "headers",
            "x-delayed-message",
            "x-message-deduplication",
        ] {
            assert_eq!(ExchangeType::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(ExchangeType::parse("Direct"), None);
    }

    #[test]
    fn delayed_exchange_routes_as_its_delayed_type() {
        let b = declare(
            "x-delayed-message",
            &[("x-delayed-type", FieldValue::string("topic"))],
        )
        .unwrap();
        assert_eq!(b.routes_as, ExchangeKind::Topic);
        assert!(b.delayed && b.dedup.is_none() && !b.routes_by_key_only());
    }

    #[test]
    fn delayed_exchange_without_a_valid_delayed_type_is_refused_as_the_plugin_does() {
        let missing = declare("x-delayed-message", &[]).unwrap_err();
        assert_eq!(missing.reply_code(), ReplyCode::PreconditionFailed);
        assert_eq!(
            missing.reply_text(),
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"
        );
        let not_a_string = declare(
            "x-delayed-message",
            &[("x-delayed-type", FieldValue::I32(1))],
        )
        .unwrap_err();
        assert_eq!(not_a_string.reply_text(), missing.reply_text());
        let itself = declare(
            "x-delayed-message",
            &[("x-delayed-type", FieldValue::string("x-delayed-message"))],
        )
        .unwrap_err();
        assert_eq!(
            itself.reply_text(),
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"
        );
        let unknown = declare(
            "x-delayed-message",
            &[("x-delayed-type", FieldValue::string("nope"))],
        )
        .unwrap_err();
        assert_eq!(unknown.reply_code(), ReplyCode::PreconditionFailed);
        assert_eq!(
            unknown.reply_text(),
            "PRECONDITION_FAILED - unknown exchange type 'nope'"
        );
    }

    #[test]
    fn delayed_deduplication_exchange_checks_the_cache_arguments_too() {
        let err = declare(
            "x-delayed-message",
            &[(
                "x-delayed-type",
                FieldValue::string("x-message-deduplication"),
            )],
        )
        .unwrap_err();
        assert!(err.reply_text().contains("'x-cache-size'"), "{}", err.reply_text());
        let ok = declare(
            "x-delayed-message",
            &[
                (
                    "x-delayed-type",
                    FieldValue::string("x-message-deduplication"),
                ),
                ("x-cache-size", FieldValue::I32(5)),
            ],
        )
        .unwrap();
        assert!(ok.delayed && ok.dedup.is_some());
        assert_eq!(ok.routes_as, ExchangeKind::Fanout);
    }

    #[test]
    fn deduplication_exchange_needs_a_positive_cache_size() {
        for bad in [
            None,
            Some(FieldValue::I32(0)),
            Some(FieldValue::I64(-3)),
            Some(FieldValue::string("ten")),
            Some(FieldValue::Bool(true)),
        ] {
            let pairs: Vec<(&str, FieldValue)> =
                bad.into_iter().map(|v| ("x-cache-size", v)).collect();
            let err = declare("x-message-deduplication", &pairs).unwrap_err();
            assert_eq!(err.reply_code(), ReplyCode::PreconditionFailed);
            assert_eq!(
                err.reply_text(),
                "PRECONDITION_FAILED - Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"
            );
        }
        let from_string = declare(
            "x-message-deduplication",
            &[("x-cache-size", FieldValue::string("10"))],
        )
        .unwrap();
        assert_eq!(
            from_string.dedup,
            Some(CacheSettings {
                size: 10,
                ttl_ms: None,
                persistence: CachePersistence::Memory
            })
        );
        assert_eq!(from_string.routes_as, ExchangeKind::Fanout);
    }

    #[test]
    fn cache_ttl_and_persistence_are_checked() {
        let size = ("x-cache-size", FieldValue::U8(3));
        let err = declare(
            "x-message-deduplication",
            &[size.clone(), ("x-cache-ttl", FieldValue::I32(0))],
        )
        .unwrap_err();
        assert_eq!(
            err.reply_text(),
            "PRECONDITION_FAILED - Invalid argument, 'x-cache-ttl' must be an integer greater than 0"
        );
        let err = declare(
            "x-message-deduplication",
            &[
                size.clone(),
                ("x-cache-persistence", FieldValue::string("tape")),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.reply_text(),
            "PRECONDITION_FAILED - Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'"
        );
        let ok = declare(
            "x-message-deduplication",
            &[
                size,
                ("x-cache-ttl", FieldValue::string("250")),
                ("x-cache-persistence", FieldValue::string("disk")),
            ],
        )
        .unwrap();
        assert_eq!(
            ok.dedup,
            Some(CacheSettings {
                size: 3,
                ttl_ms: Some(250),
                persistence: CachePersistence::Disk
            })
        );
    }

    #[test]
    fn only_plain_non_headers_exchanges_route_by_key_alone() {
        assert!(ExchangeBehaviour::plain(ExchangeKind::Topic).routes_by_key_only());
        assert!(!ExchangeBehaviour::plain(ExchangeKind::Headers).routes_by_key_only());
        let dedup = declare(
            "x-message-deduplication",
            &[("x-cache-size", FieldValue::I32(1))],
        )
        .unwrap();
        assert!(!dedup.routes_by_key_only());
    }
}
