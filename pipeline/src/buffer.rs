//! The write buffer: every flushed row, as Arrow batches per table, readable at once.
//!
//! Shards append a flush's batches before they ack its writes, so a query that starts after an
//! ack sees the write (read-your-writes). Readers take a snapshot: a clone of the batch list
//! (`Arc`ed columns, no row copies). Small batches are merged in groups so the list stays short
//! however small the flush interval is.
//!
//! It never checks schemas (the catalog did) and never persists anything (the WAL did).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use parking_lot::RwLock;

use crate::batch::align;

/// How many consecutive small batches are merged into one.
pub const MERGE_FANIN: usize = 64;
/// Batches with at least this many rows are left alone.
pub const MERGE_MAX_ROWS: usize = 64 * 1024;

#[derive(Default)]
pub struct TableBuffer {
    batches: RwLock<Vec<RecordBatch>>,
}

impl TableBuffer {
    pub fn snapshot(&self) -> Vec<RecordBatch> {
        self.batches.read().clone()
    }

    pub fn rows(&self) -> usize {
        self.batches.read().iter().map(|b| b.num_rows()).sum()
    }

    fn append(&self, batch: RecordBatch) {
        let mut batches = self.batches.write();
        batches.push(batch);
        let n = batches.len();
        if n >= MERGE_FANIN {
            let tail = &batches[n - MERGE_FANIN..];
            if tail.iter().all(|b| b.num_rows() < MERGE_MAX_ROWS) {
                match merge(tail) {
                    Ok(merged) => {
                        batches.truncate(n - MERGE_FANIN);
                        batches.push(merged);
                    }
                    Err(e) => tracing::warn!(error = %e, "could not merge buffered batches; keeping them apart"),
                }
            }
        }
    }
}

/// Concatenates batches whose schemas may differ (each a subset of the table's columns).
pub fn merge(batches: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
    let mut fields: Vec<arrow::datatypes::FieldRef> = Vec::new();
    for b in batches {
        for f in b.schema().fields() {
            if !fields.iter().any(|g| g.name() == f.name()) {
                fields.push(f.clone());
            }
        }
    }
    fields.sort_by(|a, b| a.name().cmp(b.name()));
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let aligned = batches.iter().map(|b| align(b, &schema)).collect::<Result<Vec<_>, _>>()?;
    arrow::compute::concat_batches(&schema, &aligned)
}

/// All tables' buffers, keyed by (database id, table id).
#[derive(Default)]
pub struct WriteBuffer {
    tables: RwLock<HashMap<(u32, u32), Arc<TableBuffer>>>,
    /// Commits numbered so far, across all shards.
    commits: std::sync::atomic::AtomicU64,
}

impl WriteBuffer {
    pub fn new() -> WriteBuffer {
        WriteBuffer::default()
    }

    /// The next number in the order of commits of all shards. A shard takes one per commit,
    /// once its WAL record is durable and before it acks the commit's writes.
    pub fn next_commit(&self) -> u64 {
        self.commits.fetch_add(1, std::sync::atomic::Ordering::AcqRel)
    }

    /// The number the next commit will take: every write acked so far has a lower one.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn append(&self, db_id: u32, table_id: u32, batch: RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        let existing = self.tables.read().get(&(db_id, table_id)).cloned();
        let table = match existing {
            Some(t) => t,
            None => self.tables.write().entry((db_id, table_id)).or_default().clone(),
        };
        table.append(batch);
    }

    pub fn table(&self, db_id: u32, table_id: u32) -> Option<Arc<TableBuffer>> {
        self.tables.read().get(&(db_id, table_id)).cloned()
    }

    pub fn snapshot(&self, db_id: u32, table_id: u32) -> Vec<RecordBatch> {
        self.table(db_id, table_id).map(|t| t.snapshot()).unwrap_or_default()
    }

    pub fn drop_database(&self, db_id: u32) {
        self.tables.write().retain(|(d, _), _| *d != db_id);
    }

    pub fn drop_table(&self, db_id: u32, table_id: u32) {
        self.tables.write().remove(&(db_id, table_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::{DataType, Field};

    fn batch(col: &str, v: f64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(col, DataType::Float64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(vec![v]))]).unwrap()
    }

    #[test]
    fn small_batches_are_merged_and_keep_every_row() {
        let buf = WriteBuffer::new();
        for i in 0..(MERGE_FANIN * 2 + 3) {
            buf.append(0, 0, batch(if i % 2 == 0 { "a" } else { "b" }, i as f64));
        }
        let snap = buf.snapshot(0, 0);
        assert_eq!(snap.len(), 2 + 3);
        assert_eq!(snap.iter().map(|b| b.num_rows()).sum::<usize>(), MERGE_FANIN * 2 + 3);
        assert_eq!(snap[0].num_columns(), 2);
    }

    #[test]
    fn merge_fills_missing_columns_with_nulls() {
        let schema = Arc::new(Schema::new(vec![Field::new("i", DataType::Int64, true)]));
        let b2 = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![5]))]).unwrap();
        let m = merge(&[batch("a", 1.0), b2]).unwrap();
        assert_eq!(m.num_rows(), 2);
        assert_eq!(m.column_by_name("a").unwrap().null_count(), 1);
        assert_eq!(m.column_by_name("i").unwrap().null_count(), 1);
    }

    #[test]
    fn drop_database_forgets_its_tables() {
        let buf = WriteBuffer::new();
        buf.append(1, 0, batch("a", 1.0));
        buf.append(2, 0, batch("a", 1.0));
        buf.drop_database(1);
        assert!(buf.snapshot(1, 0).is_empty());
        assert_eq!(buf.snapshot(2, 0).len(), 1);
    }
}
