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
fn the_line_protocol_corpus_parses_and_round_trips() {
    each_input("parse_lp", pipeline::fuzzing::parse_lp);
}

#[test]
fn the_wal_record_corpus_decodes_or_is_refused() {
    each_input("wal_record", pipeline::fuzzing::wal_record);
}

#[test]
fn the_wal_segment_corpus_replays_or_is_refused() {
    each_input("wal_segment", pipeline::fuzzing::wal_segment);
}
