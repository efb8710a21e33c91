//! `pipeline::fuzzing::wal_segment` on every input (its doc says what is checked).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pipeline::fuzzing::wal_segment(data));
