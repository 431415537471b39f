//! Policies, as RabbitMQ 3.10 has them: named per vhost, a regular expression on queue or
//! exchange names, `apply-to` (`queues`, `exchanges`, `all`), a priority, and a definition
//! that sets queue and exchange settings (`message-ttl`, `max-length`, `overflow`,
//! `dead-letter-exchange`, `alternate-exchange`, …) without the clients' arguments.
//!
//! This module owns three rules and nothing else:
//! - **validation** of a policy, in RabbitMQ's order and sentences ([`Policy::new`]);
//! - **matching**: of the policies whose `apply-to`, pattern and queue type fit, the one with
//!   the highest priority applies, and only that one ([`PolicySet`]). As in RabbitMQ, a
//!   policy naming a key the queue's type does not support (`delivery-limit` on a classic
//!   queue, `queue-mode` on a quorum queue) does not apply to that queue at all;
//! - **precedence** between a policy and a queue's own arguments, per key and per queue type,
//!   as `rabbit_amqqueue_process:process_args_policy` (classic) and
//!   `rabbit_quorum_queue:ra_machine_config` (quorum) resolve them ([`effective_queue_args`]).
//!
//! It never stores or applies anything: the runtime keeps the set, persists it and hands the
//! effective settings to running queues.

use crate::args::{DeadLetterTarget, Overflow, QueueArgs, QueueType};
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Number, Value};
use std::sync::Arc;
use warren_amqp::{FieldTable, ShortStr};

/// Compiled patterns may take this much memory at most (the `regex` crate never backtracks,
/// so matching time is linear; this bounds what a hostile pattern can cost to compile).
const PATTERN_SIZE_LIMIT_BYTES: usize = 1 << 20;

/// What a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApplyTo {
    Queues,
    Exchanges,
    /// RabbitMQ's default.
    #[default]
    All,
}

impl ApplyTo {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<ApplyTo> {
        match s {
            "queues" => Some(ApplyTo::Queues),
            "exchanges" => Some(ApplyTo::Exchanges),
            "all" => Some(ApplyTo::All),
            _ => None,
        }
    }

    fn queues(self) -> bool {
        self != ApplyTo::Exchanges
    }

    fn exchanges(self) -> bool {
        self != ApplyTo::Queues
    }
}

/// A policy refused by validation; the text is RabbitMQ's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub pattern: String,
    regex: Regex,
    pub apply_to: ApplyTo,
    /// Any JSON number, as RabbitMQ accepts; compared as a float.
    pub priority: Number,
    /// The definition as given (echoed back by the management API and stored).
    pub definition: Map<String, Value>,
    settings: Settings,
}

impl PartialEq for Policy {
    fn eq(&self, other: &Policy) -> bool {
        self.name == other.name
            && self.pattern == other.pattern
            && self.apply_to == other.apply_to
            && self.priority == other.priority
            && self.definition == other.definition
    }
}

/// The definition's keys that Warren acts on, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
struct Settings {
    message_ttl_ms: Option<u64>,
    expires_ms: Option<u64>,
    max_length: Option<u64>,
    max_length_bytes: Option<u64>,
    overflow: Option<Overflow>,
    dead_letter_exchange: Option<ShortStr>,
    dead_letter_routing_key: Option<ShortStr>,
    delivery_limit: Option<u64>,
    alternate_exchange: Option<ShortStr>,
    /// False if a key is one classic queues do not support (the policy then skips them).
    for_classic: bool,
    /// False if a key is one quorum queues do not support.
    for_quorum: bool,
}

/// How one definition key is checked, and which queue types it leaves out.
struct Key {
    name: &'static str,
    rule: fn(&Value) -> bool,
    /// RabbitMQ's sentence after the value: `-1 is not a valid maximum length`.
    refusal: &'static str,
    classic: bool,
    quorum: bool,
}

const fn key(name: &'static str, rule: fn(&Value) -> bool, refusal: &'static str) -> Key {
    Key {
        name,
        rule,
        refusal,
        classic: true,
        quorum: true,
    }
}

const fn classic_only(k: Key) -> Key {
    Key { quorum: false, ..k }
}

const fn quorum_only(k: Key) -> Key {
    Key {
        classic: false,
        ..k
    }
}

/// The keys RabbitMQ 3.10 validates for classic and quorum queues and exchanges, less those
/// Warren refuses (see [`UNSUPPORTED`]). Queue types list the keys they do not support in
/// `capabilities()`: classic queues `delivery-limit`, `dead-letter-strategy` and
/// `queue-leader-locator`; quorum queues `queue-mode` and `queue-master-locator`.
/// Keys Warren accepts but that change nothing in it: `dead-letter-strategy` (dead-lettering
/// is at-most-once), `max-in-memory-length`/`-bytes`, `queue-mode`, `queue-version`, and the
/// two locators (one node).
const KEYS: &[Key] = &[
    key(
        "alternate-exchange",
        is_string,
        "is not a valid alternate exchange name",
    ),
    key(
        "dead-letter-exchange",
        is_string,
        "is not a valid dead letter exchange name",
    ),
    key(
        "dead-letter-routing-key",
        is_string,
        "is not a valid dead letter routing key",
    ),
    quorum_only(key(
        "dead-letter-strategy",
        |v| one_of(v, &["at-most-once", "at-least-once"]),
        "is not a valid dead letter strategy",
    )),
    key("message-ttl", non_negative, "is not a valid message TTL"),
    key("expires", positive, "is not a valid queue expiry"),
    key("max-length", non_negative, "is not a valid maximum length"),
    key(
        "max-length-bytes",
        non_negative,
        "is not a valid maximum length in bytes",
    ),
    key(
        "max-in-memory-length",
        non_negative,
        "is not a valid maximum memory in bytes",
    ),
    key(
        "max-in-memory-bytes",
        non_negative,
        "is not a valid maximum memory in bytes",
    ),
    classic_only(key(
        "queue-mode",
        |v| one_of(v, &["default", "lazy"]),
        "is not a valid queue-mode value",
    )),
    key(
        "queue-version",
        |v| v.as_u64().is_some_and(|n| n == 1 || n == 2),
        "is not a valid queue-version value",
    ),
    key(
        "overflow",
        |v| one_of(v, &["drop-head", "reject-publish", "reject-publish-dlx"]),
        "is not a valid overflow value",
    ),
    quorum_only(key(
        "delivery-limit",
        non_negative,
        "is not a valid delivery limit",
    )),
    quorum_only(key(
        "queue-leader-locator",
        |v| one_of(v, &["client-local", "balanced", "random", "least-leaders"]),
        "is not a valid queue leader locator value",
    )),
    classic_only(key(
        "queue-master-locator",
        |v| one_of(v, &["client-local", "min-masters", "random"]),
        "invalid queue-master-locator value",
    )),
];

/// Keys RabbitMQ 3.10 accepts that Warren refuses, because it cannot do what they promise.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "ha-mode",
        "classic queue mirroring: Warren runs on one node",
    ),
    (
        "ha-params",
        "classic queue mirroring: Warren runs on one node",
    ),
    (
        "ha-sync-mode",
        "classic queue mirroring: Warren runs on one node",
    ),
    (
        "ha-sync-batch-size",
        "classic queue mirroring: Warren runs on one node",
    ),
    (
        "ha-promote-on-shutdown",
        "classic queue mirroring: Warren runs on one node",
    ),
    (
        "ha-promote-on-failure",
        "classic queue mirroring: Warren runs on one node",
    ),
    ("max-age", "streams are not implemented"),
    (
        "stream-max-segment-size-bytes",
        "streams are not implemented",
    ),
    ("initial-cluster-size", "streams are not implemented"),
    ("federation-upstream", "federation is not implemented"),
    ("federation-upstream-set", "federation is not implemented"),
];

fn is_string(v: &Value) -> bool {
    v.is_string()
}

fn non_negative(v: &Value) -> bool {
    v.as_u64().is_some()
}

fn positive(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| n >= 1)
}

fn one_of(v: &Value, allowed: &[&str]) -> bool {
    v.as_str().is_some_and(|s| allowed.contains(&s))
}

impl Policy {
    /// Validates a policy as RabbitMQ does, in its order: priority (a number, 0 when absent),
    /// pattern (a string that compiles), apply-to (`all` when absent), definition (a
    /// non-empty object whose keys are all known and valid). The texts are RabbitMQ's, with
    /// values shown as JSON.
    pub fn new(
        name: &str,
        pattern: &Value,
        definition: &Value,
        priority: Option<&Value>,
        apply_to: Option<&Value>,
    ) -> Result<Policy, PolicyError> {
        let refuse = |s: String| Err(PolicyError(s));
        let priority = match priority {
            None | Some(Value::Null) => Number::from(0),
            Some(Value::Number(n)) => n.clone(),
            Some(other) => {
                return refuse(format!("priority should be a number, actually was {other}"))
            }
        };
        let Value::String(pattern) = pattern else {
            return refuse(format!("pattern should be a binary but was {pattern}"));
        };
        let regex = RegexBuilder::new(pattern)
            .size_limit(PATTERN_SIZE_LIMIT_BYTES)
            .build()
            .map_err(|e| {
                PolicyError(format!(
                    "pattern should be regular expression but is invalid: {e}"
                ))
            })?;
        let apply_to = match apply_to {
            None | Some(Value::Null) => ApplyTo::All,
            Some(v) => match v.as_str().and_then(ApplyTo::parse) {
                Some(a) => a,
                None => {
                    let shown = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    return refuse(format!(
                        "apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'"
                    ));
                }
            },
        };
        let Value::Object(definition) = definition else {
            return refuse(format!("definition must be a dictionary: {definition}"));
        };
        let settings = Settings::parse(definition)?;
        Ok(Policy {
            name: name.to_string(),
            pattern: pattern.clone(),
            regex,
            apply_to,
            priority,
            definition: definition.clone(),
            settings,
        })
    }

    /// True if this policy may apply to the queue `name` of this type (its priority against
    /// other policies decides whether it does).
    pub fn matches_queue(&self, name: &str, queue_type: QueueType) -> bool {
        let type_ok = match queue_type {
            QueueType::Classic => self.settings.for_classic,
            QueueType::Quorum => self.settings.for_quorum,
        };
        self.apply_to.queues() && type_ok && self.regex.is_match(name)
    }

    /// True if this policy may apply to the exchange `name`.
    pub fn matches_exchange(&self, name: &str) -> bool {
        self.apply_to.exchanges() && self.regex.is_match(name)
    }

    /// The `alternate-exchange` this policy sets (an exchange's own argument wins over it).
    pub fn alternate_exchange(&self) -> Option<&ShortStr> {
        self.settings.alternate_exchange.as_ref()
    }

    fn priority_f64(&self) -> f64 {
        self.priority.as_f64().unwrap_or(0.0)
    }
}

impl Settings {
    fn parse(definition: &Map<String, Value>) -> Result<Settings, PolicyError> {
        if definition.is_empty() {
            return Err(PolicyError("no policy provided".into()));
        }
        let mut s = Settings {
            for_classic: true,
            for_quorum: true,
            ..Settings::default()
        };
        let mut unknown = Vec::new();
        for (name, value) in definition {
            if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| k == name) {
                return Err(PolicyError(format!(
                    "'{name}' is not supported by Warren ({why})"
                )));
            }
            let Some(k) = KEYS.iter().find(|k| k.name == name) else {
                unknown.push(name.as_str());
                continue;
            };
            if !(k.rule)(value) {
                return Err(PolicyError(format!("{value} {}", k.refusal)));
            }
            s.for_classic &= k.classic;
            s.for_quorum &= k.quorum;
            let text = || value.as_str().map(ShortStr::truncating);
            match name.as_str() {
                "message-ttl" => s.message_ttl_ms = value.as_u64(),
                "expires" => s.expires_ms = value.as_u64(),
                "max-length" => s.max_length = value.as_u64(),
                "max-length-bytes" => s.max_length_bytes = value.as_u64(),
                "delivery-limit" => s.delivery_limit = value.as_u64(),
                "overflow" => {
                    s.overflow = match value.as_str() {
                        Some("reject-publish") => Some(Overflow::RejectPublish),
                        Some("reject-publish-dlx") => Some(Overflow::RejectPublishDlx),
                        _ => Some(Overflow::DropHead),
                    }
                }
                "dead-letter-exchange" => s.dead_letter_exchange = text(),
                "dead-letter-routing-key" => s.dead_letter_routing_key = text(),
                "alternate-exchange" => s.alternate_exchange = text(),
                _ => {}
            }
        }
        if !unknown.is_empty() {
            let list = Value::from(unknown);
            return Err(PolicyError(format!(
                "{list} are not recognised policy settings"
            )));
        }
        Ok(s)
    }
}

/// The policies of one vhost, highest priority first.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<Arc<Policy>>,
}

impl PolicySet {
    pub fn new() -> PolicySet {
        PolicySet::default()
    }

    /// Adds or replaces the policy of that name; returns the one replaced.
    pub fn put(&mut self, policy: Policy) -> Option<Arc<Policy>> {
        let old = self.remove(&policy.name);
        self.policies.push(Arc::new(policy));
        // Highest priority first. RabbitMQ leaves the order of equal priorities unspecified;
        // Warren takes the name order, so the choice is at least stable.
        self.policies.sort_by(|a, b| {
            b.priority_f64()
                .total_cmp(&a.priority_f64())
                .then_with(|| a.name.cmp(&b.name))
        });
        old
    }

    pub fn remove(&mut self, name: &str) -> Option<Arc<Policy>> {
        let idx = self.policies.iter().position(|p| p.name == name)?;
        Some(self.policies.remove(idx))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// Every policy, highest priority first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.policies.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policy that applies to the queue: the highest-priority one that matches.
    pub fn for_queue(&self, name: &str, queue_type: QueueType) -> Option<&Arc<Policy>> {
        self.policies
            .iter()
            .find(|p| p.matches_queue(name, queue_type))
    }

    /// The policy that applies to the exchange.
    pub fn for_exchange(&self, name: &str) -> Option<&Arc<Policy>> {
        self.policies.iter().find(|p| p.matches_exchange(name))
    }
}

/// How a setting given by both a policy and an argument is resolved.
#[derive(Clone, Copy)]
enum Resolve {
    /// The smaller value wins (`res_min`, quorum queues' `min/2`).
    Min,
    /// The queue's argument wins (`res_arg`, `queueArgHasPrecedence`).
    Argument,
    /// The policy wins (quorum queues' `policyHasPrecedence`).
    Policy,
}

fn resolve<T: Ord>(how: Resolve, policy: Option<T>, argument: Option<T>) -> Option<T> {
    match (policy, argument) {
        (Some(p), Some(a)) => Some(match how {
            Resolve::Min => p.min(a),
            Resolve::Argument => a,
            Resolve::Policy => p,
        }),
        (p, a) => p.or(a),
    }
}

/// The settings a queue runs with: its declared arguments (`declared`, parsed from
/// `arguments`) combined with the policy that applies to it, key by key as RabbitMQ 3.10:
///
/// | key | classic | quorum |
/// |---|---|---|
/// | `message-ttl`, `max-length`, `max-length-bytes` | smaller wins | smaller wins |
/// | `expires` | smaller wins | policy wins |
/// | `overflow` | argument wins | policy wins |
/// | `dead-letter-exchange`, `dead-letter-routing-key` | argument wins | argument wins |
/// | `delivery-limit` | — | smaller wins |
///
/// The two dead-letter keys resolve separately (a policy's routing key can complete an
/// argument's exchange); a routing key without an exchange dead-letters nothing. A quorum
/// queue whose policy sets `overflow` to `reject-publish-dlx` runs with `drop-head`, as
/// RabbitMQ does (with a warning in its log).
pub fn effective_queue_args(
    declared: &QueueArgs,
    arguments: &FieldTable,
    policy: Option<&Policy>,
) -> QueueArgs {
    let Some(policy) = policy else {
        return declared.clone();
    };
    let p = &policy.settings;
    let quorum = declared.queue_type == QueueType::Quorum;
    let (expires, overflow) = if quorum {
        (Resolve::Policy, Resolve::Policy)
    } else {
        (Resolve::Min, Resolve::Argument)
    };
    let mut out = declared.clone();
    out.message_ttl_ms = resolve(Resolve::Min, p.message_ttl_ms, declared.message_ttl_ms);
    out.expires_ms = resolve(expires, p.expires_ms, declared.expires_ms);
    out.max_length = resolve(Resolve::Min, p.max_length, declared.max_length);
    out.max_length_bytes = resolve(Resolve::Min, p.max_length_bytes, declared.max_length_bytes);
    let overflow_arg = arguments
        .get("x-overflow")
        .is_some()
        .then_some(declared.overflow);
    out.overflow = match (overflow, p.overflow, overflow_arg) {
        (Resolve::Policy, Some(Overflow::RejectPublishDlx), _) if quorum => Overflow::DropHead,
        (how, from_policy, from_argument) => {
            resolve_unordered(how, from_policy, from_argument).unwrap_or_default()
        }
    };
    let (dlx_arg, dlrk_arg) = match &declared.dead_letter {
        Some(t) => (Some(t.exchange.clone()), t.routing_key.clone()),
        None => (None, None),
    };
    let exchange = resolve_unordered(Resolve::Argument, p.dead_letter_exchange.clone(), dlx_arg);
    let routing_key = resolve_unordered(
        Resolve::Argument,
        p.dead_letter_routing_key.clone(),
        dlrk_arg,
    );
    out.dead_letter = exchange.map(|exchange| DeadLetterTarget {
        exchange,
        routing_key,
    });
    if quorum {
        let limit = p.delivery_limit.map(|n| n.min(i64::MAX as u64) as i64);
        out.delivery_limit = resolve(Resolve::Min, limit, declared.delivery_limit);
    }
    out
}

/// [`resolve`] for values without an order (names, modes): `Min` never applies to them.
fn resolve_unordered<T>(how: Resolve, policy: Option<T>, argument: Option<T>) -> Option<T> {
    match (policy, argument) {
        (Some(p), Some(a)) => Some(match how {
            Resolve::Policy => p,
            Resolve::Min | Resolve::Argument => a,
        }),
        (p, a) => p.or(a),
    }
}

#[cfg(test)]
mod tests;
