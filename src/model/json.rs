//! JSON text of a `serde_json::Value`, byte for byte what `to_string`
//! gives, with a faster way through long strings.
//!
//! serde_json escapes a string one byte at a time through a lookup table;
//! for a 4 KB description that was a third of a submit's instructions
//! (callgrind, `profile-submit`). Here a string is scanned 32 bytes at a
//! time by a loop without branches, which the compiler turns into vector
//! compares, and the runs between escapes are copied whole.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// The JSON text of `v`: the same bytes as `serde_json::to_string`.
pub(crate) fn to_string(v: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, v);
    out
}

/// The JSON text of an object: the same bytes as `serde_json::to_string`.
pub(crate) fn object_to_string(map: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(256);
    write_object(&mut out, map);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // Display of a Number is its JSON form: serde_json's own formatter.
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    out.push('{');
    for (i, (key, item)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, key);
        out.push(':');
        write_value(out, item);
    }
    out.push('}');
}

fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(i) = next_to_escape(bytes, start) {
        // `i` holds an ASCII byte, so both slices end on char boundaries.
        out.push_str(&s[start..i]);
        push_escape(out, bytes[i]);
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn must_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The first byte at or after `from` that JSON escapes.
fn next_to_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const CHUNK: usize = 32;
    let mut at = from;
    while at + CHUNK <= bytes.len() {
        let chunk = &bytes[at..at + CHUNK];
        // No early exit inside the chunk: this is what vectorizes.
        if chunk.iter().fold(false, |hit, &b| hit | must_escape(b)) {
            break;
        }
        at += CHUNK;
    }
    bytes[at..]
        .iter()
        .position(|&b| must_escape(b))
        .map(|p| at + p)
}

/// serde_json's escapes: the short forms, else `\u00xx` in lower case.
fn push_escape(out: &mut String, b: u8) {
    match b {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn every_escape_and_its_neighbours() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let v = json!({
            "ascii": all,
            "long": format!("{}\"{}\\{}\n", "a".repeat(40), "b".repeat(31), "c".repeat(33)),
            "unicode": "é ☃ 𝄞 \u{7f} \u{2028}",
            "numbers": [0, -1, u64::MAX, i64::MIN, 1.5, -0.0, 1e300, 0.1],
            "nested": {"a": [null, true, false, {}, []], "": ""},
        });
        assert_eq!(to_string(&v), serde_json::to_string(&v).unwrap());
    }

    /// Strings biased toward what must be escaped, at every offset of the
    /// 32-byte chunks.
    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                4 => Just('a'),
                1 => Just('"'),
                1 => Just('\\'),
                1 => (0u8..0x20).prop_map(char::from),
                1 => any::<char>(),
            ],
            0..100,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::proptest_cases()))]

        #[test]
        fn the_same_bytes_as_serde_json(v in value()) {
            prop_assert_eq!(to_string(&v), serde_json::to_string(&v).unwrap());
        }
    }
}
