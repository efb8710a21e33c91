//! Property test: for arbitrary measurement, tag and string values, what the plugin-facing
//! `LineBuilder` builds parses back, with the server's own parser, to the same values; and what
//! it refuses is exactly what line protocol cannot carry.

use pipeline::lp::{parse_lines, FieldValue};
use proptest::prelude::*;
use pyo3::prelude::*;

use super::python;

fn python_ready() {
    python::start().expect("python starts");
    let dir = std::env::temp_dir().join("weir-lb-proptest-plugins");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    Python::attach(|py| python::prepare(py, &dir, false)).expect("runtime");
}

/// Text with every character line protocol treats specially, and some that it does not.
fn text() -> impl Strategy<Value = String> {
    "[a-c ,=\"\\\\\n\r\t#é.]{0,8}"
}

/// A key that LineBuilder accepts: no space, comma, equals sign or line break, not empty.
fn key() -> impl Strategy<Value = String> {
    "[a-c\"\\\\\t#é.]{1,6}".prop_filter("time is reserved", |k| k != "time")
}

#[derive(Debug)]
struct Case {
    measurement: String,
    tags: Vec<(String, String)>,
    string_field: String,
    float: f64,
    int: i64,
    uint: u64,
    flag: bool,
    time: Option<i64>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        text(),
        prop::collection::vec((key(), text()), 0..3),
        text(),
        any::<f64>(),
        any::<i64>(),
        any::<u64>(),
        any::<bool>(),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(measurement, tags, string_field, float, int, uint, flag, time)| Case {
            measurement,
            tags,
            string_field,
            float,
            int,
            uint,
            flag,
            time,
        })
}

/// What LineBuilder should refuse: empty or comment-like measurements, line breaks in names or
/// tag values, empty tag values, non-finite floats.
fn unrepresentable(c: &Case) -> bool {
    let broken = |s: &str| s.contains('\n') || s.contains('\r');
    c.measurement.is_empty()
        || c.measurement.starts_with('#')
        || c.measurement.starts_with('\t')
        || broken(&c.measurement)
        || c.tags.iter().any(|(_, v)| v.is_empty() || broken(v))
        || !c.float.is_finite()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn line_builder_output_parses_back_to_the_same_values(c in case()) {
        python_ready();
        let built: Result<String, String> = Python::attach(|py| {
            let run = || -> PyResult<String> {
                let lb = py.import("builtins")?.getattr("LineBuilder")?.call1((c.measurement.as_str(),))?;
                for (k, v) in &c.tags {
                    lb.call_method1("tag", (k.as_str(), v.as_str()))?;
                }
                lb.call_method1("string_field", ("s", c.string_field.as_str()))?;
                lb.call_method1("float64_field", ("f", c.float))?;
                lb.call_method1("int64_field", ("i", c.int))?;
                lb.call_method1("uint64_field", ("u", c.uint))?;
                lb.call_method1("bool_field", ("b", c.flag))?;
                lb.call_method1("time_ns", (c.time,))?;
                lb.call_method0("build")?.extract()
            };
            run().map_err(|e| {
                let influx_error = e.is_instance(py, &py.import("builtins").and_then(|b| b.getattr("InfluxDBError")).expect("InfluxDBError"));
                format!("{}{e}", if influx_error { "" } else { "NOT AN InfluxDBError: " })
            })
        });
        match built {
            Err(e) => {
                prop_assert!(!e.starts_with("NOT AN"), "{}", e);
                prop_assert!(unrepresentable(&c), "refused a representable line: {}", e);
            }
            Ok(line) => {
                prop_assert!(!unrepresentable(&c), "built {:?} from an unrepresentable case", line);
                let items: Vec<_> = parse_lines(line.as_bytes()).collect();
                prop_assert_eq!(items.len(), 1, "{:?}", line);
                let parsed = items[0].parsed.as_ref().map_err(|e| TestCaseError::fail(format!("{line:?}: {e}")))?;
                prop_assert_eq!(parsed.measurement.as_ref(), c.measurement.as_str());
                // Duplicate tag keys: the last value wins in LineBuilder (a dict).
                let mut want_tags: Vec<(String, String)> = Vec::new();
                for (k, v) in &c.tags {
                    match want_tags.iter_mut().find(|(wk, _)| wk == k) {
                        Some(t) => t.1 = v.clone(),
                        None => want_tags.push((k.clone(), v.clone())),
                    }
                }
                let got_tags: Vec<(String, String)> = parsed.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                prop_assert_eq!(got_tags, want_tags);
                let field = |name: &str| parsed.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                prop_assert_eq!(field("s"), Some(FieldValue::String(c.string_field.clone().into())));
                prop_assert_eq!(field("f"), Some(FieldValue::Float(c.float)));
                prop_assert_eq!(field("i"), Some(FieldValue::Integer(c.int)));
                prop_assert_eq!(field("u"), Some(FieldValue::UInteger(c.uint)));
                prop_assert_eq!(field("b"), Some(FieldValue::Boolean(c.flag)));
                prop_assert_eq!(parsed.timestamp, c.time);
            }
        }
    }
}
