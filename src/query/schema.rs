//! DataFusion schema providers: a database's tables, and the `system` tables.
//!
//! A table is served from a snapshot of its buffered batches taken when the query plans it, as
//! the batches were built; the scan fits them to the columns the query reads (columns a batch
//! lacks read as null), so a sparse table costs memory for those columns only.
//! System tables describe the query's database: its triggers, their arguments, and the
//! processing-engine log entries of its triggers.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use pipeline::batch::table_schema;
use pipeline::buffer::WriteBuffer;
use pipeline::catalog::{CatalogSnapshot, Database, Table};

use super::table::TableView;
use crate::plugin_logs::PluginLogs;
use crate::storage::Storage;
use crate::trigger_status::{PluginFileRow, TriggerStatus, TriggerStatusSource};

/// The table's schema, and its buffered batches (as built, not yet fitted to the schema)
/// spread over `partitions`.
pub fn batches_for(
    buffer: &WriteBuffer,
    db: &Database,
    table: &Table,
    partitions: usize,
) -> Result<(SchemaRef, Vec<Vec<RecordBatch>>), DataFusionError> {
    let schema = table_schema(table);
    let snapshot = buffer.snapshot(db.id, table.id);
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions.clamp(1, snapshot.len().max(1))];
    let n = parts.len();
    for (i, b) in snapshot.iter().enumerate() {
        parts[i % n].push(b.clone());
    }
    Ok((schema, parts))
}

pub struct DbSchema {
    db: Arc<Database>,
    buffer: Arc<WriteBuffer>,
    storage: Arc<Storage>,
    partitions: usize,
}

impl DbSchema {
    pub fn new(db: Arc<Database>, buffer: Arc<WriteBuffer>, storage: Arc<Storage>, partitions: usize) -> DbSchema {
        DbSchema { db, buffer, storage, partitions }
    }
}

impl std::fmt::Debug for DbSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSchema").field("db", &self.db.name).finish()
    }
}

#[async_trait]
impl SchemaProvider for DbSchema {
    fn table_names(&self) -> Vec<String> {
        self.db.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let Some(table) = self.db.table(name) else {
            return Ok(None);
        };
        // Files and buffer from one view: a persist publishing meanwhile waits for it.
        let (files, buffered) = self.storage.view(|index| {
            let files: Vec<_> = index.table_files(self.db.id, table.id).cloned().collect();
            (files, batches_for(&self.buffer, &self.db, table, self.partitions))
        });
        // Read after the snapshot, so they cover every batch in it.
        let overlaps = self.buffer.overlaps(self.db.id, table.id);
        let (schema, buffered) = buffered?;
        let cutoff = self.db.retention_cutoff(crate::time::now_ns());
        Ok(Some(Arc::new(TableView { schema, buffered, files, overlaps, cutoff, partitions: self.partitions })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.db.tables.contains_key(name)
    }
}

/// Published plugins' READMEs query `_internal`'s engine log.
pub use pipeline::catalog::INTERNAL_DB;

/// The `system` tables, built from one catalog snapshot and the engine log: of the query's
/// database, or of every database for [`INTERNAL_DB`].
pub struct SystemSchema {
    catalog: Arc<CatalogSnapshot>,
    db: String,
    logs: Arc<PluginLogs>,
    storage: Arc<Storage>,
    triggers: Option<Arc<dyn TriggerStatusSource>>,
    recent: Arc<super::recent::RecentQueries>,
}

impl std::fmt::Debug for SystemSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemSchema").field("db", &self.db).finish()
    }
}

impl SystemSchema {
    pub fn new(
        catalog: Arc<CatalogSnapshot>,
        db: String,
        logs: Arc<PluginLogs>,
        storage: Arc<Storage>,
        triggers: Option<Arc<dyn TriggerStatusSource>>,
        recent: Arc<super::recent::RecentQueries>,
    ) -> SystemSchema {
        SystemSchema { catalog, db, logs, storage, triggers, recent }
    }

    /// Queries clients asked lately, of this database (of every one under `_internal`).
    fn queries(&self) -> Result<RecordBatch, DataFusionError> {
        let rows = self.recent.list((self.db != INTERNAL_DB).then_some(self.db.as_str()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("issue_time", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("query_type", DataType::Utf8, false),
            Field::new("protocol", DataType::Utf8, false),
            Field::new("database", DataType::Utf8, false),
            Field::new("query_text", DataType::Utf8, false),
            Field::new("end2end_duration_seconds", DataType::Float64, false),
            Field::new("running", DataType::Boolean, false),
            Field::new("success", DataType::Boolean, false),
            Field::new("error", DataType::Utf8, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.id))),
            Arc::new(TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.issue_time_ns))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.query_type))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.via))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.database.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.query_text.as_str()))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.duration_s))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.running)))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.success)))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.error.as_deref()))),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    /// The databases these tables describe.
    fn scope(&self) -> Vec<&Database> {
        if self.db == INTERNAL_DB {
            return self.catalog.databases.values().map(|d| d.as_ref()).collect();
        }
        self.catalog.db(&self.db).map(|d| d.as_ref()).into_iter().collect()
    }

    /// The query database's Parquet files, as InfluxDB 3's `system.parquet_files` lists them.
    fn parquet_files(&self) -> Result<RecordBatch, DataFusionError> {
        let index = self.storage.index();
        let db = self.catalog.db(&self.db);
        let rows: Vec<(&str, &crate::storage::index::ParquetFile)> = db
            .map(|d| {
                index
                    .files
                    .iter()
                    .filter(|f| f.db_id == d.id)
                    .filter_map(|f| Some((d.table_by_id(f.table_id)?.name.as_str(), f)))
                    .collect()
            })
            .unwrap_or_default();
        let schema = Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("path", DataType::Utf8, false),
            Field::new("size_bytes", DataType::UInt64, false),
            Field::new("row_count", DataType::UInt64, false),
            Field::new("min_time", DataType::Int64, false),
            Field::new("max_time", DataType::Int64, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.path.as_str()))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.1.size_bytes))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.1.row_count))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1.min_time))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1.max_time))),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    /// InfluxDB 3's columns, then Weir's live state of each trigger: `state` (`running`,
    /// `lagging` for a WAL trigger past `--trigger-max-lag`, `disabled`, or `not_started` when
    /// its spec or plugin failed at start), events waiting and how long the oldest has waited,
    /// a WAL trigger's cursor (last commit completed) and how many commits it is behind, calls,
    /// errors, the last call's time and call-duration quantiles. A trigger the engine does not
    /// run has NULLs there.
    fn triggers(&self) -> Result<RecordBatch, DataFusionError> {
        let dbs = self.scope();
        let triggers: Vec<(&str, _)> =
            dbs.iter().flat_map(|d| d.triggers.values().map(move |t| (d.name.as_str(), t.clone()))).collect();
        let live: HashMap<(String, String), TriggerStatus> = match &self.triggers {
            Some(s) => dbs
                .iter()
                .flat_map(|d| s.trigger_status(&d.name).into_iter().map(move |t| ((d.name.clone(), t.trigger_name.clone()), t)))
                .collect(),
            None => HashMap::new(),
        };
        let status: Vec<Option<&TriggerStatus>> =
            triggers.iter().map(|(db, t)| live.get(&(db.to_string(), t.name.clone()))).collect();
        let triggers: Vec<_> = triggers.into_iter().map(|(_, t)| t).collect();
        let state = triggers.iter().zip(&status).map(|(t, s)| match (t.disabled, s) {
            (true, _) => "disabled",
            (false, Some(s)) if s.lagging => "lagging",
            (false, Some(_)) => "running",
            (false, None) => "not_started",
        });
        let schema = Arc::new(Schema::new(vec![
            Field::new("trigger_name", DataType::Utf8, false),
            Field::new("plugin_filename", DataType::Utf8, false),
            Field::new("trigger_specification", DataType::Utf8, false),
            Field::new("disabled", DataType::Boolean, false),
            Field::new("error_behavior", DataType::Utf8, false),
            Field::new("run_async", DataType::Boolean, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("queued_events", DataType::UInt64, true),
            Field::new("lag_seconds", DataType::Float64, true),
            Field::new("cursor", DataType::UInt64, true),
            Field::new("lag_commits", DataType::UInt64, true),
            Field::new("calls", DataType::UInt64, true),
            Field::new("errors", DataType::UInt64, true),
            Field::new("last_call_time", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("call_duration_p50_seconds", DataType::Float64, true),
            Field::new("call_duration_p99_seconds", DataType::Float64, true),
        ]));
        let u64s = |f: fn(&TriggerStatus) -> u64| Arc::new(UInt64Array::from_iter(status.iter().map(|s| s.map(f)))) as ArrayRef;
        let f64s = |f: fn(&TriggerStatus) -> Option<f64>| Arc::new(Float64Array::from_iter(status.iter().map(|s| s.and_then(f)))) as ArrayRef;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(triggers.iter().map(|t| t.name.as_str()))),
            Arc::new(StringArray::from_iter_values(triggers.iter().map(|t| t.plugin_filename.as_str()))),
            Arc::new(StringArray::from_iter_values(triggers.iter().map(|t| t.specification.as_str()))),
            Arc::new(BooleanArray::from_iter(triggers.iter().map(|t| Some(t.disabled)))),
            Arc::new(StringArray::from_iter_values(triggers.iter().map(|t| t.error_behavior.name()))),
            Arc::new(BooleanArray::from_iter(triggers.iter().map(|t| Some(t.run_async)))),
            Arc::new(StringArray::from_iter_values(state)),
            u64s(|s| s.queued_events),
            f64s(|s| Some(s.lag_seconds)),
            Arc::new(UInt64Array::from_iter(status.iter().map(|s| s.and_then(|s| s.cursor)))),
            Arc::new(UInt64Array::from_iter(status.iter().map(|s| s.and_then(|s| s.lag_commits)))),
            u64s(|s| s.calls),
            u64s(|s| s.errors),
            Arc::new(TimestampNanosecondArray::from_iter(status.iter().map(|s| s.and_then(|s| s.last_call_time_ns)))),
            f64s(|s| s.call_duration_p50_s),
            f64s(|s| s.call_duration_p99_s),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    /// The files of the triggers' plugins, as InfluxDB 3's `system.plugin_files` lists them.
    fn plugin_files(&self) -> Result<RecordBatch, DataFusionError> {
        let rows: Vec<PluginFileRow> = match &self.triggers {
            Some(s) => self.scope().iter().flat_map(|d| s.plugin_files(&d.name)).collect(),
            None => Vec::new(),
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("plugin_name", DataType::Utf8, false),
            Field::new("file_name", DataType::Utf8, false),
            Field::new("file_path", DataType::Utf8, false),
            Field::new("size_bytes", DataType::Int64, false),
            Field::new("last_modified", DataType::Int64, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.trigger_name.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.file_name.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.file_path.as_str()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.size_bytes as i64))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.last_modified_ms))),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    fn trigger_arguments(&self) -> Result<RecordBatch, DataFusionError> {
        let (mut names, mut keys, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for d in self.scope() {
            for t in d.triggers.values() {
                for (k, v) in t.arguments.iter().flatten() {
                    names.push(t.name.clone());
                    keys.push(k.clone());
                    values.push(v.clone());
                }
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("trigger_name", DataType::Utf8, false),
            Field::new("argument_key", DataType::Utf8, false),
            Field::new("argument_value", DataType::Utf8, false),
        ]));
        let cols: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(names)), Arc::new(StringArray::from(keys)), Arc::new(StringArray::from(values))];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    fn engine_logs(&self) -> Result<RecordBatch, DataFusionError> {
        let entries = if self.db == INTERNAL_DB { self.logs.all() } else { self.logs.for_database(&self.db) };
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_time", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("trigger_name", DataType::Utf8, false),
            Field::new("log_level", DataType::Utf8, false),
            Field::new("log_text", DataType::Utf8, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from_iter_values(entries.iter().map(|e| e.event_time_ns))),
            Arc::new(StringArray::from_iter_values(entries.iter().map(|e| e.trigger_name.as_str()))),
            Arc::new(StringArray::from_iter_values(entries.iter().map(|e| e.level.name()))),
            Arc::new(StringArray::from_iter_values(entries.iter().map(|e| e.text.as_str()))),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    fn databases(&self) -> Result<RecordBatch, DataFusionError> {
        let names: Vec<&str> = self.catalog.databases.keys().map(|s| s.as_str()).collect();
        let tables: Vec<u64> = self.catalog.databases.values().map(|d| d.tables.len() as u64).collect();
        let retention: Vec<String> =
            self.catalog.databases.values().map(|d| pipeline::retention::format(d.retention_ns)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("database_name", DataType::Utf8, false),
            Field::new("table_count", DataType::UInt64, false),
            Field::new("retention_period", DataType::Utf8, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(names)),
            Arc::new(UInt64Array::from(tables)),
            Arc::new(StringArray::from(retention)),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    fn tables(&self) -> Result<RecordBatch, DataFusionError> {
        let mut dbs = Vec::new();
        let mut tables = Vec::new();
        let mut columns = Vec::new();
        for d in self.catalog.databases.values() {
            for t in d.tables.values() {
                dbs.push(d.name.clone());
                tables.push(t.name.clone());
                columns.push(t.columns.len() as u64);
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("database_name", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("column_count", DataType::UInt64, false),
        ]));
        let cols: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(dbs)), Arc::new(StringArray::from(tables)), Arc::new(UInt64Array::from(columns))];
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}

const SYSTEM_TABLES: &[&str] = &[
    "databases",
    "tables",
    "processing_engine_triggers",
    "processing_engine_trigger_arguments",
    "processing_engine_logs",
    "parquet_files",
    "plugin_files",
    "queries",
];

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SYSTEM_TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let batch = match name {
            "databases" => self.databases()?,
            "tables" => self.tables()?,
            "processing_engine_triggers" => self.triggers()?,
            "processing_engine_trigger_arguments" => self.trigger_arguments()?,
            "processing_engine_logs" => self.engine_logs()?,
            "parquet_files" => self.parquet_files()?,
            "plugin_files" => self.plugin_files()?,
            "queries" => self.queries()?,
            _ => return Ok(None),
        };
        Ok(Some(Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        SYSTEM_TABLES.contains(&name)
    }
}
