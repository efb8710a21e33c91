//! Any body: the parser returns, never panics, and every good line's escaped form parses back
//! to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline::lp::{escape_key, escape_measurement, escape_string_field, parse_lines, FieldValue};

fuzz_target!(|data: &[u8]| {
    for item in parse_lines(data) {
        let Ok(line) = item.parsed else { continue };
        let mut s = escape_measurement(&line.measurement);
        for (k, v) in &line.tags {
            s.push(',');
            s.push_str(&escape_key(k));
            s.push('=');
            s.push_str(&escape_key(v));
        }
        s.push(' ');
        for (i, (k, v)) in line.fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&escape_key(k));
            s.push('=');
            match v {
                FieldValue::Float(f) => s.push_str(&format!("{f:?}")),
                FieldValue::Integer(n) => s.push_str(&format!("{n}i")),
                FieldValue::UInteger(n) => s.push_str(&format!("{n}u")),
                FieldValue::Boolean(b) => s.push_str(if *b { "t" } else { "f" }),
                FieldValue::String(t) => {
                    s.push('"');
                    s.push_str(&escape_string_field(t));
                    s.push('"');
                }
            }
        }
        if let Some(ts) = line.timestamp {
            s.push_str(&format!(" {ts}"));
        }
        let again: Vec<_> = parse_lines(s.as_bytes()).collect();
        assert_eq!(again.len(), 1, "{s:?}");
        let back = again.into_iter().next().unwrap().parsed.expect("re-rendered line parses");
        assert_eq!(back.measurement, line.measurement);
        assert_eq!(back.tags, line.tags);
        assert_eq!(back.fields, line.fields);
        assert_eq!(back.timestamp, line.timestamp);
    }
});
