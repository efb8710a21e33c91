//! `weir_wire::fuzzing::influxql` on every input (its doc says what is checked).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| weir_wire::fuzzing::influxql(data));
