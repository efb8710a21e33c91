//! The write buffer: every flushed row, as Arrow batches per table, readable at once.
//!
//! Shards append a flush's batches before they ack its writes, so a query that starts after an
//! ack sees the write (read-your-writes). Readers take a snapshot: a clone of the batch list
//! (`Arc`ed columns, no row copies). Small batches are merged in groups so the list stays short
//! however small the flush interval is.
//!
//! Merging is done by one background thread (`weir-compact`), never by the shard that appends:
//! a merge copies up to [`MERGE_FANIN`] batches into fresh memory, tens of milliseconds under
//! heavy ingest, and done in line it stalled that shard (and the other, waiting on the table's
//! lock), which showed in the write p99. A merged batch replaces its parts in one step under
//! the lock, so a snapshot sees either the parts or the whole, the same rows in the same order.
//!
//! It never checks schemas (the catalog did) and never persists anything (the WAL did).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use crossbeam_channel::Sender;
use parking_lot::RwLock;

use crate::batch::align;

/// How many consecutive small batches are merged into one.
pub const MERGE_FANIN: usize = 64;
/// Batches with at least this many rows are left alone.
pub const MERGE_MAX_ROWS: usize = 64 * 1024;

#[derive(Default)]
pub struct TableBuffer {
    batches: RwLock<Vec<RecordBatch>>,
    /// A merge of this table is queued or running; at most one is.
    merging: AtomicBool,
}

impl TableBuffer {
    pub fn snapshot(&self) -> Vec<RecordBatch> {
        self.batches.read().clone()
    }

    pub fn rows(&self) -> usize {
        self.batches.read().iter().map(|b| b.num_rows()).sum()
    }

    /// Appends a batch; returns whether a merge is due and this call claimed it (the caller
    /// then has it run, see [`TableBuffer::compact`]).
    fn append(&self, batch: RecordBatch) -> bool {
        let mut batches = self.batches.write();
        batches.push(batch);
        mergeable(&batches).is_some() && !self.merging.swap(true, Ordering::AcqRel)
    }

    /// Merges groups of small batches until none is due. Run by whoever claimed the merge.
    fn compact(&self) {
        loop {
            loop {
                // One read lock for both: a `while let` would hold its guard through the body.
                let due = {
                    let batches = self.batches.read();
                    mergeable(&batches).map(|start| (start, batches[start..start + MERGE_FANIN].to_vec()))
                };
                let Some((start, parts)) = due else { break };
                let merged = match merge(&parts) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not merge buffered batches; keeping them apart");
                        self.merging.store(false, Ordering::Release);
                        return;
                    }
                };
                let mut batches = self.batches.write();
                // Only this merge moves batches, so its parts are where they were; checked anyway.
                let unmoved = batches
                    .get(start..start + MERGE_FANIN)
                    .is_some_and(|now| now.iter().zip(&parts).all(|(a, b)| same_batch(a, b)));
                if !unmoved {
                    break;
                }
                batches.splice(start..start + MERGE_FANIN, [merged]);
            }
            self.merging.store(false, Ordering::Release);
            // An append that came after the last check but before the flag was cleared could
            // not claim the merge: look once more.
            if mergeable(&self.batches.read()).is_none() || self.merging.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

/// Where the oldest group of [`MERGE_FANIN`] small batches at the end of `batches` starts, if
/// there is one.
fn mergeable(batches: &[RecordBatch]) -> Option<usize> {
    let small = batches.iter().rev().take_while(|b| b.num_rows() < MERGE_MAX_ROWS).count();
    (small >= MERGE_FANIN).then(|| batches.len() - small)
}

fn same_batch(a: &RecordBatch, b: &RecordBatch) -> bool {
    a.num_rows() == b.num_rows()
        && a.num_columns() == b.num_columns()
        && a.columns().iter().zip(b.columns()).all(|(x, y)| Arc::ptr_eq(x, y))
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
    /// The merge thread's queue, made with the first merge (`None`: no thread could start).
    compactor: OnceLock<Option<Sender<Weak<TableBuffer>>>>,
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
        if table.append(batch) {
            self.merge_later(&table);
        }
    }

    /// Queues a merge of `table` for the merge thread, or runs it here if there is no thread.
    fn merge_later(&self, table: &Arc<TableBuffer>) {
        let queue = self.compactor.get_or_init(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<Weak<TableBuffer>>();
            let spawned = std::thread::Builder::new().name("weir-compact".into()).spawn(move || {
                // Ends when the buffer, and with it the sender, is dropped.
                for table in rx {
                    if let Some(t) = table.upgrade() {
                        t.compact();
                    }
                }
            });
            match spawned {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "could not start the merge thread; merging on the writing thread");
                    None
                }
            }
        });
        match queue {
            Some(tx) if tx.send(Arc::downgrade(table)).is_ok() => {}
            _ => table.compact(),
        }
    }

    /// Waits until no merge is queued or running (for tests and benchmarks).
    pub fn settle(&self) {
        let tables: Vec<Arc<TableBuffer>> = self.tables.read().values().cloned().collect();
        for t in tables {
            while t.merging.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
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
        buf.settle();
        let snap = buf.snapshot(0, 0);
        assert_eq!(snap.len(), 2 + 3);
        assert_eq!(snap.iter().map(|b| b.num_rows()).sum::<usize>(), MERGE_FANIN * 2 + 3);
        assert_eq!(snap[0].num_columns(), 2);
    }

    fn values(snap: &[RecordBatch]) -> Vec<f64> {
        snap.iter()
            .flat_map(|b| {
                let c = b.column_by_name("a").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().clone();
                c.iter().map(|v| v.unwrap()).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn merges_in_the_background_keep_every_row_in_order() {
        // Snapshots taken while the merge thread works see every row appended before them,
        // once each, in order: the parts or the merged whole, never both or neither.
        let buf = Arc::new(WriteBuffer::new());
        let n = MERGE_FANIN * 20 + 7;
        let reader = {
            let buf = buf.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < n {
                    let v = values(&buf.snapshot(0, 0));
                    assert!(v.len() >= seen, "rows went missing: {} after {seen}", v.len());
                    assert!(v.iter().enumerate().all(|(i, x)| *x == i as f64), "rows out of order or twice");
                    seen = v.len();
                }
            })
        };
        for i in 0..n {
            buf.append(0, 0, batch("a", i as f64));
        }
        reader.join().unwrap();
        buf.settle();
        let snap = buf.snapshot(0, 0);
        assert_eq!(values(&snap), (0..n).map(|i| i as f64).collect::<Vec<_>>());
        assert!(snap.len() < MERGE_FANIN + 7 + 1, "{} batches left unmerged", snap.len());
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
