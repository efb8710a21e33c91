//! Replay and backfill (beyond InfluxDB 3): runs a WAL trigger's plugin over the stored rows of
//! a time range, Parquet and buffer alike, as if they were being written now.
//!
//! A replay is a job on its own thread (`weir-replay-N`). For each table the trigger wants (one
//! for `table:NAME`, every table of the database for `all_tables`, one after another) it reads
//! the rows of `[start, end)` in time order through SQL, at most `--trigger-max-batch-rows` a
//! call (never splitting one timestamp), and calls the plugin with the same `table_batches` a
//! WAL call gets, on an executor, one call at a time; the plugin's writes go through as usual.
//! A failed call is logged and counted, and the replay goes on. Progress (calls, rows, errors,
//! how far in time) is kept per job for `GET .../replay?id=N`.
//!
//! It never moves the trigger's cursor and works the same on an enabled or a disabled trigger.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, TimestampNanosecondArray};
use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;
use pipeline::catalog::CatalogError;
use pipeline::commit_log::{Delivery, TableBatch};
use serde::Serialize;

use super::dispatch::Event;
use super::executor::Work;
use super::runner::Runner;
use super::spec::TriggerSpec;
use super::{Engine, EngineError, Inner};
use crate::plugin_logs::LogLevel;

/// Finished jobs kept for their progress to be read.
const KEPT_JOBS: usize = 64;

/// Where a replay job stands.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ReplayProgress {
    pub id: u64,
    pub db: String,
    pub trigger_name: String,
    /// `running`, `done` or `failed` (it could not read the rows or reach the executors).
    pub state: &'static str,
    pub start_ns: i64,
    pub end_ns: i64,
    pub calls: u64,
    pub rows: u64,
    /// Calls that raised or timed out.
    pub errors: u64,
    /// The table being replayed, and the newest time handed to the plugin so far.
    pub table: Option<String>,
    pub through_ns: Option<i64>,
    pub error: Option<String>,
}

#[derive(Default)]
pub(super) struct Replays {
    next_id: AtomicU64,
    jobs: Mutex<VecDeque<Arc<Mutex<ReplayProgress>>>>,
}

impl Engine {
    /// Starts replaying WAL trigger `name` of `db` over `[start_ns, end_ns)`; returns the job id.
    pub fn start_replay(&self, db: &str, name: &str, start_ns: i64, end_ns: i64) -> Result<u64, EngineError> {
        if start_ns >= end_ns {
            return Err(EngineError::Invalid("replay start must be before its end".into()));
        }
        let snapshot = self.inner.catalog.snapshot();
        let dbm = snapshot.db(db).ok_or_else(|| CatalogError::DatabaseNotFound(db.to_string()))?;
        let def = dbm.triggers.get(name).ok_or_else(|| CatalogError::TriggerNotFound(name.to_string()))?.clone();
        let spec = TriggerSpec::parse(&def.specification)?;
        if !spec.is_wal() {
            return Err(EngineError::Invalid(format!(
                "trigger '{name}' is '{}'; only table: and all_tables triggers can be replayed",
                def.specification
            )));
        }
        let mut tables: Vec<String> = dbm.tables.values().map(|t| t.name.clone()).filter(|t| spec.wants_table(t)).collect();
        tables.sort();
        let runner = Arc::new(self.inner.detached_runner(db, def, spec));
        let id = self.inner.replays.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let progress = Arc::new(Mutex::new(ReplayProgress {
            id,
            db: db.to_string(),
            trigger_name: name.to_string(),
            state: "running",
            start_ns,
            end_ns,
            ..ReplayProgress::default()
        }));
        {
            let mut jobs = self.inner.replays.jobs.lock();
            jobs.push_back(progress.clone());
            while jobs.len() > KEPT_JOBS {
                match jobs.iter().position(|j| j.lock().state != "running") {
                    Some(i) => jobs.remove(i),
                    None => break,
                };
            }
        }
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name(format!("weir-replay-{id}"))
            .spawn(move || {
                let outcome = run(&inner, &runner, &tables, start_ns, end_ns, &progress);
                let mut p = progress.lock();
                match outcome {
                    Ok(()) => p.state = "done",
                    Err(e) => {
                        inner.services.logs.push(&runner.db, &runner.def.name, LogLevel::Error, format!("replay {id} failed: {e}"));
                        p.state = "failed";
                        p.error = Some(e);
                    }
                }
            })
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(id)
    }

    /// A replay job's progress.
    pub fn replay_progress(&self, id: u64) -> Option<ReplayProgress> {
        self.inner.replays.jobs.lock().iter().find(|j| j.lock().id == id).map(|j| j.lock().clone())
    }
}

/// Replays every table in turn; `Err` only when rows cannot be read or called at all.
fn run(inner: &Arc<Inner>, r: &Arc<Runner>, tables: &[String], start_ns: i64, end_ns: i64, progress: &Mutex<ReplayProgress>) -> Result<(), String> {
    let db_id = inner.catalog.snapshot().db(&r.db).map(|d| d.id).ok_or("the database was deleted")?;
    let max_rows = inner.max_batch_rows;
    for table in tables {
        progress.lock().table = Some(table.clone());
        let quoted = crate::query::quote::ident(table);
        let mut from = start_ns;
        while from < end_ns {
            if inner.closing.load(Ordering::Acquire) {
                return Err("the server is shutting down".into());
            }
            let page = format!(
                "SELECT * FROM {quoted} WHERE time >= to_timestamp_nanos({from}) AND time < to_timestamp_nanos({end_ns}) ORDER BY time LIMIT {max_rows}"
            );
            let rows = concat(inner.services.sql.query(&r.db, &page, None)?)?;
            let Some(rows) = rows else { break };
            let full = rows.num_rows() >= max_rows;
            let times = times(&rows)?;
            let last = times.value(times.len() - 1);
            // A full page may end inside a timestamp: its rows at the last time are read whole
            // by the next page (or, if the page is one timestamp, by a query of that time alone).
            let (batch, next) = if !full {
                (rows, end_ns)
            } else if times.value(0) < last {
                let keep = (0..times.len()).position(|i| times.value(i) == last).unwrap_or(times.len());
                (rows.slice(0, keep), last)
            } else {
                let one = format!("SELECT * FROM {quoted} WHERE time = to_timestamp_nanos({last})");
                (concat(inner.services.sql.query(&r.db, &one, None)?)?.unwrap_or(rows), last.saturating_add(1))
            };
            let through = times_max(&batch)?;
            call(inner, r, TableBatch { db_id, db_name: r.db.as_str().into(), table_name: table.as_str().into(), batch, commit: 0 }, progress)?;
            if let Some(t) = through {
                progress.lock().through_ns = Some(t);
            }
            from = next;
        }
    }
    Ok(())
}

/// One plugin call on an executor, waited for.
fn call(inner: &Arc<Inner>, r: &Arc<Runner>, t: TableBatch, progress: &Mutex<ReplayProgress>) -> Result<(), String> {
    let rows = t.batch.num_rows() as u64;
    let event = Event::Wal(Arc::new(Delivery { from: 0, through: 0, tables: vec![t] }));
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (i, runner) = (inner.clone(), r.clone());
    inner.send(Work::Task(Box::new(move |py, slot| {
        let _ = tx.send(i.call(py, slot, &runner, &event));
    })));
    let ok = rx.recv().map_err(|_| "the Python executors stopped".to_string())?;
    let mut p = progress.lock();
    p.calls += 1;
    p.rows += rows;
    if !ok {
        p.errors += 1;
    }
    Ok(())
}

/// The query's batches as one, `None` if there are no rows.
fn concat(batches: Vec<RecordBatch>) -> Result<Option<RecordBatch>, String> {
    let Some(first) = batches.iter().find(|b| b.num_rows() > 0) else { return Ok(None) };
    arrow::compute::concat_batches(&first.schema(), &batches).map(Some).map_err(|e| e.to_string())
}

fn times(b: &RecordBatch) -> Result<TimestampNanosecondArray, String> {
    b.column_by_name("time")
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .cloned()
        .ok_or_else(|| "the table has no time column in nanoseconds".to_string())
}

fn times_max(b: &RecordBatch) -> Result<Option<i64>, String> {
    let t = times(b)?;
    Ok((!t.is_empty()).then(|| t.value(t.len() - 1)))
}

impl Inner {
    /// A runner of trigger `def` outside the running set (for a replay): its own stop flag and
    /// stats, the trigger's cache.
    fn detached_runner(&self, db: &str, def: Arc<pipeline::catalog::Trigger>, spec: TriggerSpec) -> Runner {
        let cache = self.caches.lock().entry((db.to_string(), def.name.clone())).or_default().clone();
        Runner::new(db.to_string(), def, spec, self.call_limits, cache, None)
    }
}
