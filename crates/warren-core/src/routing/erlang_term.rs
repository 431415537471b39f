//! Field values printed the way RabbitMQ's error texts print them (Erlang's `~tp` of the
//! decoded value), so that a client sees the same reply text from Warren as from RabbitMQ:
//! `<<"foo">>` for a string, `{2,314}` for a decimal, `[{signedint,1}]` for an array.
//!
//! Only for building error texts; nothing here is on the routing path.

use warren_amqp::{FieldTable, FieldValue};

/// A decoded field value as Erlang prints it.
pub(crate) fn value(v: &FieldValue) -> String {
    let mut out = Vec::new();
    write_value(&mut out, v);
    String::from_utf8_lossy(&out).into_owned()
}

/// A binary as Erlang prints it.
pub(crate) fn binary(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    write_binary(&mut out, bytes);
    String::from_utf8_lossy(&out).into_owned()
}

fn write_value(out: &mut Vec<u8>, v: &FieldValue) {
    match v {
        FieldValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        FieldValue::F32(f) => write_float(out, *f as f64),
        FieldValue::F64(f) => write_float(out, *f),
        FieldValue::Decimal(d) => {
            out.extend_from_slice(format!("{{{},{}}}", d.scale, d.value).as_bytes())
        }
        FieldValue::LongString(b) | FieldValue::ByteArray(b) => write_binary(out, b),
        FieldValue::Array(items) => {
            write_list(out, items, |out, item| {
                out.push(b'{');
                out.extend_from_slice(item.type_name().as_bytes());
                out.push(b',');
                write_value(out, item);
                out.push(b'}');
            });
        }
        FieldValue::Table(table) => write_table(out, table),
        FieldValue::Timestamp(t) => out.extend_from_slice(t.to_string().as_bytes()),
        FieldValue::Void => out.extend_from_slice(b"undefined"),
        other => match other.as_i64() {
            Some(i) => out.extend_from_slice(i.to_string().as_bytes()),
            None => out.extend_from_slice(b"undefined"),
        },
    }
}

fn write_table(out: &mut Vec<u8>, table: &FieldTable) {
    write_list(out, &table.0, |out, (key, value)| {
        out.push(b'{');
        write_binary(out, key.as_bytes());
        out.push(b',');
        out.extend_from_slice(value.type_name().as_bytes());
        out.push(b',');
        write_value(out, value);
        out.push(b'}');
    });
}

fn write_list<T>(out: &mut Vec<u8>, items: &[T], mut write_item: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_item(out, item);
    }
    out.push(b']');
}

/// Erlang prints a binary as a quoted string when every byte is a printable Latin-1
/// character (bytes copied as they are, a few escaped), else as a list of byte values.
fn write_binary(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        out.extend_from_slice(b"<<>>");
        return;
    }
    let printable = |b: u8| matches!(b, 0x20..=0x7e | 0xa0..=0xff | b'\n' | b'\r' | b'\t' | 0x0b | 0x08 | 0x0c | 0x1b);
    if bytes.iter().all(|&b| printable(b)) {
        out.extend_from_slice(b"<<\"");
        for &b in bytes {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x0b => out.extend_from_slice(b"\\v"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                0x1b => out.extend_from_slice(b"\\e"),
                b => out.push(b),
            }
        }
        out.extend_from_slice(b"\">>");
    } else {
        out.extend_from_slice(b"<<");
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b.to_string().as_bytes());
        }
        out.extend_from_slice(b">>");
    }
}

/// Erlang's shortest float form: the fewest digits that read back to the same double, in
/// plain or scientific notation, whichever is shorter (plain on a tie), always with a `.`
/// in the mantissa: `0.1`, `100.0`, `1.0e10`, `1.0e-5`, `-0.0`.
fn write_float(out: &mut Vec<u8>, f: f64) {
    // Rust's `{:e}` gives the same shortest round-trip digits: "-1.2345e-7", "1e10".
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let (first, rest) = digits.split_at(1);

    let scientific = format!(
        "{sign}{first}.{}e{exponent}",
        if rest.is_empty() { "0" } else { rest }
    );
    let plain = if exponent >= 0 {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}.0", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("{sign}0.{}{digits}", "0".repeat((-exponent - 1) as usize))
    };
    let chosen = if scientific.len() < plain.len() {
        scientific
    } else {
        plain
    };
    out.extend_from_slice(chosen.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn floats_print_in_erlangs_shortest_form() {
        // Each pair observed in RabbitMQ 3.10's x-match error text.
        let cases: &[(f64, &str)] = &[
            (1.5, "1.5"),
            (1e10, "1.0e10"),
            (0.1, "0.1"),
            (1e-5, "1.0e-5"),
            (123456789012.0, "123456789012.0"),
            (1e21, "1.0e21"),
            (1e22, "1.0e22"),
            (-0.0, "-0.0"),
            (0.1f32 as f64, "0.10000000149011612"),
            (100.0, "100.0"),
            (1e16, "1.0e16"),
            (0.0001, "0.0001"),
            (0.001, "0.001"),
            (1234567.0, "1234567.0"),
            (1e15, "1.0e15"),
            (12345678901234567890.0, "1.2345678901234567e19"),
            (-1.5e-7, "-1.5e-7"),
            (5e-324, "5.0e-324"),
        ];
        for (f, expected) in cases {
            assert_eq!(value(&FieldValue::F64(*f)), *expected, "for {f:?}");
        }
    }

    #[test]
    fn binaries_print_as_strings_only_when_all_bytes_are_printable_latin1() {
        assert_eq!(binary(b""), "<<>>");
        assert_eq!(binary(b"foo"), "<<\"foo\">>");
        assert_eq!(binary(b"q\"\\"), "<<\"q\\\"\\\\\">>");
        assert_eq!(binary(b"a\tb\x1b"), "<<\"a\\tb\\e\">>");
        assert_eq!(binary("é".as_bytes()), "<<\"é\">>");
        assert_eq!(binary("€".as_bytes()), "<<226,130,172>>");
        assert_eq!(binary(b"\x01\x02"), "<<1,2>>");
        assert_eq!(binary(b"\x7f"), "<<127>>");
    }

    #[test]
    fn compound_values_print_as_erlang_terms() {
        let array = FieldValue::Array(vec![FieldValue::I32(1), FieldValue::string("a")]);
        assert_eq!(value(&array), "[{signedint,1},{longstr,<<\"a\">>}]");
        assert_eq!(
            value(&FieldValue::Array(vec![FieldValue::Void])),
            "[{void,undefined}]"
        );
        let mut table = FieldTable::new();
        table.insert("k", FieldValue::I32(1));
        assert_eq!(
            value(&FieldValue::Table(table)),
            "[{<<\"k\">>,signedint,1}]"
        );
        assert_eq!(value(&FieldValue::Table(FieldTable::new())), "[]");
        let decimal = FieldValue::Decimal(warren_amqp::Decimal {
            scale: 2,
            value: 314,
        });
        assert_eq!(value(&decimal), "{2,314}");
        assert_eq!(value(&FieldValue::Bool(true)), "true");
        assert_eq!(value(&FieldValue::Void), "undefined");
        assert_eq!(value(&FieldValue::Timestamp(5)), "5");
        assert_eq!(value(&FieldValue::I64(-5)), "-5");
        assert_eq!(
            value(&FieldValue::ByteArray(Bytes::from_static(b"any"))),
            "<<\"any\">>"
        );
    }
}
