//! Field tables and field values with RabbitMQ's type tags (which differ from the 0-9-1 spec's
//! errata list: `s` is a signed 16-bit, `l` a signed 64-bit, `x` a byte array, `V` void),
//! and their wire encoding.
//!
//! Decoding is defensive: an unknown tag, a truncated value, a length that overruns its
//! table, a key that is not UTF-8 or nesting deeper than [`MAX_NESTING_DEPTH`] is an
//! [`Error::Syntax`]; nothing a peer sends can panic the decoder or exhaust its stack.

use crate::wire::{self, Reader};
use crate::{Error, ShortStr};
use bytes::{BufMut, Bytes, BytesMut};

/// How deeply tables and arrays may nest inside one another. Real clients nest two or three
/// levels (`capabilities` inside `client-properties`, `x-death` arrays of tables); the limit
/// only exists so that a hostile peer cannot make the recursive decoder overflow its stack.
pub const MAX_NESTING_DEPTH: usize = 64;

/// A decimal value: `value / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    pub scale: u8,
    pub value: u32,
}

/// One value in a field table or array, tagged as on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `t`
    Bool(bool),
    /// `b`
    I8(i8),
    /// `B`
    U8(u8),
    /// `s`
    I16(i16),
    /// `u`
    U16(u16),
    /// `I`
    I32(i32),
    /// `i`
    U32(u32),
    /// `l`
    I64(i64),
    /// `f`
    F32(f32),
    /// `d`
    F64(f64),
    /// `D`
    Decimal(Decimal),
    /// `S`: a long string; bytes, since AMQP does not require UTF-8 here.
    LongString(Bytes),
    /// `A`
    Array(Vec<FieldValue>),
    /// `T`: seconds since the epoch.
    Timestamp(u64),
    /// `F`
    Table(FieldTable),
    /// `V`
    Void,
    /// `x`
    ByteArray(Bytes),
}

impl FieldValue {
    /// The integer value of any integer-typed variant (for arguments such as `x-max-length`
    /// that clients send with whatever integer width their language picks).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v as i64),
            FieldValue::U8(v) => Some(v as i64),
            FieldValue::I16(v) => Some(v as i64),
            FieldValue::U16(v) => Some(v as i64),
            FieldValue::I32(v) => Some(v as i64),
            FieldValue::U32(v) => Some(v as i64),
            FieldValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The text of a long string (if it is valid UTF-8).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongString(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The type name RabbitMQ uses in inequivalent-argument texts (`longstr`, `long`, `bool`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Bool(_) => "bool",
            FieldValue::I8(_) => "byte",
            FieldValue::U8(_) => "unsignedbyte",
            FieldValue::I16(_) => "short",
            FieldValue::U16(_) => "unsignedshort",
            FieldValue::I32(_) => "signedint",
            FieldValue::U32(_) => "unsignedint",
            FieldValue::I64(_) => "long",
            FieldValue::F32(_) => "float",
            FieldValue::F64(_) => "double",
            FieldValue::Decimal(_) => "decimal",
            FieldValue::LongString(_) => "longstr",
            FieldValue::Array(_) => "array",
            FieldValue::Timestamp(_) => "timestamp",
            FieldValue::Table(_) => "table",
            FieldValue::Void => "void",
            FieldValue::ByteArray(_) => "binary",
        }
    }

    pub fn string(s: &str) -> FieldValue {
        FieldValue::LongString(Bytes::copy_from_slice(s.as_bytes()))
    }
}

/// A field table. Keeps the wire order (clients and header exchanges may care), allows
/// lookups by key; duplicate keys on the wire are kept as sent, `get` returns the first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    pub fn new() -> FieldTable {
        FieldTable(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    /// Replaces the first entry with this key, or appends.
    pub fn insert(&mut self, key: impl Into<ShortStr>, value: FieldValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let pos = self.0.iter().position(|(k, _)| k.as_str() == key)?;
        Some(self.0.remove(pos).1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ShortStr, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl FieldTable {
    /// Appends the table as on the wire: a long byte count, then name/value pairs.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = wire::begin_len(out);
        for (key, value) in &self.0 {
            wire::put_shortstr(out, key);
            write_value(out, value);
        }
        wire::patch_len(out, start);
    }

    /// Decodes one table (long byte count + pairs) that fills `buf` exactly. Long strings and
    /// keys share `buf`'s allocation.
    pub fn decode(buf: &Bytes) -> Result<FieldTable, Error> {
        let mut r = Reader::new(buf);
        let table = read_table(&mut r, "field table")?;
        r.finish("field table")?;
        Ok(table)
    }
}

/// Reads a length-prefixed table; `what` names the field for error texts ("arguments").
pub(crate) fn read_table(r: &mut Reader<'_>, what: &'static str) -> Result<FieldTable, Error> {
    read_table_at(r, what, 0)
}

fn read_table_at(
    r: &mut Reader<'_>,
    what: &'static str,
    depth: usize,
) -> Result<FieldTable, Error> {
    if depth >= MAX_NESTING_DEPTH {
        return Err(too_deep());
    }
    let body = r.longstr(what)?;
    let mut r = Reader::new(&body);
    let mut entries = Vec::new();
    while !r.is_empty() {
        let key = r.shortstr("field table key")?;
        let tag = r.u8("field type tag").map_err(|e| in_field(e, &key))?;
        let value = read_value(&mut r, tag, depth).map_err(|e| in_field(e, &key))?;
        entries.push((key, value));
    }
    Ok(FieldTable(entries))
}

fn read_array(r: &mut Reader<'_>, depth: usize) -> Result<Vec<FieldValue>, Error> {
    if depth >= MAX_NESTING_DEPTH {
        return Err(too_deep());
    }
    let body = r.longstr("field array")?;
    let mut r = Reader::new(&body);
    let mut items = Vec::new();
    while !r.is_empty() {
        let tag = r.u8("field type tag")?;
        items.push(read_value(&mut r, tag, depth)?);
    }
    Ok(items)
}

fn read_value(r: &mut Reader<'_>, tag: u8, depth: usize) -> Result<FieldValue, Error> {
    Ok(match tag {
        b't' => FieldValue::Bool(r.u8("boolean field")? != 0),
        b'b' => FieldValue::I8(r.u8("byte field")? as i8),
        b'B' => FieldValue::U8(r.u8("unsigned byte field")?),
        b's' => FieldValue::I16(r.u16("short field")? as i16),
        b'u' => FieldValue::U16(r.u16("unsigned short field")?),
        b'I' => FieldValue::I32(r.u32("signed int field")? as i32),
        b'i' => FieldValue::U32(r.u32("unsigned int field")?),
        // RabbitMQ reads `L` as a signed 64-bit too (see its errata); it is written back as `l`.
        b'l' | b'L' => FieldValue::I64(r.u64("long field")? as i64),
        b'f' => FieldValue::F32(f32::from_bits(r.u32("float field")?)),
        b'd' => FieldValue::F64(f64::from_bits(r.u64("double field")?)),
        b'D' => FieldValue::Decimal(Decimal {
            scale: r.u8("decimal field")?,
            value: r.u32("decimal field")?,
        }),
        b'S' => FieldValue::LongString(r.longstr("long string field")?),
        b'A' => FieldValue::Array(read_array(r, depth + 1)?),
        b'T' => FieldValue::Timestamp(r.u64("timestamp field")?),
        b'F' => FieldValue::Table(read_table_at(r, "nested field table", depth + 1)?),
        b'V' => FieldValue::Void,
        b'x' => FieldValue::ByteArray(r.longstr("byte array field")?),
        other => return Err(unknown_tag(other)),
    })
}

fn write_value(out: &mut BytesMut, value: &FieldValue) {
    match value {
        FieldValue::Bool(v) => {
            out.put_u8(b't');
            out.put_u8(*v as u8);
        }
        FieldValue::I8(v) => {
            out.put_u8(b'b');
            out.put_i8(*v);
        }
        FieldValue::U8(v) => {
            out.put_u8(b'B');
            out.put_u8(*v);
        }
        FieldValue::I16(v) => {
            out.put_u8(b's');
            out.put_i16(*v);
        }
        FieldValue::U16(v) => {
            out.put_u8(b'u');
            out.put_u16(*v);
        }
        FieldValue::I32(v) => {
            out.put_u8(b'I');
            out.put_i32(*v);
        }
        FieldValue::U32(v) => {
            out.put_u8(b'i');
            out.put_u32(*v);
        }
        FieldValue::I64(v) => {
            out.put_u8(b'l');
            out.put_i64(*v);
        }
        FieldValue::F32(v) => {
            out.put_u8(b'f');
            out.put_u32(v.to_bits());
        }
        FieldValue::F64(v) => {
            out.put_u8(b'd');
            out.put_u64(v.to_bits());
        }
        FieldValue::Decimal(d) => {
            out.put_u8(b'D');
            out.put_u8(d.scale);
            out.put_u32(d.value);
        }
        FieldValue::LongString(b) => {
            out.put_u8(b'S');
            wire::put_longstr(out, b);
        }
        FieldValue::Array(items) => {
            out.put_u8(b'A');
            let start = wire::begin_len(out);
            for item in items {
                write_value(out, item);
            }
            wire::patch_len(out, start);
        }
        FieldValue::Timestamp(v) => {
            out.put_u8(b'T');
            out.put_u64(*v);
        }
        FieldValue::Table(t) => {
            out.put_u8(b'F');
            t.encode(out);
        }
        FieldValue::Void => out.put_u8(b'V'),
        FieldValue::ByteArray(b) => {
            out.put_u8(b'x');
            wire::put_longstr(out, b);
        }
    }
}

#[cold]
fn too_deep() -> Error {
    Error::Syntax(format!(
        "field tables and arrays nested more than {MAX_NESTING_DEPTH} levels deep"
    ))
}

#[cold]
fn unknown_tag(tag: u8) -> Error {
    if tag.is_ascii_graphic() {
        Error::Syntax(format!(
            "unknown field type tag '{}' (0x{tag:02x})",
            tag as char
        ))
    } else {
        Error::Syntax(format!("unknown field type tag 0x{tag:02x}"))
    }
}

/// Says which key's value failed, innermost key first.
#[cold]
fn in_field(e: Error, key: &ShortStr) -> Error {
    match e {
        Error::Syntax(text) => Error::Syntax(format!("{text} in field '{key}'")),
        other => other,
    }
}
