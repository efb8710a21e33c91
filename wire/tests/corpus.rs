//! Every saved fuzz input (`fuzz/corpus/<target>/`) through its target's checks: what the
//! fuzzers found once stays covered on every CI run, without a fuzzer.

use std::path::Path;

fn each_input(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let data = std::fs::read(entry.path()).unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        check(&data);
        inputs += 1;
    }
    assert!(inputs > 0, "no inputs in {}", dir.display());
}

#[test]
fn the_trigger_spec_corpus_parses_and_prints_back() {
    each_input("trigger_spec", weir_wire::fuzzing::trigger_spec);
}

#[test]
fn the_query_params_corpus_decodes() {
    each_input("query_params", weir_wire::fuzzing::query_params);
}

#[test]
fn the_time_corpus_parses_and_prints_back() {
    each_input("time", weir_wire::fuzzing::time);
}
