//! What plugin calls reach outside Python, as small traits the server implements: where
//! writes go ([`PluginWriter`]: the shards), how SQL runs ([`PluginSql`]: the query engine), and
//! the log ring and the global cache that every call shares.
//!
//! It names no server part: the engine and the tests plug in what they have.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use pipeline::write::LineReject;

use super::cache::CacheSpace;
use crate::plugin_logs::PluginLogs;

/// What a plugin write did.
#[derive(Debug, Clone, Default)]
pub struct WriteOutcome {
    pub lines_written: usize,
    pub rejects: Vec<LineReject>,
}

pub type WriteDone = Box<dyn FnOnce(Result<WriteOutcome, String>) + Send>;

/// Where plugin writes go: the shards, or (in tests and dry runs) somewhere else.
pub trait PluginWriter: Send + Sync {
    /// Submits `body` (line protocol, nanosecond timestamps) for database `db`. `done` runs once
    /// the write is durable or refused. May block while the queue is full.
    fn submit(&self, db: String, body: Vec<u8>, no_sync: bool, done: WriteDone);
}

/// How `influxdb3_local.query` runs SQL. Called on an executor thread with the GIL released;
/// it may block until the answer is complete.
pub trait PluginSql: Send + Sync {
    /// Runs `sql` in database `db`, `$name` placeholders filled from `params`.
    fn query(&self, db: &str, sql: &str, params: Option<&serde_json::Map<String, serde_json::Value>>) -> Result<Vec<RecordBatch>, String>;
}

/// What plugin calls share: the write path, SQL, the log, the global cache.
pub struct Services {
    pub writer: Arc<dyn PluginWriter>,
    pub sql: Arc<dyn PluginSql>,
    pub logs: Arc<PluginLogs>,
    pub global_cache: Arc<CacheSpace>,
    /// Writes plugins made on return (`write`, `write_to_db`) that are not yet durable or
    /// refused: shutdown waits for them.
    pub writes_in_flight: AtomicUsize,
}
