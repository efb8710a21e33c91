//! `batch["arrow"]` shares the server's memory: the pyarrow.RecordBatch a plugin gets reads the
//! very buffers the flush holds (Arrow C Data Interface), and a table split over several shards
//! is joined into one batch with every row.
//!
//! Needs pyarrow, installed once from PyPI into a venv under `target/` (as the benches do).

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Float64Array, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use pipeline::commit_log::{Delivery, TableBatch};
use pyo3::prelude::*;

use super::spec::TriggerSpec;
use super::{packages, table_batches};
use crate::py_api::python;

fn plugin_dir_with_pyarrow() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-plugins-pyarrow");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    let dir = std::fs::canonicalize(dir).expect("canonical plugin dir");
    if !dir.join(".venv/lib/python3.11/site-packages/pyarrow").exists() {
        let policy = packages::PackagePolicy { enabled: true, timeout: std::time::Duration::from_secs(900), system_site_packages: false };
        packages::install(&dir, packages::Install::Packages(vec!["pyarrow".into()]), policy).expect("pyarrow installs");
    }
    dir
}

fn part(values: &[f64], t0: i64) -> TableBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("usage", DataType::Float64, true),
        Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
    ]));
    let times: Vec<i64> = (0..values.len() as i64).map(|i| t0 + i).collect();
    let columns: Vec<ArrayRef> =
        vec![Arc::new(Float64Array::from(values.to_vec())), Arc::new(TimestampNanosecondArray::from(times))];
    let batch = RecordBatch::try_new(schema, columns).expect("batch");
    TableBatch { db_id: 1, db_name: "db".into(), table_name: "cpu".into(), batch, commit: 0 }
}

#[test]
fn arrow_batch_is_zero_copy_and_joins_shards() {
    let dir = plugin_dir_with_pyarrow();
    python::start().expect("python");
    Python::attach(|py| python::prepare(py, &dir, false)).expect("plugin environment");
    let spec = TriggerSpec::Table("cpu".into());

    let one = Delivery { from: 0, through: 0, tables: vec![part(&[1.5, 2.5, 3.5], 100)] };
    let server_values = one.tables[0].batch.column(0).as_primitive::<Float64Type>().values().inner().as_ptr() as usize;
    Python::attach(|py| {
        let batches = table_batches(py, &one, "db", &spec).expect("batches");
        let rb = batches.get_item(0).expect("one table").get_item("arrow").expect("arrow");
        // buffers() of a float column: [validity, values].
        let address: usize = rb
            .call_method1("column", (0,))
            .and_then(|c| c.call_method0("buffers"))
            .and_then(|b| b.get_item(1))
            .and_then(|b| b.getattr("address"))
            .and_then(|a| a.extract())
            .expect("values buffer address");
        assert_eq!(address, server_values, "pyarrow must read the flush's own buffer, not a copy");
    });

    let split = Delivery { from: 0, through: 0, tables: vec![part(&[1.0, 2.0], 10), part(&[4.0], 20)] };
    Python::attach(|py| {
        let batches = table_batches(py, &split, "db", &spec).expect("batches");
        let rb = batches.get_item(0).expect("one table").get_item("arrow").expect("arrow");
        let usage: Vec<f64> = rb.call_method1("column", ("usage",)).and_then(|c| c.call_method0("to_pylist")).and_then(|l| l.extract()).expect("usage");
        assert_eq!(usage, vec![1.0, 2.0, 4.0]);
    });
}
