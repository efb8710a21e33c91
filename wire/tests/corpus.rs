//! Every saved fuzz input (`fuzz/corpus/<target>/`) through its target's checks: what the
//! fuzzers found once stays covered on every CI run, without a fuzzer.

use weir_wire::fuzzing::replay_corpus;

#[test]
fn the_trigger_spec_corpus_parses_and_prints_back() {
    replay_corpus("trigger_spec", weir_wire::fuzzing::trigger_spec);
}

#[test]
fn the_query_params_corpus_decodes() {
    replay_corpus("query_params", weir_wire::fuzzing::query_params);
}

#[test]
fn the_time_corpus_parses_and_prints_back() {
    replay_corpus("time", weir_wire::fuzzing::time);
}

#[test]
fn the_influxql_corpus_parses_and_prints_back() {
    replay_corpus("influxql", weir_wire::fuzzing::influxql);
}
