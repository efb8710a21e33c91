//! The checks the fuzz targets (`fuzz/fuzz_targets/`) run on arbitrary input, kept here so
//! that the targets and the corpus replay (`tests/corpus.rs`, run by CI on every saved input)
//! run the same code. Each must never panic on any input except where a check fails.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::lp::parse_lines;
use crate::wal::{decode_record, segment_path, shard_dir};
use crate::wal_replay::{replay, ReplayOptions};

/// Any body: the parser returns, and every good line rendered back to line protocol parses to
/// the same values. (Not the same `series` bytes: those are the text as sent, and the rendering
/// may escape differently, as `\\` for a measurement's lone backslash.)
pub fn parse_lp(data: &[u8]) {
    for item in parse_lines(data) {
        let Ok(line) = item.parsed else { continue };
        let s = line.to_line_protocol();
        let again: Vec<_> = parse_lines(s.as_bytes()).collect();
        assert_eq!(again.len(), 1, "{s:?}");
        let back = again.into_iter().next().map(|i| i.parsed);
        let Some(Ok(back)) = back else { panic!("{s:?} does not parse back: {back:?}") };
        assert_eq!(
            (&back.measurement, &back.tags, &back.fields, back.timestamp),
            (&line.measurement, &line.tags, &line.fields, line.timestamp),
            "{s:?}"
        );
    }
}

/// Any bytes as one WAL record: decoded or refused, never read past the input.
pub fn wal_record(data: &[u8]) {
    if let Ok(rec) = decode_record(data) {
        assert!(rec.size <= data.len());
    }
}

/// Any bytes as a shard's only WAL segment: replay reads it, cutting a torn tail, or refuses it
/// as damaged; what it hands over it read from whole records.
pub fn wal_segment(data: &[u8]) {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let root = std::env::temp_dir().join(format!("weir-fuzz-wal-{}-{}", std::process::id(), RUN.fetch_add(1, Ordering::Relaxed)));
    let dir = shard_dir(&root, 0);
    if std::fs::create_dir_all(&dir).is_err() || std::fs::write(segment_path(&dir, 1), data).is_err() {
        return;
    }
    let mut entries = 0usize;
    if let Ok(stats) = replay(&root, ReplayOptions::default(), |_, _, _| entries += 1) {
        assert_eq!(stats.entries, entries);
        assert!(stats.records <= data.len());
    }
    let _ = std::fs::remove_dir_all(&root);
}
