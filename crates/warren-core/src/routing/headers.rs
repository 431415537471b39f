//! The headers exchange: a binding's arguments are a pattern over the message's `headers`
//! table, combined by `x-match` (`all`, the default; `any`; `all-with-x`; `any-with-x`).
//!
//! The rules are RabbitMQ's, checked against a running RabbitMQ 3.10:
//! - `x-match` itself never takes part; other keys starting with `x-` take part only under
//!   the `-with-x` modes. `all` over an empty pattern matches every message, `any` none.
//! - A pattern value of type void matches the mere presence of the key.
//! - Otherwise values compare as Erlang's `==` does on the decoded values, which ignores the
//!   wire type at the top level: every integer type and timestamps compare by numeric value
//!   (`signedint 1` matches `long 1`), integers equal floats of the same value, a `float`
//!   is widened to `double` (so `float 0.5` matches `double 0.5` but `float 0.1` does not
//!   match `double 0.1`), and long strings equal byte arrays with the same bytes. Inside
//!   arrays and nested tables the types must be the same, and nested tables compare in order.
//! - A repeated key pairs up by occurrence: the n-th pattern entry for a key is compared with
//!   the n-th header with that key (RabbitMQ merges two key-sorted lists).

use super::erlang_term;
use super::ExchangeKind;
use warren_amqp::{FieldTable, FieldValue, ShortStr};

/// Checks binding arguments as RabbitMQ does when binding: only headers exchanges have rules
/// (`x-match` must be a long string among the four modes). The error text is RabbitMQ's,
/// without the `PRECONDITION_FAILED - ` prefix; the caller answers 406 with it.
pub fn validate_binding_arguments(
    kind: ExchangeKind,
    arguments: &FieldTable,
) -> Result<(), String> {
    if kind != ExchangeKind::Headers {
        return Ok(());
    }
    match arguments.get("x-match") {
        None => Ok(()),
        Some(FieldValue::LongString(mode)) if XMatch::parse(mode).is_some() => Ok(()),
        Some(FieldValue::LongString(other)) => Err(format!(
            "Invalid x-match field value {}; expected all, any, all-with-x, or any-with-x",
            erlang_term::binary(other)
        )),
        Some(other) => Err(format!(
            "Invalid x-match field type {} (value {}); expected longstr",
            other.type_name(),
            erlang_term::value(other)
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XMatch {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

impl XMatch {
    fn parse(mode: &[u8]) -> Option<XMatch> {
        match mode {
            b"all" => Some(XMatch::All),
            b"any" => Some(XMatch::Any),
            b"all-with-x" => Some(XMatch::AllWithX),
            b"any-with-x" => Some(XMatch::AnyWithX),
            _ => None,
        }
    }

    /// The mode of a binding; anything but a valid long string means `all`, as RabbitMQ
    /// treats bindings made before it validated `x-match`.
    fn of(arguments: &FieldTable) -> XMatch {
        match arguments.get("x-match") {
            Some(FieldValue::LongString(mode)) => XMatch::parse(mode).unwrap_or(XMatch::All),
            _ => XMatch::All,
        }
    }

    fn with_x(self) -> bool {
        matches!(self, XMatch::AllWithX | XMatch::AnyWithX)
    }

    fn is_all(self) -> bool {
        matches!(self, XMatch::All | XMatch::AllWithX)
    }
}

/// A headers binding compiled once at bind time: the mode and the entries that take part.
#[derive(Debug, Clone)]
pub(crate) struct HeadersPattern {
    mode: XMatch,
    entries: Box<[PatternEntry]>,
}

#[derive(Debug, Clone)]
struct PatternEntry {
    key: ShortStr,
    /// Which occurrence of `key` in the message headers this entry is compared with.
    occurrence: usize,
    /// `Void` means "present with any value".
    expected: FieldValue,
}

impl HeadersPattern {
    /// Compiles binding arguments (already sorted by key, as stored).
    pub(crate) fn compile(arguments: &FieldTable) -> HeadersPattern {
        let mode = XMatch::of(arguments);
        let mut entries: Vec<PatternEntry> = Vec::new();
        for (key, value) in arguments.iter() {
            let key_str = key.as_str();
            if key_str == "x-match" || (key_str.starts_with("x-") && !mode.with_x()) {
                continue;
            }
            let occurrence = entries.iter().filter(|e| e.key == *key).count();
            entries.push(PatternEntry {
                key: key.clone(),
                occurrence,
                expected: value.clone(),
            });
        }
        HeadersPattern {
            mode,
            entries: entries.into_boxed_slice(),
        }
    }

    /// Whether a message with these headers (in wire order) matches.
    pub(crate) fn matches(&self, headers: &[(ShortStr, FieldValue)]) -> bool {
        let mut entry_matches = self.entries.iter().map(|entry| {
            let found = headers
                .iter()
                .filter(|(k, _)| k.as_str() == entry.key.as_str())
                .nth(entry.occurrence)
                .map(|(_, v)| v);
            match (found, &entry.expected) {
                (None, _) => false,
                (Some(_), FieldValue::Void) => true,
                (Some(actual), expected) => header_value_eq(expected, actual),
            }
        });
        if self.mode.is_all() {
            entry_matches.all(|m| m)
        } else {
            entry_matches.any(|m| m)
        }
    }
}

/// Erlang's `==` on two decoded top-level header values (see the module docs).
fn header_value_eq(expected: &FieldValue, actual: &FieldValue) -> bool {
    match (number(expected), number(actual)) {
        (Some(a), Some(b)) => return a.eq(b),
        (Some(_), None) | (None, Some(_)) => return false,
        (None, None) => {}
    }
    match (expected, actual) {
        (
            FieldValue::LongString(a) | FieldValue::ByteArray(a),
            FieldValue::LongString(b) | FieldValue::ByteArray(b),
        ) => a == b,
        // Same variant: arrays and tables compare element by element, types included, which
        // is what the derived equality does.
        _ => {
            std::mem::discriminant(expected) == std::mem::discriminant(actual) && expected == actual
        }
    }
}

#[derive(Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

fn number(v: &FieldValue) -> Option<Number> {
    match *v {
        FieldValue::F32(f) => Some(Number::Float(f as f64)),
        FieldValue::F64(f) => Some(Number::Float(f)),
        FieldValue::Timestamp(t) => Some(Number::Int(t as i128)),
        _ => v.as_i64().map(|i| Number::Int(i as i128)),
    }
}

impl Number {
    fn eq(self, other: Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (Number::Int(i), Number::Float(f)) | (Number::Float(f), Number::Int(i)) => {
                int_eq_float(i, f)
            }
        }
    }
}

/// Erlang compares an integer with a float by converting the less precise of the two: the
/// integer becomes a float unless the float's magnitude exceeds 2^53, where the float is
/// integral and compared as an integer.
fn int_eq_float(i: i128, f: f64) -> bool {
    const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    if f.abs() > EXACT_LIMIT {
        f.is_finite() && f as i128 == i
    } else {
        i as f64 == f
    }
}
