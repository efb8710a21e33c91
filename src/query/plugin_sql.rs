//! The query engine as plugins see it: [`PluginSql`] for `influxdb3_local.query`.
//!
//! It blocks the calling executor thread (its GIL already released) on the query runtime, so
//! the query itself runs where every other query runs, never on a shard.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use super::QueryEngine;
use crate::py_api::PluginSql;

/// SQL for plugins, run on `runtime`.
pub struct RuntimeSql {
    pub engine: Arc<QueryEngine>,
    pub runtime: tokio::runtime::Handle,
}

impl PluginSql for RuntimeSql {
    fn query(&self, db: &str, sql: &str, params: Option<&serde_json::Map<String, serde_json::Value>>) -> Result<Vec<RecordBatch>, String> {
        self.runtime.block_on(self.engine.sql(db, sql, params)).map(|out| out.batches).map_err(|e| e.to_string())
    }
}
