//! Every saved fuzz input (`fuzz/corpus/<target>/`) through its target's checks: what the
//! fuzzers found once stays covered on every CI run, without a fuzzer.

use weir_wire::fuzzing::replay_corpus;

#[test]
fn the_line_protocol_corpus_parses_and_round_trips() {
    replay_corpus("parse_lp", pipeline::fuzzing::parse_lp);
}

#[test]
fn the_wal_record_corpus_decodes_or_is_refused() {
    replay_corpus("wal_record", pipeline::fuzzing::wal_record);
}

#[test]
fn the_wal_segment_corpus_replays_or_is_refused() {
    replay_corpus("wal_segment", pipeline::fuzzing::wal_segment);
}
