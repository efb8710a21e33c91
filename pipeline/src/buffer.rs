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
//! Commit numbers are drawn here ([`WriteBuffer::begin_commit`]) before a shard seals its WAL
//! record, so the record, its batches and persistence all name the same number. Persistence
//! works in generations: [`WriteBuffer::freeze`] sets a boundary `B` (the next number to be
//! drawn) and moves every buffered batch into the *frozen* generation; batches of commits below
//! `B` still in flight land there too, later ones in the *open* generation. Once no commit
//! below `B` is in flight, the frozen generation is exactly the commits below `B`: the
//! persister writes it to Parquet and then releases it. Queries read both generations.
//!
//! It also keeps the bytes it holds, so writes can be refused at the cap instead of the
//! process being killed.
//!
//! It never checks schemas (the catalog did) and never persists anything (the WAL did).

// Shard code: no call here may block the thread (clippy.toml lists the calls).
#![deny(clippy::disallowed_methods)]

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

use crate::batch::align;
use crate::overlaps::{Overlaps, Ranges};

/// How many consecutive small batches are merged into one.
pub const MERGE_FANIN: usize = 64;
/// Batches with at least this many rows are left alone.
pub const MERGE_MAX_ROWS: usize = 64 * 1024;

/// A table's batches: the frozen generation (being persisted) and the open one.
#[derive(Default)]
struct Generations {
    frozen: Vec<RecordBatch>,
    open: Vec<RecordBatch>,
}

#[derive(Default)]
pub struct TableBuffer {
    batches: RwLock<Generations>,
    /// A merge of this table is queued or running; at most one is.
    merging: AtomicBool,
    /// Where the table may hold a point twice (what queries must merge).
    overlaps: Mutex<Overlaps>,
}

impl TableBuffer {
    /// Every buffered batch, frozen ones first (they hold the older commits).
    pub fn snapshot(&self) -> Vec<RecordBatch> {
        let g = self.batches.read();
        g.frozen.iter().chain(&g.open).cloned().collect()
    }

    /// Time ranges where this table may hold a point more than once, in the buffer, in its
    /// files or across the two. Read after [`TableBuffer::snapshot`].
    pub fn overlaps(&self) -> Ranges {
        self.overlaps.lock().ranges().clone()
    }

    pub fn rows(&self) -> usize {
        let g = self.batches.read();
        g.frozen.iter().chain(&g.open).map(|b| b.num_rows()).sum()
    }

    /// Appends a batch to a generation; returns whether a merge is due and this call claimed
    /// it (the caller then has it run, see [`TableBuffer::compact`]). Only the open generation
    /// is merged.
    fn append(&self, batch: RecordBatch, frozen: bool) -> bool {
        // Noted before the batch is readable: a reader that sees the batch then sees its
        // ranges too (it reads the ranges after the batches).
        self.overlaps.lock().observe(&batch);
        let mut g = self.batches.write();
        if frozen {
            g.frozen.push(batch);
            return false;
        }
        g.open.push(batch);
        mergeable(&g.open).is_some() && !self.merging.swap(true, Ordering::AcqRel)
    }

    /// Merges groups of small batches until none is due. Run by whoever claimed the merge.
    /// Returns the change in bytes held.
    fn compact(&self) -> isize {
        let mut delta = 0isize;
        loop {
            loop {
                // One read lock for both: a `while let` would hold its guard through the body.
                let due = {
                    let g = self.batches.read();
                    mergeable(&g.open).map(|start| (start, g.open[start..start + MERGE_FANIN].to_vec()))
                };
                let Some((start, parts)) = due else { break };
                let merged = match merge(&parts) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not merge buffered batches; keeping them apart");
                        self.merging.store(false, Ordering::Release);
                        return delta;
                    }
                };
                let mut g = self.batches.write();
                // A freeze may have moved the parts to the frozen generation meanwhile; then
                // the merge is dropped (the parts stay as they are).
                let unmoved = g
                    .open
                    .get(start..start + MERGE_FANIN)
                    .is_some_and(|now| now.iter().zip(&parts).all(|(a, b)| same_batch(a, b)));
                if !unmoved {
                    break;
                }
                delta += batch_bytes(&merged) as isize - total_bytes(&parts);
                g.open.splice(start..start + MERGE_FANIN, [merged]);
            }
            self.merging.store(false, Ordering::Release);
            // An append that came after the last check but before the flag was cleared could
            // not claim the merge: look once more.
            if mergeable(&self.batches.read().open).is_none() || self.merging.swap(true, Ordering::AcqRel) {
                return delta;
            }
        }
    }
}

/// Memory a batch holds, as the cap counts it.
pub fn batch_bytes(b: &RecordBatch) -> usize {
    b.get_array_memory_size()
}

/// Memory `batches` hold together, as the cap counts it.
fn total_bytes<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> isize {
    batches.into_iter().map(|b| batch_bytes(b) as isize).sum()
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

/// The part of [`WriteBuffer`] the merge thread shares: the byte count it corrects.
#[derive(Default)]
struct HeldBytes(AtomicUsize);

impl HeldBytes {
    fn add(&self, delta: isize) {
        if delta >= 0 {
            self.0.fetch_add(delta as usize, Ordering::AcqRel);
        } else {
            // Saturating: a count that went below zero would read as a full buffer.
            let _ = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v.saturating_sub(delta.unsigned_abs())));
        }
    }
}

/// All tables' buffers, keyed by (database id, table id).
#[derive(Default)]
pub struct WriteBuffer {
    tables: RwLock<HashMap<(u32, u32), Arc<TableBuffer>>>,
    /// Commit numbers drawn but not yet appended or abandoned. Drawing takes this lock too,
    /// so a number is never drawn without being listed.
    in_flight: Mutex<BTreeSet<u64>>,
    /// The next commit number (shared with the catalog, which stamps new tables with it).
    commits: Arc<AtomicU64>,
    /// Commits below this belong to the frozen generation. Read and changed under `generation`.
    boundary: AtomicU64,
    /// Appends hold it shared; a freeze holds it alone, so none lands between its two steps.
    generation: RwLock<()>,
    bytes: Arc<HeldBytes>,
    /// Writes are refused while `bytes` is at or above this (0: no cap).
    cap_bytes: AtomicUsize,
    /// The merge thread's queue, made with the first merge (`None`: no thread could start).
    compactor: OnceLock<Option<Sender<Weak<TableBuffer>>>>,
}

impl WriteBuffer {
    pub fn new() -> WriteBuffer {
        WriteBuffer::default()
    }

    /// Draws the next number in the order of commits of all shards, before the commit's WAL
    /// record is sealed; [`WriteBuffer::end_commit`] must follow once its batches are appended
    /// (or the WAL write failed). A write acked before another is sent has the lower number.
    pub fn begin_commit(&self) -> u64 {
        let mut in_flight = self.in_flight.lock();
        let c = self.commits.fetch_add(1, Ordering::AcqRel);
        in_flight.insert(c);
        c
    }

    /// The commit is appended (or abandoned): persistence no longer waits for it.
    pub fn end_commit(&self, commit: u64) {
        self.in_flight.lock().remove(&commit);
    }

    /// The counter itself, for [`crate::catalog::Catalog::use_commit_counter`].
    pub fn commit_counter(&self) -> Arc<AtomicU64> {
        self.commits.clone()
    }

    /// The number the next commit will take: every write acked so far has a lower one.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// Continues numbering after a restart: the next commit takes at least `next`.
    pub fn resume_commits(&self, next: u64) {
        self.commits.fetch_max(next, Ordering::AcqRel);
    }

    /// The settled frontier: every commit below it is appended or abandoned (the first commit
    /// still in flight, or the next to be drawn if none is).
    pub fn settled(&self) -> u64 {
        let in_flight = self.in_flight.lock();
        // Read under the lock `begin_commit` takes, so no number is drawn in between.
        in_flight.first().copied().unwrap_or_else(|| self.commits.load(Ordering::Acquire))
    }

    /// Whether every commit below `commit` is appended or abandoned.
    pub fn settled_below(&self, commit: u64) -> bool {
        self.in_flight.lock().first().is_none_or(|&c| c >= commit)
    }

    /// Bytes of batches held.
    pub fn bytes(&self) -> usize {
        self.bytes.0.load(Ordering::Acquire)
    }

    /// Sets the cap on bytes held (0: none).
    pub fn set_cap_bytes(&self, cap: usize) {
        self.cap_bytes.store(cap, Ordering::Release);
    }

    pub fn cap_bytes(&self) -> usize {
        self.cap_bytes.load(Ordering::Acquire)
    }

    /// `Some(bytes held)` when the buffer is at its cap and writes must wait for persistence.
    pub fn over_cap(&self) -> Option<usize> {
        let cap = self.cap_bytes();
        let held = self.bytes();
        (cap > 0 && held >= cap).then_some(held)
    }

    /// Appends commit `commit`'s rows of one table.
    pub fn append(&self, db_id: u32, table_id: u32, batch: RecordBatch, commit: u64) {
        if batch.num_rows() == 0 {
            return;
        }
        let existing = self.tables.read().get(&(db_id, table_id)).cloned();
        let table = match existing {
            Some(t) => t,
            None => self.tables.write().entry((db_id, table_id)).or_default().clone(),
        };
        self.bytes.add(batch_bytes(&batch) as isize);
        let merge = {
            let _generation = self.generation.read();
            table.append(batch, commit < self.boundary.load(Ordering::Acquire))
        };
        if merge {
            self.merge_later(&table);
        }
    }

    /// Starts a generation: every batch buffered now, and every commit below the returned
    /// boundary still in flight, forms the frozen generation. Wait for
    /// [`WriteBuffer::settled_below`] the boundary before reading it with
    /// [`WriteBuffer::frozen`]. Must not be called while a frozen generation is held.
    pub fn freeze(&self) -> u64 {
        let _generation = self.generation.write();
        let boundary = self.commits();
        self.boundary.store(boundary, Ordering::Release);
        for t in self.tables.read().values() {
            let mut g = t.batches.write();
            let open = std::mem::take(&mut g.open);
            g.frozen.extend(open);
        }
        boundary
    }

    /// The frozen generation, per (database id, table id).
    pub fn frozen(&self) -> Vec<((u32, u32), Vec<RecordBatch>)> {
        let tables = self.tables.read();
        let mut out: Vec<_> = tables
            .iter()
            .filter_map(|(k, t)| {
                let g = t.batches.read();
                (!g.frozen.is_empty()).then(|| (*k, g.frozen.clone()))
            })
            .collect();
        out.sort_by_key(|(k, _)| *k);
        out
    }

    /// Drops the frozen generation (it is persisted).
    pub fn release_frozen(&self) {
        let mut freed = 0;
        // Empty tables stay listed: a shard may hold one it is about to append to.
        for t in self.tables.read().values() {
            let mut g = t.batches.write();
            freed += total_bytes(&g.frozen);
            g.frozen.clear();
        }
        self.bytes.add(-freed);
    }

    /// Queues a merge of `table` for the merge thread, or runs it here if there is no thread.
    fn merge_later(&self, table: &Arc<TableBuffer>) {
        let queue = self.compactor.get_or_init(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<Weak<TableBuffer>>();
            let bytes = self.bytes.clone();
            let spawned = std::thread::Builder::new().name("weir-compact".into()).spawn(move || {
                // Ends when the buffer, and with it the sender, is dropped.
                for table in rx {
                    if let Some(t) = table.upgrade() {
                        bytes.add(t.compact());
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
            _ => self.bytes.add(table.compact()),
        }
    }

    /// Waits until no merge is queued or running (for tests and benchmarks; never on a shard).
    #[allow(clippy::disallowed_methods)]
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

    /// [`TableBuffer::overlaps`] of a table (none if nothing was ever buffered or seeded).
    pub fn overlaps(&self, db_id: u32, table_id: u32) -> Ranges {
        self.table(db_id, table_id).map(|t| t.overlaps()).unwrap_or_default()
    }

    /// Every table's overlap ranges, for the file index.
    pub fn all_overlaps(&self) -> Vec<((u32, u32), Ranges)> {
        let mut out: Vec<_> = self
            .tables
            .read()
            .iter()
            .map(|(k, t)| (*k, t.overlaps()))
            .filter(|(_, r)| !r.is_empty())
            .collect();
        out.sort_by_key(|(k, _)| *k);
        out
    }

    /// Seeds a table from what persistence holds: the newest persisted time and the saved
    /// ranges ([`Overlaps::seed`]). Called at start, before replay.
    pub fn seed_overlaps(&self, db_id: u32, table_id: u32, floor: Option<i64>, ranges: &[(i64, i64)]) {
        let t = self.tables.write().entry((db_id, table_id)).or_default().clone();
        t.overlaps.lock().seed(floor, ranges);
    }

    /// Forgets overlap ranges before `cutoff` in one table (its rows there are gone).
    pub fn trim_overlaps(&self, db_id: u32, table_id: u32, cutoff: i64) {
        if let Some(t) = self.table(db_id, table_id) {
            t.overlaps.lock().trim_below(cutoff);
        }
    }

    pub fn drop_database(&self, db_id: u32) {
        let mut freed = 0;
        self.tables.write().retain(|(d, _), t| {
            if *d == db_id {
                freed += total_bytes(&t.snapshot());
            }
            *d != db_id
        });
        self.bytes.add(-freed);
    }

    pub fn drop_table(&self, db_id: u32, table_id: u32) {
        if let Some(t) = self.tables.write().remove(&(db_id, table_id)) {
            self.bytes.add(-total_bytes(&t.snapshot()));
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
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
            buf.append(0, 0, batch(if i % 2 == 0 { "a" } else { "b" }, i as f64), i as u64);
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
            buf.append(0, 0, batch("a", i as f64), i as u64);
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
        buf.append(1, 0, batch("a", 1.0), 0);
        buf.append(2, 0, batch("a", 1.0), 1);
        buf.drop_database(1);
        assert!(buf.snapshot(1, 0).is_empty());
        assert_eq!(buf.snapshot(2, 0).len(), 1);
    }

    #[test]
    fn a_freeze_takes_every_commit_below_its_boundary_and_no_other() {
        let buf = WriteBuffer::new();
        let c0 = buf.begin_commit();
        buf.append(0, 0, batch("a", 0.0), c0);
        buf.end_commit(c0);
        // Drawn before the freeze, appended after it: still the frozen generation's.
        let late = buf.begin_commit();
        let boundary = buf.freeze();
        assert_eq!(boundary, late + 1);
        assert!(!buf.settled_below(boundary), "commit {late} is still in flight");
        let after = buf.begin_commit();
        buf.append(0, 0, batch("a", 2.0), after);
        buf.end_commit(after);
        buf.append(0, 0, batch("a", 1.0), late);
        buf.end_commit(late);
        assert!(buf.settled_below(boundary));
        let frozen = buf.frozen();
        assert_eq!(frozen.len(), 1);
        assert_eq!(values(&frozen[0].1), vec![0.0, 1.0]);
        // Queries see both generations, frozen first.
        assert_eq!(values(&buf.snapshot(0, 0)), vec![0.0, 1.0, 2.0]);
        buf.release_frozen();
        assert_eq!(values(&buf.snapshot(0, 0)), vec![2.0]);
        assert!(buf.frozen().is_empty());
    }

    #[test]
    fn bytes_held_follow_appends_merges_and_releases() {
        let buf = WriteBuffer::new();
        assert_eq!(buf.bytes(), 0);
        for i in 0..(MERGE_FANIN + 1) {
            buf.append(0, 0, batch("a", i as f64), i as u64);
        }
        buf.settle();
        let held = buf.bytes();
        let counted: usize = buf.snapshot(0, 0).iter().map(batch_bytes).sum();
        assert_eq!(held, counted, "the count follows the merge");
        buf.set_cap_bytes(held);
        assert_eq!(buf.over_cap(), Some(held));
        buf.freeze();
        buf.release_frozen();
        assert_eq!(buf.bytes(), 0);
        assert_eq!(buf.over_cap(), None);
    }
}
