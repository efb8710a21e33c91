//! Any bytes as a WAL record: decoding returns an error or a record, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = pipeline::wal::decode_record(data) {
        assert!(rec.size <= data.len());
    }
});
