//! Dry runs (`plugin_test/wal`, `plugin_test/schedule`): a plugin called once on given lines
//! or at its schedule's next tick, its writes and log lines captured, nothing written.
//!
//! It never touches the server's catalog or data: lines are checked against a scratch catalog.
//! A dry run's cache namespace (`cache_name`) is kept for the next dry run that names it, but not
//! for ever: one unused for [`TEST_CACHE_IDLE`] is freed, and at most [`TEST_CACHES`] are kept.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline::catalog::Catalog;
use pipeline::commit_log::{Delivery, TableBatch};
use pyo3::prelude::*;

use super::call_args::{args_dict, call_args};
use super::dispatch::Event;
use crate::py_api::local_api::{CallContext, Capture, PluginApi};
use crate::py_api::python::format_exception;
use super::spec::{self, TriggerSpec};
use super::{schedule, Engine, EngineError};
use crate::py_api::cache::CacheSpace;

/// A dry run's cache namespace is freed once unused this long.
pub const TEST_CACHE_IDLE: Duration = Duration::from_secs(10 * 60);
/// Dry-run cache namespaces kept at most; past it the least recently used is freed.
pub const TEST_CACHES: usize = 64;

/// Dry runs' cache namespaces, with when each was last used.
pub type TestCaches = HashMap<String, (Arc<CacheSpace>, Instant)>;

/// The namespace `name`, made if needed, and the namespaces freed to keep the bounds: the
/// caller drops those after releasing the lock (their values are Python objects).
fn test_cache(caches: &mut TestCaches, name: String, now: Instant) -> (Arc<CacheSpace>, Vec<(Arc<CacheSpace>, Instant)>) {
    let stale: Vec<String> = caches
        .iter()
        .filter(|(k, (_, used))| **k != name && now.saturating_duration_since(*used) > TEST_CACHE_IDLE)
        .map(|(k, _)| k.clone())
        .collect();
    let mut freed: Vec<_> = stale.iter().filter_map(|k| caches.remove(k)).collect();
    if !caches.contains_key(&name) && caches.len() >= TEST_CACHES {
        if let Some(oldest) = caches.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) {
            freed.extend(caches.remove(&oldest));
        }
    }
    let entry = caches.entry(name).or_insert_with(|| (Arc::default(), now));
    entry.1 = now;
    (entry.0.clone(), freed)
}

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
        let (cache, freed) = test_cache(&mut self.inner.test_caches.lock(), cache_name.unwrap_or_default(), Instant::now());
        drop(freed);
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
                let limits = inner.call_limits;
                let mut stopped = Default::default();
                let mut run = || -> PyResult<()> {
                    let local = Py::new(py, PluginApi::new(ctx.clone()))?;
                    let args = args_dict(py, arguments.as_ref())?;
                    let call_args = call_args(py, local, &event, &db, &TriggerSpec::AllTables, args)?;
                    let (out, why) = slot.watched(py, limits, None, || func.call1(call_args))?;
                    stopped = why;
                    out.map(|_| ())
                };
                match run() {
                    Ok(()) => {
                        ctx.flush_buffered();
                        None
                    }
                    Err(_) if stopped.interrupted.is_some() => {
                        Some(format!("the plugin ran longer than the time limit of {} ms and was stopped", limits.timeout.as_millis()))
                    }
                    Err(e) if stopped.out_of_memory => Some(format!(
                        "the plugin passed the memory limit of {} bytes (--plugin-memory-limit): {}",
                        limits.memory.unwrap_or_default(),
                        format_exception(py, &e)
                    )),
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

#[cfg(test)]
mod test_cache_tests {
    use super::*;

    #[test]
    fn dry_run_cache_namespaces_are_kept_between_runs_and_freed_when_idle_or_too_many() {
        let mut caches = TestCaches::new();
        let t0 = Instant::now();
        let (a, freed) = test_cache(&mut caches, "a".into(), t0);
        assert!(freed.is_empty());
        let (again, _) = test_cache(&mut caches, "a".into(), t0 + Duration::from_secs(1));
        assert!(Arc::ptr_eq(&a, &again), "a namespace named again is the same one");
        // Unused past the idle time: freed by the next dry run.
        let (_, freed) = test_cache(&mut caches, "b".into(), t0 + TEST_CACHE_IDLE + Duration::from_secs(2));
        assert_eq!(freed.len(), 1);
        assert!(!caches.contains_key("a"));
        // Never more than TEST_CACHES: the least recently used goes.
        let later = t0 + TEST_CACHE_IDLE + Duration::from_secs(3);
        for i in 0..TEST_CACHES * 2 {
            test_cache(&mut caches, format!("n{i}"), later + Duration::from_millis(i as u64));
        }
        assert_eq!(caches.len(), TEST_CACHES);
        assert!(caches.contains_key(&format!("n{}", TEST_CACHES * 2 - 1)));
        assert!(!caches.contains_key("n0"));
    }
}
