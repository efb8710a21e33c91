//! The persister: moves the write buffer into Parquet, then lets the WAL go.
//!
//! One thread (`weir-persist`) wakes every [`POLL`] and persists when a `--gen1-duration`
//! window of the wall clock has closed (and something is buffered), or when the buffer passes
//! its persist threshold. One persist: freeze the buffer at boundary `B`, wait for commits below
//! `B` still in flight, write each table's frozen rows as one file per time window (sorted,
//! each point once), make a new index version durable, publish it while dropping the frozen
//! rows, then remove WAL segments wholly below `B` and ask the shards to rotate. A failure
//! leaves the frozen generation in place (still queryable, still in the WAL) and the next
//! attempt persists the same boundary.
//!
//! Budget: Parquet encoding runs at hundreds of MB/s a core; the thread shares the cores with
//! the shards but never holds anything a shard waits for (the buffer locks only briefly).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::file::metadata::SortingColumn;
use pipeline::batch::{align, table_schema};
use pipeline::buffer::WriteBuffer;
use pipeline::catalog::Catalog;
use pipeline::wal_retention::WalRetention;

use super::catalog_copy::{self, CatalogCopyError};
use super::index::{FileIndex, IndexError, ParquetFile, TableOverlaps};
use super::layout::file_path;
use super::points::{sort_and_merge, sort_key_indices, split_by_window, time_range};
use super::store::StoreError;
use super::{Forget, Storage};
use crate::time::now_ns;

/// How often the persister looks at the clock and the buffer.
pub const POLL: Duration = Duration::from_millis(100);
/// How often it looks for files past their retention period (queries stop reading expired
/// rows at once; this only frees the space).
const EXPIRY_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct PersistConfig {
    /// Width of a file's time window, and the wall-clock period of persists.
    pub gen1: Duration,
    /// Persist as soon as the buffer holds this many bytes.
    pub threshold_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    CatalogCopy(#[from] CatalogCopyError),
    #[error("building a Parquet file: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("preparing rows: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// What one persist did.
#[derive(Debug, Default)]
pub struct PersistStats {
    pub boundary: u64,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub wal_segments_removed: usize,
}

pub struct Persister {
    storage: Arc<Storage>,
    buffer: Arc<WriteBuffer>,
    catalog: Arc<Catalog>,
    retention: Arc<WalRetention>,
    cfg: PersistConfig,
    /// The boundary of a frozen generation not yet persisted (a failed attempt's).
    frozen: Option<u64>,
    /// The catalog version last copied into a remote store.
    copied_catalog: Option<u64>,
}

impl Persister {
    pub fn new(
        storage: Arc<Storage>,
        buffer: Arc<WriteBuffer>,
        catalog: Arc<Catalog>,
        retention: Arc<WalRetention>,
        cfg: PersistConfig,
    ) -> Persister {
        Persister { storage, buffer, catalog, retention, cfg, frozen: None, copied_catalog: None }
    }

    fn gen1_ns(&self) -> i64 {
        i64::try_from(self.cfg.gen1.as_nanos()).unwrap_or(i64::MAX).max(1)
    }

    /// Starts the persister thread; it runs until the process ends.
    pub fn spawn(mut self, runtime: tokio::runtime::Handle) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("weir-persist".into()).spawn(move || {
            let gen1 = self.gen1_ns();
            let mut window = now_ns().div_euclid(gen1);
            let mut last_expiry = Instant::now();
            match runtime.block_on(self.remove_unlisted()) {
                Ok(0) => {}
                Ok(n) => tracing::info!(files = n, "removed Parquet files no index lists (left by an interrupted persist)"),
                Err(e) => tracing::warn!(error = %e, "could not sweep Parquet files no index lists"),
            }
            loop {
                std::thread::sleep(POLL);
                let w = now_ns().div_euclid(gen1);
                let closed = w != window;
                window = w;
                let forgets = self.storage.take_forgets();
                if !forgets.is_empty() {
                    match runtime.block_on(self.forget(&forgets)) {
                        Ok(n) => tracing::info!(files = n, "removed the Parquet files of deleted tables"),
                        Err(e) => {
                            tracing::error!(error = %e, "removing deleted tables' Parquet files failed; retrying");
                            self.storage.retry_forgets(forgets);
                        }
                    }
                }
                if last_expiry.elapsed() >= EXPIRY_EVERY {
                    last_expiry = Instant::now();
                    match runtime.block_on(self.expire(now_ns())) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(files = n, "removed Parquet files past their database's retention period"),
                        Err(e) => tracing::error!(error = %e, "removing expired Parquet files failed; retrying"),
                    }
                }
                if let Err(e) = runtime.block_on(self.copy_catalog()) {
                    tracing::error!(error = %e, "copying the catalog to the object store failed; retrying");
                }
                let full = self.buffer.bytes() >= self.cfg.threshold_bytes;
                if !(self.frozen.is_some() || full || (closed && self.buffer.bytes() > 0)) {
                    continue;
                }
                let started = Instant::now();
                match runtime.block_on(self.persist_once()) {
                    Ok(s) => tracing::info!(
                        boundary = s.boundary,
                        files = s.files,
                        rows = s.rows,
                        bytes = s.bytes,
                        wal_segments_removed = s.wal_segments_removed,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        buffer_bytes = self.buffer.bytes(),
                        "persisted the write buffer to Parquet"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "persisting to Parquet failed; the rows stay buffered and in the WAL, retrying");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        })
    }

    /// Persists everything committed so far. Safe to call again after a failure.
    pub async fn persist_once(&mut self) -> Result<PersistStats, PersistError> {
        let boundary = match self.frozen {
            Some(b) => b,
            None => {
                let b = self.buffer.freeze();
                self.frozen = Some(b);
                b
            }
        };
        // Commits below the boundary still writing their WAL record land in the frozen
        // generation within a WAL write's time.
        while !self.buffer.settled_below(boundary) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let frozen = self.buffer.frozen();
        let catalog = self.catalog.snapshot();
        let mut index = (*self.storage.index()).clone();
        let mut stats = PersistStats { boundary, ..Default::default() };
        let now = now_ns();
        for ((db_id, table_id), batches) in frozen {
            // Rows of a table deleted since they were written go with the frozen generation.
            let Some(db) = catalog.db_by_id(db_id) else { continue };
            let Some(table) = db.table_by_id(table_id) else { continue };
            let schema = table_schema(table);
            let cutoff = db.retention_cutoff(now).unwrap_or(i64::MIN);
            for chunk in chunks(&batches) {
                let aligned = chunk.iter().map(|b| align(b, &schema)).collect::<Result<Vec<_>, _>>()?;
                let all = arrow::compute::concat_batches(&schema, &aligned)?;
                drop(aligned);
                self.write_chunk(&mut index, &mut stats, (&db.name, db_id), (&table.name, table_id), &all, cutoff).await?;
            }
        }
        index.version += 1;
        index.persisted_through = boundary;
        // The buffer's ranges cover the index's (seeded at start) and every row since.
        index.overlaps = self
            .buffer
            .all_overlaps()
            .into_iter()
            .map(|((db_id, table_id), r)| TableOverlaps { db_id, table_id, ranges: r.as_slice().to_vec() })
            .collect();
        // The index may name tables only a newer catalog knows.
        self.copy_catalog().await?;
        index.save(&self.storage.store, &self.storage.node).await?;
        let buffer = &self.buffer;
        self.storage.publish(index, || buffer.release_frozen());
        self.frozen = None;
        stats.wal_segments_removed = self.retention.persisted_below(boundary);
        // Segments being written now hold commits at or above the boundary; closing them lets
        // the next persist remove them even when they fill slowly.
        self.retention.request_rotation();
        Ok(stats)
    }

    /// Copies the catalog into a remote store if it changed since the last copy (nothing on
    /// the `file` and `memory` stores).
    pub async fn copy_catalog(&mut self) -> Result<(), PersistError> {
        if !self.storage.store.is_remote() {
            return Ok(());
        }
        let snapshot = self.catalog.snapshot();
        if self.copied_catalog == Some(snapshot.version) {
            return Ok(());
        }
        catalog_copy::save(&self.storage.store, &self.storage.node, &snapshot).await?;
        self.copied_catalog = Some(snapshot.version);
        Ok(())
    }

    /// Writes one chunk of a table's frozen rows: a file per time window, sorted and merged,
    /// except windows wholly older than `cutoff` (the retention period's).
    async fn write_chunk(
        &self,
        index: &mut FileIndex,
        stats: &mut PersistStats,
        (db_name, db_id): (&str, u32),
        (table_name, table_id): (&str, u32),
        all: &RecordBatch,
        cutoff: i64,
    ) -> Result<(), PersistError> {
        for (window, part) in split_by_window(all, self.gen1_ns())? {
            let rows = sort_and_merge(&part)?;
            let Some((min_time, max_time)) = time_range(&rows)? else { continue };
            if max_time < cutoff {
                // Past the retention period already: queries never show these rows.
                continue;
            }
            let id = index.next_file_id;
            index.next_file_id += 1;
            let path = file_path(&self.storage.node, (db_name, db_id), (table_name, table_id), window, id);
            let bytes = encode(&rows)?;
            let size_bytes = bytes.len() as u64;
            self.storage.store.put_durable(&path, bytes).await?;
            stats.files += 1;
            stats.rows += rows.num_rows() as u64;
            stats.bytes += size_bytes;
            index.files.push(ParquetFile {
                id,
                db_id,
                table_id,
                path: path.to_string(),
                row_count: rows.num_rows() as u64,
                size_bytes,
                min_time,
                max_time,
            });
        }
        Ok(())
    }

    /// Deletes every Parquet file of this node that the index does not list: files of a
    /// persist that died before its index version was saved, and files dropped from the index
    /// whose delete did not happen. Run before the first persist (only the persister writes
    /// under `NODE/dbs`, so nothing listed later can be among them).
    pub async fn remove_unlisted(&self) -> Result<usize, PersistError> {
        let index = self.storage.index();
        let listed: std::collections::HashSet<&str> = index.files.iter().map(|f| f.path.as_str()).collect();
        let prefix = object_store::path::Path::from_iter([self.storage.node.as_str(), "dbs"]);
        let mut removed = 0;
        for (path, _) in self.storage.store.list(&prefix).await? {
            if path.extension() == Some("parquet") && !listed.contains(path.as_ref()) {
                self.storage.store.delete(&path).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Drops the files `forgets` cover from the index (durably), then from the store.
    pub async fn forget(&self, forgets: &[Forget]) -> Result<usize, PersistError> {
        let covered = |db_id, table_id| forgets.iter().any(|g| g.covers(db_id, table_id));
        self.remove_files(|f| covered(f.db_id, f.table_id), |o| !covered(o.db_id, o.table_id)).await
    }

    /// Drops the files whose rows are all older than their database's retention period, and
    /// the overlap ranges before each table's cutoff.
    pub async fn expire(&self, now_ns: i64) -> Result<usize, PersistError> {
        let catalog = self.catalog.snapshot();
        let cutoff = |db_id: u32| catalog.db_by_id(db_id).and_then(|d| d.retention_cutoff(now_ns));
        for d in catalog.databases.values() {
            if let Some(c) = d.retention_cutoff(now_ns) {
                for t in d.tables.values() {
                    self.buffer.trim_overlaps(d.id, t.id, c);
                }
            }
        }
        self.remove_files(|f| cutoff(f.db_id).is_some_and(|c| f.max_time < c), |_| true).await
    }

    /// Removes the files `gone` picks from a new index version (made durable, then published),
    /// keeping the overlap ranges `keep` picks, then deletes the files from the store.
    async fn remove_files(
        &self,
        gone: impl Fn(&ParquetFile) -> bool,
        keep: impl Fn(&TableOverlaps) -> bool,
    ) -> Result<usize, PersistError> {
        // Only this thread writes the index: what it reads here is what it replaces.
        let current = self.storage.index();
        if !current.files.iter().any(&gone) {
            return Ok(0);
        }
        let mut index = (*current).clone();
        let (gone, kept): (Vec<_>, Vec<_>) = index.files.into_iter().partition(|f| gone(f));
        index.files = kept;
        index.overlaps.retain(|o| keep(o));
        index.version += 1;
        index.save(&self.storage.store, &self.storage.node).await?;
        self.storage.publish(index, || {});
        for f in &gone {
            // Listed nowhere now: a file left behind costs space, never a wrong answer.
            let removed = match object_store::path::Path::parse(&f.path) {
                Ok(p) => self.storage.store.delete(&p).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = removed {
                tracing::warn!(path = %f.path, error = %e, "could not remove a Parquet file no longer listed");
            }
        }
        Ok(gone.len())
    }
}

/// Buffer bytes sorted and written as one piece. A persist's working memory is a few times
/// this (the concatenation, then the sorted copy), not a few times the whole frozen generation:
/// sorting a 3 GiB table at once took RSS to twice the buffer cap in the ingest load test.
const CHUNK_BYTES: usize = 256 << 20;

/// `batches` in runs of about [`CHUNK_BYTES`] each. A point written twice is merged when both
/// writes fall in one chunk (one write's rows always do: a batch is never split).
fn chunks(batches: &[RecordBatch]) -> Vec<&[RecordBatch]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, b) in batches.iter().enumerate() {
        bytes += pipeline::buffer::batch_bytes(b);
        if bytes >= CHUNK_BYTES {
            out.push(&batches[start..=i]);
            start = i + 1;
            bytes = 0;
        }
    }
    if start < batches.len() {
        out.push(&batches[start..]);
    }
    out
}

/// One Parquet file's bytes: snappy-compressed, with the sort order recorded.
pub fn encode(batch: &RecordBatch) -> Result<Bytes, PersistError> {
    let sorting = sort_key_indices(batch)?
        .into_iter()
        .map(|i| SortingColumn { column_idx: i as i32, descending: false, nulls_first: true })
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_sorting_columns(Some(sorting))
        .build();
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(Bytes::from(out))
}
