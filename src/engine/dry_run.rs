//! Dry runs (`plugin_test/wal`, `plugin_test/schedule`): a plugin called once on given lines
//! or at its schedule's next tick, its writes and log lines captured, nothing written.
//!
//! It never touches the server's catalog or data: lines are checked against a scratch catalog.

use std::collections::BTreeMap;
use std::sync::Arc;

use pipeline::catalog::Catalog;
use pipeline::commit_log::{Delivery, TableBatch};
use pyo3::prelude::*;

use super::call_args::{args_dict, call_args};
use super::dispatch::Event;
use crate::py_api::local_api::{CallContext, Capture, PluginApi};
use crate::py_api::python::format_exception;
use super::spec::{self, TriggerSpec};
use super::{schedule, Engine, EngineError};

/// What a dry run feeds the plugin.
pub enum DryRunInput {
    Wal { lines: String },
    Schedule { spec: TriggerSpec },
}

/// What `plugin_test/wal` and `plugin_test/schedule` answer.
#[derive(Debug, Default, serde::Serialize)]
pub struct DryRunReport {
    /// For schedule plugins: the instant the plugin was called for (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_time: Option<String>,
    pub log_lines: Vec<String>,
    pub database_writes: BTreeMap<String, Vec<String>>,
    pub errors: Vec<String>,
}

impl Engine {
    /// Runs a plugin once without writing anything (`plugin_test/wal`, `plugin_test/schedule`):
    /// a WAL plugin on `lines`, or a schedule plugin at the schedule's next tick.
    pub async fn dry_run(
        &self,
        filename: &str,
        db: &str,
        input: DryRunInput,
        arguments: Option<BTreeMap<String, String>>,
        cache_name: Option<String>,
    ) -> Result<DryRunReport, EngineError> {
        pipeline::catalog::validate_db_name(db).map_err(|e| EngineError::Invalid(e.to_string()))?;
        self.fetch(filename).await?;
        self.inner.plugins.resolve(filename)?;
        let mut report = DryRunReport::default();
        let event = match input {
            DryRunInput::Wal { lines } => {
                let tables = batches_from_lines(db, &lines, &mut report.errors);
                Event::Wal(Arc::new(Delivery { from: 0, through: 0, tables }))
            }
            DryRunInput::Schedule { spec } => {
                let now = crate::time::now_ns();
                let at = schedule::next_fire_ns(&spec, now)
                    .ok_or_else(|| EngineError::Invalid("the schedule never fires".into()))?;
                report.trigger_time = Some(chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(at).to_rfc3339());
                Event::Schedule { call_time_ns: at }
            }
        };
        let cache = {
            let key = ("\0test".to_string(), cache_name.unwrap_or_default());
            self.inner.caches.lock().entry(key).or_default().clone()
        };
        let inner = self.inner.clone();
        let (filename, db) = (filename.to_string(), db.to_string());
        let capture = Arc::new(Capture::default());
        let cap = capture.clone();
        let error = self
            .on_executor(move |py, slot| -> Option<String> {
                let entry = match event {
                    Event::Schedule { .. } => spec::PROCESS_SCHEDULED_CALL,
                    _ => spec::PROCESS_WRITES,
                };
                let func = match inner.plugins.function(py, &filename, entry, "plugin_test") {
                    Ok(f) => f,
                    Err(e) => return Some(e.to_string()),
                };
                let ctx = Arc::new(CallContext::new(&db, "plugin_test", inner.services.clone(), cache, Some(cap)));
                // Under the watchdog with the default limit, as a trigger's call is: a plugin
                // that never returns must not hold an executor for good.
                let limit = inner.default_timeout;
                let mut timed_out = false;
                let mut run = || -> PyResult<()> {
                    let local = Py::new(py, PluginApi::new(ctx.clone()))?;
                    let args = args_dict(py, arguments.as_ref())?;
                    let call_args = call_args(py, local, &event, &db, &TriggerSpec::AllTables, args)?;
                    let (out, interrupted) = slot.watched(py, limit, None, || func.call1(call_args))?;
                    timed_out = interrupted.is_some();
                    out.map(|_| ())
                };
                match run() {
                    Ok(()) => {
                        ctx.flush_buffered();
                        None
                    }
                    Err(_) if timed_out => Some(format!("the plugin ran longer than the time limit of {} ms and was stopped", limit.as_millis())),
                    Err(e) => Some(format_exception(py, &e)),
                }
            })
            .await?;
        report.errors.extend(error);
        report.log_lines = std::mem::take(&mut *capture.log_lines.lock());
        report.database_writes = std::mem::take(&mut *capture.writes.lock());
        report.errors.extend(std::mem::take(&mut *capture.errors.lock()));
        Ok(report)
    }
}

/// Builds a flush's table batches from line protocol, for dry runs: the lines are checked
/// against a scratch catalog, never the server's.
pub(super) fn batches_from_lines(db: &str, lines: &str, errors: &mut Vec<String>) -> Vec<TableBatch> {
    let scratch = Catalog::in_memory();
    let now = crate::time::now_ns();
    let prepared = match pipeline::write::prepare(&scratch, db, lines.as_bytes(), pipeline::write::Precision::Auto, now, true) {
        Ok(p) => p,
        Err(e) => {
            errors.push(e.to_string());
            return Vec::new();
        }
    };
    for r in &prepared.rejects {
        errors.push(format!("input line {}: {}: {}", r.line_number, r.error_message, r.original_line));
    }
    let db_name: Arc<str> = Arc::from(db);
    let mut builders: Vec<pipeline::batch::TableBuilder> = Vec::new();
    for g in &prepared.good {
        let table = &prepared.tables[g.table];
        let i = match builders.iter().position(|b| b.table.id == table.id) {
            Some(i) => i,
            None => {
                builders.push(pipeline::batch::TableBuilder::new(prepared.db_id, db_name.clone(), table.clone()));
                builders.len() - 1
            }
        };
        builders[i].append(&g.line, g.time_ns, g.same_shape, g.series_id);
    }
    builders
        .into_iter()
        .filter_map(|b| {
            let table_name: Arc<str> = Arc::from(b.table.name.as_str());
            match b.finish() {
                Ok(batch) => Some(TableBatch { db_id: prepared.db_id, db_name: db_name.clone(), table_name, batch, commit: 0 }),
                Err(e) => {
                    errors.push(e.to_string());
                    None
                }
            }
        })
        .collect()
}
