//! SQL over the write buffer and the catalog, on DataFusion.
//!
//! Owns turning `(database, SQL, params)` into Arrow batches: one DataFusion session per query,
//! with the database's tables as the default schema (`public.iox`, as in InfluxDB 3), the
//! `system` tables, and `information_schema`. Runs only on the query runtime (tokio), never on
//! a shard thread. It never writes: DDL, DML, `COPY` and `SET` are refused before planning
//! goes further, and no table reads the server's files (DataFusion's URL tables stay off).

pub mod format;
pub mod plugin_sql;
pub mod quote;
pub mod recent;
mod schema;
mod table;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use pipeline::buffer::WriteBuffer;
use pipeline::catalog::Catalog;

use crate::plugin_logs::PluginLogs;
use crate::storage::Storage;
use crate::trigger_status::TriggerStatusSource;

pub use schema::batches_for;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("database '{0}' not found")]
    DatabaseNotFound(String),
    /// The statement would change something: queries are read-only.
    #[error("queries are read-only, so this statement is refused ({0})")]
    ReadOnly(String),
    /// The query is wrong: bad SQL, unknown table or column, a bad parameter.
    #[error("{0}")]
    Invalid(String),
    #[error("query needs more memory than allowed (--query-memory-bytes): {0}")]
    ResourcesExhausted(String),
    #[error("query ran longer than the limit of {0:?} (--query-timeout) and was stopped")]
    Timeout(std::time::Duration),
    #[error("query failed: {0}")]
    Internal(String),
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(m) => QueryError::ResourcesExhausted(m.clone()),
            DataFusionError::Internal(m) => QueryError::Internal(m.clone()),
            DataFusionError::IoError(err) => QueryError::Internal(err.to_string()),
            _ => QueryError::Invalid(e.strip_backtrace()),
        }
    }
}

/// A query's answer: its schema (kept even when there are no rows) and batches.
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// What one query may use.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Memory all running queries share; a query that needs more fails (it does not spill).
    pub memory_bytes: usize,
    /// Longest a query may run, planning included.
    pub timeout: std::time::Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits { memory_bytes: 1 << 30, timeout: std::time::Duration::from_secs(300) }
    }
}

pub struct QueryEngine {
    catalog: Arc<Catalog>,
    buffer: Arc<WriteBuffer>,
    storage: Arc<Storage>,
    logs: Arc<PluginLogs>,
    target_partitions: usize,
    limits: QueryLimits,
    /// Shared by every query: its memory pool is the bound on all of them together.
    runtime: Arc<RuntimeEnv>,
    /// The engine's live trigger state, set once the engine has started.
    triggers: std::sync::OnceLock<Arc<dyn TriggerStatusSource>>,
    /// Queries asked lately (by clients; plugins' own queries are not listed), for
    /// `system.queries`.
    pub recent: Arc<recent::RecentQueries>,
}

impl QueryEngine {
    pub fn new(
        catalog: Arc<Catalog>,
        buffer: Arc<WriteBuffer>,
        storage: Arc<Storage>,
        logs: Arc<PluginLogs>,
        target_partitions: usize,
        limits: QueryLimits,
    ) -> Result<QueryEngine, QueryError> {
        // No spilling: a query past the pool fails at once rather than filling a disk.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(limits.memory_bytes)))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
            .build_arc()?;
        // Every query reads Parquet through this one store, registered once in the shared runtime.
        let url = url::Url::parse(table::STORE_URL).map_err(|e| QueryError::Internal(e.to_string()))?;
        runtime.register_object_store(&url, storage.store.object_store());
        Ok(QueryEngine {
            catalog,
            buffer,
            storage,
            logs,
            target_partitions: target_partitions.max(1),
            limits,
            runtime,
            triggers: Default::default(),
            recent: Default::default(),
        })
    }

    /// Where `system.processing_engine_triggers` reads each running trigger's state (the engine
    /// starts after the query engine, which plugins query through). Set once; later calls are
    /// ignored.
    pub fn set_trigger_status(&self, source: Arc<dyn TriggerStatusSource>) {
        let _ = self.triggers.set(source);
    }

    /// The write buffer it reads.
    pub fn buffer(&self) -> &WriteBuffer {
        &self.buffer
    }

    fn context(&self, db: &str) -> Result<SessionContext, QueryError> {
        let snapshot = self.catalog.snapshot();
        let dbm = match snapshot.db(db) {
            Some(d) => d.clone(),
            // No tables of its own: only the system tables, over every database.
            None if db == schema::INTERNAL_DB => Arc::new(pipeline::catalog::Database {
                id: u32::MAX,
                name: db.to_string(),
                tables: Default::default(),
                next_table_id: 0,
                triggers: Default::default(),
                retention_ns: None,
            }),
            None => return Err(QueryError::DatabaseNotFound(db.to_string())),
        };
        let cfg = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("public", "iox")
            .with_target_partitions(self.target_partitions);
        let ctx = SessionContext::new_with_config_rt(cfg, self.runtime.clone());
        let catalog = ctx
            .catalog("public")
            .ok_or_else(|| QueryError::Internal("the default catalog is missing".into()))?;
        let system = schema::SystemSchema::new(
            snapshot.clone(),
            dbm.name.clone(),
            self.logs.clone(),
            self.storage.clone(),
            self.triggers.get().cloned(),
            self.recent.clone(),
        );
        let tables = schema::DbSchema::new(dbm, self.buffer.clone(), self.storage.clone(), self.target_partitions);
        catalog.register_schema("iox", Arc::new(tables))?;
        catalog.register_schema("system", Arc::new(system))?;
        Ok(ctx)
    }

    /// Runs `sql` against database `db` with `$name` parameters, within the query limits.
    /// Dropping the future stops the query.
    pub async fn sql(
        &self,
        db: &str,
        sql: &str,
        params: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<QueryOutput, QueryError> {
        tokio::time::timeout(self.limits.timeout, self.run(db, sql, params))
            .await
            .unwrap_or(Err(QueryError::Timeout(self.limits.timeout)))
    }

    /// As [`Self::sql`], answering as the batches are computed instead of all at once (Arrow
    /// Flight streams them): planning is bounded by the query time limit, and so is the stream,
    /// which ends with [`QueryError::Timeout`] at the limit.
    pub async fn sql_stream(
        &self,
        db: &str,
        sql: &str,
        params: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<(SchemaRef, futures::stream::BoxStream<'static, Result<RecordBatch, QueryError>>), QueryError> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + self.limits.timeout;
        let limit = self.limits.timeout;
        let df = tokio::time::timeout_at(deadline, self.plan(db, sql, params)).await.unwrap_or(Err(QueryError::Timeout(limit)))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let stream = match tokio::time::timeout_at(deadline, df.execute_stream()).await {
            Ok(r) => r?,
            Err(_) => return Err(QueryError::Timeout(limit)),
        };
        let expired = Box::pin(tokio::time::sleep_until(deadline));
        let batches = futures::stream::unfold((stream, expired, false), move |(mut stream, mut expired, done)| async move {
            if done {
                return None;
            }
            tokio::select! {
                item = stream.next() => item.map(|r| (r.map_err(QueryError::from), (stream, expired, false))),
                _ = &mut expired => Some((Err(QueryError::Timeout(limit)), (stream, expired, true))),
            }
        });
        Ok((schema, batches.boxed()))
    }

    /// The schema `sql`'s answer would have, from planning alone (Flight SQL's `GetFlightInfo`).
    pub async fn schema_of(&self, db: &str, sql: &str) -> Result<SchemaRef, QueryError> {
        let limit = self.limits.timeout;
        let df = tokio::time::timeout(limit, self.plan(db, sql, None)).await.unwrap_or(Err(QueryError::Timeout(limit)))?;
        Ok(Arc::new(df.schema().as_arrow().clone()))
    }

    /// Plans `sql` on `db`, refusing anything that is not a read, with `params` bound.
    async fn plan(
        &self,
        db: &str,
        sql: &str,
        params: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<datafusion::dataframe::DataFrame, QueryError> {
        let ctx = self.context(db)?;
        let plan = ctx.state().create_logical_plan(sql).await?;
        let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        read_only.verify_plan(&plan).map_err(|e| match e.find_root() {
            DataFusionError::Plan(m) => QueryError::ReadOnly(m.clone()),
            _ => QueryError::ReadOnly(e.strip_backtrace()),
        })?;
        let mut df = ctx.execute_logical_plan(plan).await?;
        if let Some(params) = params {
            let mut values = HashMap::new();
            for (k, v) in params {
                values.insert(k.trim_start_matches('$').to_string(), json_to_scalar(k, v)?);
            }
            df = df.with_param_values(values)?;
        }
        Ok(df)
    }

    async fn run(
        &self,
        db: &str,
        sql: &str,
        params: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<QueryOutput, QueryError> {
        let df = self.plan(db, sql, params).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        Ok(QueryOutput { schema, batches })
    }
}

fn json_to_scalar(name: &str, v: &serde_json::Value) -> Result<ScalarValue, QueryError> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                ScalarValue::Int64(Some(i))
            } else if let Some(u) = n.as_u64() {
                ScalarValue::UInt64(Some(u))
            } else {
                ScalarValue::Float64(n.as_f64())
            }
        }
        Value::Array(_) | Value::Object(_) => {
            return Err(QueryError::Invalid(format!(
                "parameter '{name}' must be a string, number, boolean or null"
            )))
        }
    })
}
