//! Line-protocol parsing throughput on TSBS cpu-only-style lines (10 tags, 10 float fields).
//!
//! Target (pipeline/src/lp.rs): ≥ 500 MB/s per core. Run with
//! `cargo bench -p weir-benches --bench parse_lp`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pipeline::lp::parse_lines;
use weir_benches::{tsbs_cpu_lines, tsbs_cpu_lines_over};

fn parse(c: &mut Criterion) {
    let body = tsbs_cpu_lines(10_000);
    let mut g = c.benchmark_group("parse_lp");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("tsbs_cpu_10k_lines", |b| {
        b.iter(|| {
            let mut fields = 0usize;
            for item in parse_lines(black_box(body.as_bytes())) {
                if let Ok(line) = item.parsed {
                    fields += line.fields.len();
                }
            }
            assert_eq!(fields, 100_000);
            fields
        })
    });
    // Every line a new series: the per-body series memory only costs here.
    let unique = tsbs_cpu_lines_over(10_000, 10_000);
    g.throughput(Throughput::Bytes(unique.len() as u64));
    g.bench_function("tsbs_cpu_10k_series", |b| b.iter(|| parse_lines(black_box(unique.as_bytes())).filter(|i| i.parsed.is_ok()).count()));
    g.finish();
    let mut g = c.benchmark_group("parse_lp_lines");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("tsbs_cpu_10k_lines", |b| b.iter(|| parse_lines(black_box(body.as_bytes())).count()));
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
