//! The arguments a plugin function is called with: `influxdb3_local`, the event's data
//! (`table_batches`, the call time, or the request) and the trigger's arguments.
//!
//! It converts data for Python; it never calls the plugin.

use std::collections::BTreeMap;

use pipeline::commit_log::{Delivery, TableBatch};
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList};

use super::dispatch::Event;
use crate::py_api::local_api::PluginApi;
use super::spec::TriggerSpec;
use super::schedule;
use crate::py_api::convert;

/// The positional arguments of the plugin function an event calls: `process_writes`,
/// `process_scheduled_call` or `process_request`.
pub(super) fn call_args<'py>(
    py: Python<'py>,
    local: Py<PluginApi>,
    event: &Event,
    db: &str,
    spec: &TriggerSpec,
    args: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    match event {
        Event::Wal(flush) => (local, table_batches(py, flush, db, spec)?, args).into_pyobject(py),
        Event::Schedule { call_time_ns } => (local, schedule::call_time(py, *call_time_ns)?, args).into_pyobject(py),
        Event::Request(req) => {
            let (q, h, b) = req.to_python(py)?;
            (local, q, h, b, args).into_pyobject(py)
        }
    }
}

/// The trigger's arguments as a dict, or None when it has none.
pub(super) fn args_dict<'py>(py: Python<'py>, args: Option<&BTreeMap<String, String>>) -> PyResult<Bound<'py, PyAny>> {
    match args {
        None => Ok(py.None().into_bound(py)),
        Some(a) => {
            let d = PyDict::new(py);
            for (k, v) in a {
                d.set_item(k, v)?;
            }
            Ok(d.into_any())
        }
    }
}

/// `table_batches` for one trigger: one `TableBatch` dict per table of `db` that the spec
/// wants, rows as dicts, and `"arrow"` built on demand. Public for the benches.
pub fn table_batches<'py>(py: Python<'py>, flush: &Delivery, db: &str, spec: &TriggerSpec) -> PyResult<Bound<'py, PyList>> {
    // Group by table, keeping first-seen order: several shards may each hold part of a table.
    // The parts are in commit order already (the commit log and the WAL reader hand them so).
    let mut groups: Vec<(&str, Vec<&TableBatch>)> = Vec::new();
    for t in &flush.tables {
        if *t.db_name != *db || !spec.wants_table(&t.table_name) {
            continue;
        }
        match groups.iter_mut().find(|(name, _)| *name == &*t.table_name) {
            Some((_, v)) => v.push(t),
            None => groups.push((&t.table_name, vec![t])),
        }
    }
    let cls = py.import("weir_runtime")?.getattr("TableBatch")?;
    let out = PyList::empty(py);
    for (name, parts) in groups {
        let rows = PyList::empty(py);
        for p in &parts {
            convert::append_rows(py, &p.batch, convert::Nulls::Omit, &rows)?;
        }
        let batch = cls.call0()?;
        batch.set_item("table_name", name)?;
        batch.set_item("rows", rows)?;
        let arrow_parts: Vec<arrow::record_batch::RecordBatch> = parts.iter().map(|p| p.batch.clone()).collect();
        let source = PyCFunction::new_closure(py, None, None, move |args, _kwargs| -> PyResult<Py<PyAny>> {
            use arrow::pyarrow::ToPyArrow;
            let py = args.py();
            // One part is handed over as is (zero-copy); parts from several shards are joined.
            let merged = match arrow_parts.as_slice() {
                [one] => one.clone(),
                many => pipeline::buffer::merge(many).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?,
            };
            Ok(merged.to_pyarrow(py)?.unbind())
        })?;
        batch.setattr("_arrow_source", source)?;
        out.append(batch)?;
    }
    Ok(out)
}
