//! Any body: the parser returns, never panics, and every good line rendered back to line
//! protocol parses to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline::lp::parse_lines;

fuzz_target!(|data: &[u8]| {
    for item in parse_lines(data) {
        let Ok(line) = item.parsed else { continue };
        let s = line.to_line_protocol();
        let again: Vec<_> = parse_lines(s.as_bytes()).collect();
        assert_eq!(again.len(), 1, "{s:?}");
        let back = again.into_iter().next().unwrap().parsed.expect("re-rendered line parses");
        assert_eq!(back, line);
    }
});
