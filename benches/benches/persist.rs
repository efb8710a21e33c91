//! What one persist costs per row, step by step, on TSBS cpu rows as the write buffer holds
//! them (one batch per 5,000-line request): concatenating a chunk, sorting it by series and
//! time with repeated points merged, and encoding it as Parquet. At 100 and 4,000 hosts.
//! Run with `cargo bench -p weir-benches --bench persist`.

// A benchmark, like a test, may unwrap: a panic is a failed run, not a crashed server.
#![allow(clippy::unwrap_used)]

use arrow::record_batch::RecordBatch;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pipeline::batch::TableBuilder;
use pipeline::catalog::Catalog;
use pipeline::write::{prepare, Precision};
use weir::storage::persist::encode;
use weir::storage::points::sort_and_merge;
use weir_benches::tsbs_cpu_lines_over;

const ROWS: usize = 200_000;
const REQUEST: usize = 5_000;

/// `ROWS` rows over `hosts` hosts, as request-sized batches.
fn buffered(hosts: usize) -> Vec<RecordBatch> {
    let body = tsbs_cpu_lines_over(ROWS, hosts);
    let catalog = Catalog::in_memory();
    let lines: Vec<&str> = body.lines().collect();
    lines
        .chunks(REQUEST)
        .map(|chunk| {
            let text = chunk.join("\n");
            let p = prepare(&catalog, "bench", text.as_bytes(), Precision::Nanosecond, 0, true).unwrap();
            let table = p.tables[p.good[0].table].clone();
            let mut tb = TableBuilder::new(p.db_id, "bench".into(), table);
            for l in &p.good {
                tb.append(&l.line, l.time_ns, l.same_shape, l.series_id);
            }
            tb.finish().unwrap()
        })
        .collect()
}

fn persist_steps(c: &mut Criterion) {
    for hosts in [100, 4_000] {
        let batches = buffered(hosts);
        let schema = batches[0].schema();
        let all = arrow::compute::concat_batches(&schema, &batches).unwrap();
        let sorted = sort_and_merge(&all).unwrap();
        let mut g = c.benchmark_group(format!("persist_{hosts}_hosts"));
        g.throughput(Throughput::Elements(ROWS as u64));
        g.sample_size(10);
        g.bench_function("concat", |b| b.iter(|| arrow::compute::concat_batches(&schema, black_box(&batches)).unwrap().num_rows()));
        g.bench_function("sort_and_merge", |b| b.iter(|| sort_and_merge(black_box(&all)).unwrap().num_rows()));
        g.bench_function("encode_parquet", |b| b.iter(|| encode(black_box(&sorted)).unwrap().len()));
        g.finish();
    }
}

criterion_group!(benches, persist_steps);
criterion_main!(benches);
