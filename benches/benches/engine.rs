//! Rows delivered into Python per second: as `table_batches` dicts (what every InfluxDB 3 plugin
//! reads) and as a pyarrow.RecordBatch (`batch["arrow"]`, Arrow C Data Interface). Targets
//! (issue "Processing engine"): ≥ 1 M rows/s as dicts, ≥ 50 M rows/s as Arrow, on one core.
//! Run with `cargo bench -p weir-benches --bench engine`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pipeline::catalog::Catalog;
use pipeline::commit_log::{Delivery, TableBatch};
use pipeline::write::{prepare, Precision};
use pyo3::prelude::*;
use weir::engine::spec::TriggerSpec;
use weir::engine::table_batches;
use weir::py_api::python;
use weir_benches::{bench_plugin_dir, tsbs_cpu_lines};

const ROWS: usize = 10_000;

fn tsbs_flush(rows: usize) -> Delivery {
    let body = tsbs_cpu_lines(rows);
    let catalog = Catalog::in_memory();
    let p = prepare(&catalog, "bench", body.as_bytes(), Precision::Nanosecond, 0, true).expect("prepare");
    let mut b = pipeline::batch::TableBuilder::new(p.db_id, "bench".into(), p.tables[p.good[0].table].clone());
    for g in &p.good {
        b.append(&g.line, g.time_ns, g.same_shape, g.series_id);
    }
    let batch = b.finish().expect("batch");
    Delivery { from: 0, through: 1, tables: vec![TableBatch { db_id: p.db_id, db_name: "bench".into(), table_name: "cpu".into(), batch, commit: 0 }] }
}

fn into_python(c: &mut Criterion) {
    let dir = bench_plugin_dir();
    python::start().expect("python");
    Python::attach(|py| python::prepare(py, &dir, false)).expect("plugin environment");
    let flush = Arc::new(tsbs_flush(ROWS));
    let spec = TriggerSpec::Table("cpu".into());
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("tsbs_10k_rows_as_dicts", |b| {
        b.iter(|| {
            Python::attach(|py| {
                let batches = table_batches(py, &flush, "bench", &spec).expect("batches");
                let rows = batches.get_item(0).expect("one").get_item("rows").expect("rows");
                assert_eq!(rows.len().expect("len"), ROWS);
            })
        })
    });
    g.bench_function("tsbs_10k_rows_as_pyarrow", |b| {
        b.iter(|| {
            Python::attach(|py| {
                // What a plugin pays for batch["arrow"]: the export over the C Data Interface.
                use arrow::pyarrow::ToPyArrow;
                let rb = flush.tables[0].batch.to_pyarrow(py).expect("pyarrow");
                let n: usize = rb.getattr("num_rows").expect("num_rows").extract().expect("int");
                assert_eq!(n, ROWS);
            })
        })
    });
    g.finish();
}

criterion_group!(benches, into_python);
criterion_main!(benches);
