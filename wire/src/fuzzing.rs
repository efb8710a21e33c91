//! The checks the fuzz targets (`fuzz/fuzz_targets/`) run on arbitrary input, kept here so
//! that the targets and the corpus replay (`tests/corpus.rs`, run by CI on every saved input)
//! run the same code. Each must never panic on any input except where a check fails.

use crate::params::{flag, query_string, QueryRequest};
use crate::spec::TriggerSpec;
use crate::time::{format_instant, parse_duration, parse_instant};

/// A trigger spec parses or is refused with a reason; a parsed one's text parses back to it.
pub fn trigger_spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match TriggerSpec::parse(text) {
        Ok(spec) => {
            let again = TriggerSpec::parse(&spec.to_string());
            assert_eq!(again.as_ref(), Ok(&spec), "{text:?} printed as {:?}", spec.to_string());
        }
        Err(e) => assert!(!e.reason.is_empty()),
    }
}

/// HTTP query parameters: the bytes up to the first newline are a query string, the rest a
/// body. Decoding never panics; a query request takes the query string's `db` unless a POST's
/// body names one.
pub fn query_params(data: &[u8]) {
    let (qs, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let params = query_string(Some(&String::from_utf8_lossy(qs)));
    for name in ["accept_partial", "no_sync"] {
        let _ = flag(&params, name, true);
    }
    for post in [false, true] {
        if let Ok(req) = QueryRequest::parse(post, &params, body) {
            if !post {
                assert_eq!(req.db.as_ref(), params.get("db"));
            }
        }
    }
}

/// Durations and instants: parse or refuse; an instant printed parses back to itself.
pub fn time(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = parse_duration(text) {
        assert!(!d.is_zero(), "{text:?} parsed to zero");
    }
    if let Ok(ns) = parse_instant(text) {
        let printed = format_instant(ns);
        assert_eq!(parse_instant(&printed), Ok(ns), "{text:?} printed as {printed:?}");
    }
}

/// InfluxQL: parses or is refused with a position inside the text; every statement parsed,
/// printed, parses back to itself.
pub fn influxql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match crate::influxql::parser::parse(text) {
        Ok(statements) => {
            for stmt in statements {
                let printed = stmt.to_string();
                let again = crate::influxql::parser::parse(&printed);
                assert_eq!(again.as_ref().ok(), Some(&vec![stmt]), "{text:?} printed as {printed:?}: {again:?}");
            }
        }
        Err(e) => assert!(e.pos <= text.len(), "{text:?}: position {} past the end", e.pos),
    }
}

/// Runs `check` on every input saved for fuzz target `target` (`fuzz/corpus/TARGET/`), as the
/// corpus tests of this crate and of `pipeline` do; panics if there is none.
pub fn replay_corpus(target: &str, check: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let data = std::fs::read(entry.path()).unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        check(&data);
        inputs += 1;
    }
    assert!(inputs > 0, "no inputs in {}", dir.display());
}
