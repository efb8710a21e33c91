//! Python values to JSON text, byte for byte as `json.dumps(value)` with its defaults writes it
//! (`", "` and `": "` separators, `ensure_ascii`, floats as `repr`), for the answers of request
//! triggers: `json.dumps` runs several Python frames a call, this runs none.
//!
//! It handles the shapes plugins return (exact `dict` with `str` keys, `list`, `tuple`, `str`,
//! `int` within 64 bits, finite `float`, `bool`, `None`); for anything else it answers `None`
//! and the caller uses `json.dumps`, so the output never differs from it.

use std::fmt::Write as _;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Deepest nesting encoded here; deeper values go to `json.dumps` (and its recursion limit).
const MAX_DEPTH: usize = 64;

/// `json.dumps(value)`, or `None` when `value` holds something only `json.dumps` knows.
pub fn dumps(value: &Bound<'_, PyAny>) -> Option<String> {
    let mut out = String::with_capacity(64);
    write_value(value, &mut out, 0).then_some(out)
}

fn write_value(v: &Bound<'_, PyAny>, out: &mut String, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    if v.is_none() {
        out.push_str("null");
    } else if let Ok(s) = v.cast_exact::<PyString>() {
        let Ok(s) = s.to_str() else { return false };
        write_str(s, out);
    } else if let Ok(b) = v.cast_exact::<PyBool>() {
        out.push_str(if b.is_true() { "true" } else { "false" });
    } else if v.is_exact_instance_of::<PyInt>() {
        match v.extract::<i64>() {
            Ok(n) => {
                let _ = write!(out, "{n}");
            }
            Err(_) => match v.extract::<u64>() {
                Ok(n) => {
                    let _ = write!(out, "{n}");
                }
                Err(_) => return false,
            },
        }
    } else if let Ok(f) = v.cast_exact::<PyFloat>() {
        return write_float(f.value(), out);
    } else if let Ok(d) = v.cast_exact::<PyDict>() {
        out.push('{');
        for (i, (k, v)) in d.iter().enumerate() {
            let Ok(k) = k.cast_exact::<PyString>() else { return false };
            let Ok(k) = k.to_str() else { return false };
            if i > 0 {
                out.push_str(", ");
            }
            write_str(k, out);
            out.push_str(": ");
            if !write_value(&v, out, depth + 1) {
                return false;
            }
        }
        out.push('}');
    } else if let Ok(l) = v.cast_exact::<PyList>() {
        return write_seq(l.iter(), out, depth);
    } else if let Ok(t) = v.cast_exact::<PyTuple>() {
        return write_seq(t.iter(), out, depth);
    } else {
        return false;
    }
    true
}

fn write_seq<'py>(items: impl Iterator<Item = Bound<'py, PyAny>>, out: &mut String, depth: usize) -> bool {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if !write_value(&item, out, depth + 1) {
            return false;
        }
    }
    out.push(']');
    true
}

/// A JSON string with `ensure_ascii`: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f` by name, other
/// control and non-ASCII characters as `\uXXXX` (UTF-16 surrogate pairs past U+FFFF).
fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A float as Python's `repr`: the shortest digits that read back, positional for exponents
/// from -4 to 15 (`0.0001`, `1e+16` past it), always with a `.0` or an exponent. Infinities
/// and NaN are `json.dumps`'s to write (as `Infinity`, `NaN`).
fn write_float(x: f64, out: &mut String) -> bool {
    if !x.is_finite() {
        return false;
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e3", "-5e-7", "0e0".
    let sci = format!("{x:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else { return false };
    let Ok(exp) = exp.parse::<i32>() else { return false };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    out.push_str(sign);
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else if point as usize >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value here must come out exactly as `json.dumps` writes it.
    #[test]
    fn matches_json_dumps_byte_for_byte() {
        crate::py_api::python::start().expect("python");
        Python::attach(|py| {
            let cases = r#"[
                {"hello": "world"}, [], {}, [1, -2, 2**63 - 1, -2**63, 2**64 - 1], (1, "a"),
                [0.0, -0.0, 1.0, 0.1, 1.5e-5, 0.0001, 1e16, 1e15, 123456789.125, 1.2345678901234568e+17,
                 5e-324, 1.7976931348623157e308, -2.5, 100.0, 3.14159, 1e-4, 9.999e-5, 12345678901234567.0],
                "quote \" back \\ nl \n tab \t cr \r bs \b ff \f ctl \x01 del \x7f é 日本 😀",
                {"nested": {"a": [True, False, None, {"b": []}]}, "": ""}
            ]"#;
            let code = std::ffi::CString::new(cases).unwrap();
            let values = py.eval(&code, None, None).unwrap();
            let json_dumps = py.import("json").unwrap().getattr("dumps").unwrap();
            for v in values.try_iter().unwrap() {
                let v = v.unwrap();
                let want: String = json_dumps.call1((&v,)).unwrap().extract().unwrap();
                assert_eq!(dumps(&v), Some(want), "{v}");
            }
            // What only json.dumps knows goes to it.
            for other in ["float('nan')", "2**64", "{1: 2}", "set()", "b'x'", "[object()]"] {
                let code = std::ffi::CString::new(other).unwrap();
                assert_eq!(dumps(&py.eval(&code, None, None).unwrap()), None, "{other}");
            }
        });
    }
}
