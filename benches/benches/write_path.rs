//! The rest of the write path, one primitive at a time: validation against the catalog
//! (`prepare`), Arrow batch building, WAL append + fdatasync, and the hand-off of a commit to the
//! WAL triggers through the commit log. Run with `cargo bench -p weir-benches --bench write_path`.

// A benchmark, like a test, may unwrap: a panic is a failed run, not a crashed server.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pipeline::batch::TableBuilder;
use pipeline::catalog::Catalog;
use pipeline::commit_log::{CommitLog, TableBatch};
use pipeline::wal::{RecordBuf, SegmentWriter};
use pipeline::write::{prepare, Precision};
use weir_benches::tsbs_cpu_lines;

const LINES: usize = 10_000;

fn validate(c: &mut Criterion) {
    let body = tsbs_cpu_lines(LINES);
    let catalog = Catalog::in_memory();
    prepare(&catalog, "bench", body.as_bytes(), Precision::Nanosecond, 0, true).unwrap();
    let mut g = c.benchmark_group("prepare");
    g.throughput(Throughput::Elements(LINES as u64));
    g.bench_function("parse_and_validate_tsbs_10k_lines", |b| {
        b.iter(|| {
            let p = prepare(&catalog, "bench", black_box(body.as_bytes()), Precision::Nanosecond, 0, true).unwrap();
            assert_eq!(p.good.len(), LINES);
            p.good.len()
        })
    });
    g.finish();
}

fn build_batch(c: &mut Criterion) {
    let body = tsbs_cpu_lines(LINES);
    let catalog = Catalog::in_memory();
    let p = prepare(&catalog, "bench", body.as_bytes(), Precision::Nanosecond, 0, true).unwrap();
    let table = p.tables[p.good[0].table].clone();
    let mut g = c.benchmark_group("arrow_batch");
    g.throughput(Throughput::Elements(LINES as u64));
    g.bench_function("build_tsbs_10k_rows", |b| {
        b.iter(|| {
            let mut tb = TableBuilder::new(p.db_id, "bench".into(), table.clone());
            for l in &p.good {
                tb.append(&l.line, l.time_ns, l.same_shape, l.series_id);
            }
            tb.finish().unwrap().num_rows()
        })
    });
    g.finish();
}

fn wal_append(c: &mut Criterion) {
    let body = tsbs_cpu_lines(LINES);
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.sample_size(20);
    g.bench_function("log_and_seal_tsbs_10k_lines", |b| {
        // As a shard logs a write: each series once, then referred to by number.
        let catalog = Catalog::in_memory();
        let p = prepare(&catalog, "bench", body.as_bytes(), Precision::Nanosecond, 0, true).unwrap();
        b.iter(|| {
            let mut r = RecordBuf::new();
            let at = r.begin_entry(p.db_id, Precision::Nanosecond, 0);
            for l in &p.good {
                r.push_series_line(l.series_id, l.line.series, l.text);
            }
            r.end_entry(at);
            r.seal(0, 0).len()
        })
    });
    g.bench_function("append_fdatasync_3.6MB_record", |b| {
        let lines: Vec<Vec<u8>> = body.lines().map(|l| l.as_bytes().to_vec()).collect();
        b.iter_custom(|iters| time_appends(iters, lines.clone()))
    });
    g.finish();
    let mut g = c.benchmark_group("wal_small");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.bench_function("append_fdatasync_one_line_record", |b| {
        b.iter_custom(|iters| time_appends(iters, vec![b"cpu,host=a usage=1 1".to_vec()]))
    });
    g.finish();
}

/// Appends `iters` records of `lines` to a fresh WAL on a glommio executor; returns the time
/// the appends (each with its fdatasync) took.
fn time_appends(iters: u64, lines: Vec<Vec<u8>>) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    glommio::LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .spawn(move || async move {
            let mut w = SegmentWriter::open(&root, 0, std::sync::Arc::new(pipeline::wal_retention::WalRetention::new())).await.unwrap();
            let start = Instant::now();
            for epoch in 0..iters {
                let mut r = RecordBuf::new();
                let at = r.begin_entry(0, Precision::Nanosecond, 0);
                for line in &lines {
                    r.push_line(line);
                }
                r.end_entry(at);
                w.append(r.seal(epoch, epoch), epoch).await.unwrap();
            }
            start.elapsed()
        })
        .unwrap()
        .join()
        .unwrap()
}

/// What a commit costs on the shard for the WAL triggers: appending its batches to the commit
/// log (one lock, `Arc` clones), with a reader taking them and trimming behind it as the
/// engine's feeder does.
fn commit_log_append(c: &mut Criterion) {
    let body = tsbs_cpu_lines(1000);
    let catalog = Catalog::in_memory();
    let p = prepare(&catalog, "bench", body.as_bytes(), Precision::Nanosecond, 0, true).unwrap();
    let mut tb = TableBuilder::new(p.db_id, "bench".into(), p.tables[p.good[0].table].clone());
    for l in &p.good {
        tb.append(&l.line, l.time_ns, l.same_shape, l.series_id);
    }
    let batch = tb.finish().unwrap();
    let mut g = c.benchmark_group("commit_log");
    g.throughput(Throughput::Elements(1));
    g.bench_function("append_read_trim_per_commit", |b| {
        b.iter_custom(|iters| {
            let log = CommitLog::new(0, 256 << 20);
            let start = Instant::now();
            let mut rows = 0;
            for commit in 0..iters {
                let t = TableBatch { db_id: 0, db_name: "bench".into(), table_name: "cpu".into(), batch: batch.clone(), commit };
                log.append(commit, &[t]);
                let read = log.read(commit, commit + 1, 100_000, |_| true).unwrap();
                rows += read.tables.iter().map(|t| t.batch.num_rows()).sum::<usize>();
                log.trim_below(read.through);
            }
            let elapsed = start.elapsed();
            assert_eq!(rows, iters as usize * 1000);
            elapsed.max(Duration::from_nanos(1))
        })
    });
    g.finish();
}

criterion_group!(benches, validate, build_batch, wal_append, commit_log_append);
criterion_main!(benches);
