//! The binary encoding of definition changes, shared by the definitions log and snapshot.
//!
//! # On disk
//!
//! One record payload (see `crate::record` for the framing) is one transaction:
//!
//! ```text
//! payload  := change_id: u64 LE | count: u32 LE | change × count
//! change   := tag: u8 | fields, by tag:
//!   1 put exchange     vhost, name, kind: str | flags: u8 (1 durable, 2 auto-delete, 4 internal) | arguments: table
//!   2 delete exchange  vhost, name: str
//!   3 put queue        vhost, name: str | flags: u8 (2 auto-delete) | arguments: table | log_id: u64 LE
//!   4 delete queue     vhost, name: str
//!   5 put binding      vhost, source, destination_kind, destination, routing_key: str | arguments: table
//!   6 delete binding   (as 5)
//!   7 put policy       vhost, name, pattern, apply_to, priority (JSON number), definition (JSON object): str
//!   8 delete policy    vhost, name: str
//! str      := len: u32 LE | UTF-8 bytes
//! table    := an AMQP field table exactly as on the wire (u32 BE byte count, then entries),
//!             so that every field value type round-trips as the client sent it
//! ```

use super::{BindingDef, DefinitionChange, ExchangeDef, PolicyDef, QueueDef};
use bytes::{Bytes, BytesMut};
use warren_amqp::FieldTable;

const PUT_EXCHANGE: u8 = 1;
const DELETE_EXCHANGE: u8 = 2;
const PUT_QUEUE: u8 = 3;
const DELETE_QUEUE: u8 = 4;
const PUT_BINDING: u8 = 5;
const DELETE_BINDING: u8 = 6;
const PUT_POLICY: u8 = 7;
const DELETE_POLICY: u8 = 8;

const FLAG_DURABLE: u8 = 1;
const FLAG_AUTO_DELETE: u8 = 2;
const FLAG_INTERNAL: u8 = 4;

/// change_id + count.
pub(crate) const MIN_TRANSACTION_BYTES: usize = 12;

/// Encodes one transaction payload from its changes.
pub(crate) fn encode_transaction<'a>(
    out: &mut Vec<u8>,
    change_id: u64,
    changes: impl ExactSizeIterator<Item = ChangeRef<'a>>,
) {
    out.extend_from_slice(&change_id.to_le_bytes());
    out.extend_from_slice(&(changes.len() as u32).to_le_bytes());
    for c in changes {
        encode_change(out, c);
    }
}

/// A change by reference, so that a snapshot can encode the current state without cloning it.
#[derive(Clone, Copy)]
pub(crate) enum ChangeRef<'a> {
    PutExchange(&'a ExchangeDef),
    DeleteExchange(&'a str, &'a str),
    PutQueue(&'a QueueDef),
    DeleteQueue(&'a str, &'a str),
    PutBinding(&'a BindingDef),
    DeleteBinding(&'a BindingDef),
    PutPolicy(&'a PolicyDef),
    DeletePolicy(&'a str, &'a str),
}

impl<'a> From<&'a DefinitionChange> for ChangeRef<'a> {
    fn from(c: &'a DefinitionChange) -> Self {
        match c {
            DefinitionChange::PutExchange(e) => ChangeRef::PutExchange(e),
            DefinitionChange::DeleteExchange { vhost, name } => {
                ChangeRef::DeleteExchange(vhost, name)
            }
            DefinitionChange::PutQueue(q) => ChangeRef::PutQueue(q),
            DefinitionChange::DeleteQueue { vhost, name } => ChangeRef::DeleteQueue(vhost, name),
            DefinitionChange::PutBinding(b) => ChangeRef::PutBinding(b),
            DefinitionChange::DeleteBinding(b) => ChangeRef::DeleteBinding(b),
            DefinitionChange::PutPolicy(p) => ChangeRef::PutPolicy(p),
            DefinitionChange::DeletePolicy { vhost, name } => ChangeRef::DeletePolicy(vhost, name),
        }
    }
}

fn encode_change(out: &mut Vec<u8>, c: ChangeRef<'_>) {
    match c {
        ChangeRef::PutExchange(e) => {
            out.push(PUT_EXCHANGE);
            put_str(out, &e.vhost);
            put_str(out, &e.name);
            put_str(out, &e.kind);
            let flags = flag(e.durable, FLAG_DURABLE)
                | flag(e.auto_delete, FLAG_AUTO_DELETE)
                | flag(e.internal, FLAG_INTERNAL);
            out.push(flags);
            put_table(out, &e.arguments);
        }
        ChangeRef::DeleteExchange(vhost, name) => {
            out.push(DELETE_EXCHANGE);
            put_str(out, vhost);
            put_str(out, name);
        }
        ChangeRef::PutQueue(q) => {
            out.push(PUT_QUEUE);
            put_str(out, &q.vhost);
            put_str(out, &q.name);
            out.push(flag(q.auto_delete, FLAG_AUTO_DELETE));
            put_table(out, &q.arguments);
            out.extend_from_slice(&q.log_id.to_le_bytes());
        }
        ChangeRef::DeleteQueue(vhost, name) => {
            out.push(DELETE_QUEUE);
            put_str(out, vhost);
            put_str(out, name);
        }
        ChangeRef::PutBinding(b) | ChangeRef::DeleteBinding(b) => {
            out.push(match c {
                ChangeRef::PutBinding(_) => PUT_BINDING,
                _ => DELETE_BINDING,
            });
            put_str(out, &b.vhost);
            put_str(out, &b.source);
            put_str(out, &b.destination_kind);
            put_str(out, &b.destination);
            put_str(out, &b.routing_key);
            put_table(out, &b.arguments);
        }
        ChangeRef::PutPolicy(p) => {
            out.push(PUT_POLICY);
            for s in [
                &p.vhost,
                &p.name,
                &p.pattern,
                &p.apply_to,
                &p.priority,
                &p.definition,
            ] {
                put_str(out, s);
            }
        }
        ChangeRef::DeletePolicy(vhost, name) => {
            out.push(DELETE_POLICY);
            put_str(out, vhost);
            put_str(out, name);
        }
    }
}

fn flag(on: bool, bit: u8) -> u8 {
    if on {
        bit
    } else {
        0
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The table's wire encoding; also used as the binding-identity key of its arguments.
pub(crate) fn table_bytes(t: &FieldTable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    t.encode(&mut buf);
    buf.to_vec()
}

fn put_table(out: &mut Vec<u8>, t: &FieldTable) {
    let mut buf = BytesMut::new();
    t.encode(&mut buf);
    out.extend_from_slice(&buf);
}

/// Decodes a transaction payload into its change id and changes.
pub(crate) fn decode_transaction(
    payload: &Bytes,
) -> Result<(u64, Vec<DefinitionChange>), &'static str> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let change_id = r.u64()?;
    let count = r.u32()? as usize;
    // Every change takes at least 9 bytes (tag + two strs): bounds the allocation.
    if count > r.left() / 9 {
        return Err("change count larger than the record");
    }
    let mut changes = Vec::with_capacity(count);
    for _ in 0..count {
        changes.push(r.change()?);
    }
    if r.left() != 0 {
        return Err("bytes after the last change");
    }
    Ok((change_id, changes))
}

struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], &'static str> {
        if n > self.left() {
            return Err("field runs past the end of the record");
        }
        self.pos += n;
        Ok(&self.buf[self.pos - n..self.pos])
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn string(&mut self) -> Result<String, &'static str> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "name is not UTF-8")
    }

    fn table(&mut self) -> Result<FieldTable, &'static str> {
        let start = self.pos;
        let len = u32::from_be_bytes(self.take(4)?.try_into().unwrap()) as usize;
        self.take(len)?;
        FieldTable::decode(&self.buf.slice(start..self.pos))
            .map_err(|_| "arguments do not decode as a field table")
    }

    fn change(&mut self) -> Result<DefinitionChange, &'static str> {
        Ok(match self.u8()? {
            PUT_EXCHANGE => {
                let (vhost, name, kind) = (self.string()?, self.string()?, self.string()?);
                let flags = self.u8()?;
                DefinitionChange::PutExchange(ExchangeDef {
                    vhost,
                    name,
                    kind,
                    durable: flags & FLAG_DURABLE != 0,
                    auto_delete: flags & FLAG_AUTO_DELETE != 0,
                    internal: flags & FLAG_INTERNAL != 0,
                    arguments: self.table()?,
                })
            }
            DELETE_EXCHANGE => DefinitionChange::DeleteExchange {
                vhost: self.string()?,
                name: self.string()?,
            },
            PUT_QUEUE => {
                let (vhost, name) = (self.string()?, self.string()?);
                let flags = self.u8()?;
                DefinitionChange::PutQueue(QueueDef {
                    vhost,
                    name,
                    auto_delete: flags & FLAG_AUTO_DELETE != 0,
                    arguments: self.table()?,
                    log_id: self.u64()?,
                })
            }
            DELETE_QUEUE => DefinitionChange::DeleteQueue {
                vhost: self.string()?,
                name: self.string()?,
            },
            tag @ (PUT_BINDING | DELETE_BINDING) => {
                let b = BindingDef {
                    vhost: self.string()?,
                    source: self.string()?,
                    destination_kind: self.string()?,
                    destination: self.string()?,
                    routing_key: self.string()?,
                    arguments: self.table()?,
                };
                if tag == PUT_BINDING {
                    DefinitionChange::PutBinding(b)
                } else {
                    DefinitionChange::DeleteBinding(b)
                }
            }
            PUT_POLICY => DefinitionChange::PutPolicy(PolicyDef {
                vhost: self.string()?,
                name: self.string()?,
                pattern: self.string()?,
                apply_to: self.string()?,
                priority: self.string()?,
                definition: self.string()?,
            }),
            DELETE_POLICY => DefinitionChange::DeletePolicy {
                vhost: self.string()?,
                name: self.string()?,
            },
            _ => return Err("unknown change tag"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::{Decimal, FieldValue};

    /// Every field value type, nested.
    fn rich_table() -> FieldTable {
        let mut inner = FieldTable::new();
        inner.insert(
            "deep",
            FieldValue::Array(vec![FieldValue::Void, FieldValue::I8(-3)]),
        );
        let mut t = FieldTable::new();
        let values = vec![
            FieldValue::Bool(true),
            FieldValue::I8(-1),
            FieldValue::U8(200),
            FieldValue::I16(-300),
            FieldValue::U16(60000),
            FieldValue::I32(-70000),
            FieldValue::U32(4_000_000_000),
            FieldValue::I64(i64::MIN),
            FieldValue::F32(1.5),
            FieldValue::F64(-2.25),
            FieldValue::Decimal(Decimal {
                scale: 2,
                value: 12345,
            }),
            FieldValue::LongString(Bytes::from_static(b"\xff not utf-8")),
            FieldValue::Array(vec![FieldValue::Table(inner.clone()), FieldValue::U8(1)]),
            FieldValue::Timestamp(1_700_000_000),
            FieldValue::Table(inner),
            FieldValue::Void,
            FieldValue::ByteArray(Bytes::from_static(&[0, 1, 2, 255])),
        ];
        for (i, v) in values.into_iter().enumerate() {
            t.insert(format!("k{i}").as_str(), v);
        }
        t
    }

    #[test]
    fn every_change_kind_round_trips_with_every_field_value_type() {
        let args = rich_table();
        let binding = BindingDef {
            vhost: "/".into(),
            source: "amq.topic".into(),
            destination_kind: "queue".into(),
            destination: "orders".into(),
            routing_key: "orders.#".into(),
            arguments: args.clone(),
        };
        let changes = vec![
            DefinitionChange::PutExchange(ExchangeDef {
                vhost: "/".into(),
                name: "x".into(),
                kind: "headers".into(),
                durable: true,
                auto_delete: true,
                internal: false,
                arguments: args.clone(),
            }),
            DefinitionChange::DeleteExchange {
                vhost: "v".into(),
                name: "x".into(),
            },
            DefinitionChange::PutQueue(QueueDef {
                vhost: "/".into(),
                name: "orders".into(),
                auto_delete: false,
                arguments: args,
                log_id: 7,
            }),
            DefinitionChange::DeleteQueue {
                vhost: "/".into(),
                name: "q".into(),
            },
            DefinitionChange::PutBinding(binding.clone()),
            DefinitionChange::DeleteBinding(binding),
            DefinitionChange::PutPolicy(PolicyDef {
                vhost: "/".into(),
                name: "limits".into(),
                pattern: "^orders\\.".into(),
                apply_to: "queues".into(),
                priority: "1.5".into(),
                definition: r#"{"max-length":10}"#.into(),
            }),
            DefinitionChange::DeletePolicy {
                vhost: "/".into(),
                name: "limits".into(),
            },
        ];
        let mut out = Vec::new();
        encode_transaction(&mut out, 42, changes.iter().map(ChangeRef::from));
        let (id, back) = decode_transaction(&Bytes::from(out.clone())).unwrap();
        assert_eq!(id, 42);
        assert_eq!(back, changes);
        for cut in 0..out.len() {
            assert!(decode_transaction(&Bytes::copy_from_slice(&out[..cut])).is_err());
        }
    }
}
