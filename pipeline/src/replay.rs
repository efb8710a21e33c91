//! Start-up recovery: rebuilds the write buffer from the WAL; and [`Rebuilder`], which turns
//! logged entries back into rows (shared with [`crate::wal_read`], the WAL triggers' catch-up).
//!
//! Runs before any shard accepts a write. Each logged entry at or above the persisted commit is
//! validated again against the catalog (which was persisted before the entry was acked) and
//! appended to the buffer under its own commit number, so what a query sees after a restart is
//! what it saw before. Entries of deleted databases are skipped. A torn tail is cut by
//! [`crate::wal::replay`]; damage elsewhere fails the start there.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::batch::TableBuilder;
use crate::buffer::WriteBuffer;
use crate::catalog::{Catalog, CatalogSnapshot, Table};
use crate::wal::{replay, ReplayError, ReplayOptions, ReplayStats, WalEntry};
use crate::write::{prepare, GoodLine};

/// Rows per rebuilt batch.
const REPLAY_BATCH_ROWS: usize = 64 * 1024;

/// Turns logged entries back into rows of the tables they went to, checked against the catalog
/// as it is now. It never creates catalog objects: lines are checked against a detached copy,
/// and lines of a table the real catalog no longer has (deleted, or deleted and made again
/// after the record) are dropped.
pub struct Rebuilder {
    real: Arc<CatalogSnapshot>,
    scratch: Catalog,
    /// Entries of deleted databases, and lines of deleted tables, passed over.
    pub skipped_entries: usize,
    pub dropped_lines: usize,
}

/// Where a rebuilt line goes.
pub struct Dest<'a> {
    pub db_id: u32,
    pub db_name: &'a Arc<str>,
    pub table: &'a Arc<Table>,
}

impl Rebuilder {
    pub fn new(catalog: &Catalog) -> Rebuilder {
        let real = catalog.snapshot();
        let scratch = Catalog::detached(&real);
        Rebuilder { real, scratch, skipped_entries: 0, dropped_lines: 0 }
    }

    /// Calls `f` with each line of `entry` (from commit `commit`) that still has a table.
    pub fn lines(&mut self, commit: u64, entry: &WalEntry<'_>, mut f: impl FnMut(Dest<'_>, &GoodLine<'_>)) {
        let Some(db) = self.real.db_by_id(entry.db_id) else {
            self.skipped_entries += 1;
            return;
        };
        let db_name: Arc<str> = Arc::from(db.name.as_str());
        match prepare(&self.scratch, &db.name, &entry.lines, entry.precision, entry.default_time_ns, true) {
            Ok(p) => {
                if !p.rejects.is_empty() {
                    tracing::warn!(db = %db.name, rejected = p.rejects.len(), first = %p.rejects[0].error_message,
                        "WAL lines no longer fit the catalog; skipped");
                }
                for g in &p.good {
                    let table = &p.tables[g.table];
                    if db.table(&table.name).is_none_or(|t| t.id != table.id || commit < t.created_commit) {
                        self.dropped_lines += 1;
                        continue;
                    }
                    f(Dest { db_id: p.db_id, db_name: &db_name, table }, g);
                }
            }
            Err(e) => tracing::warn!(db = %db.name, error = %e, "WAL entry could not be rebuilt"),
        }
    }
}

pub fn replay_into(
    root: &Path,
    opts: ReplayOptions,
    catalog: &Catalog,
    buffer: &WriteBuffer,
) -> Result<ReplayStats, ReplayError> {
    let mut builders: HashMap<(u32, u32), TableBuilder> = HashMap::new();
    let mut rebuild = Rebuilder::new(catalog);
    // Batches are cut when a builder fills, tagged with the highest commit in them.
    let mut commit_of: HashMap<(u32, u32), u64> = HashMap::new();
    let stats = replay(root, opts, |_epoch, commit, entry| {
        rebuild.lines(commit, entry, |d, g| {
            let key = (d.db_id, d.table.id);
            let b = builders.entry(key).or_insert_with(|| TableBuilder::new(d.db_id, d.db_name.clone(), d.table.clone()));
            b.append(&g.line, g.time_ns, g.same_shape, g.series_id);
            let c = commit_of.entry(key).or_insert(commit);
            *c = (*c).max(commit);
            if b.rows() >= REPLAY_BATCH_ROWS {
                if let Some(full) = builders.remove(&key) {
                    finish_into(buffer, key, full, commit_of.remove(&key).unwrap_or(commit));
                }
            }
        });
    })?;
    for (key, b) in builders {
        let commit = commit_of.get(&key).copied().unwrap_or(0);
        finish_into(buffer, key, b, commit);
    }
    if let Some(max) = stats.max_commit {
        buffer.resume_commits(max + 1);
    }
    buffer.resume_commits(opts.from_commit);
    if rebuild.skipped_entries > 0 {
        tracing::info!(entries = rebuild.skipped_entries, "skipped WAL entries of deleted databases");
    }
    if rebuild.dropped_lines > 0 {
        tracing::info!(lines = rebuild.dropped_lines, "skipped WAL lines of deleted tables");
    }
    Ok(stats)
}

fn finish_into(buffer: &WriteBuffer, (db_id, table_id): (u32, u32), b: TableBuilder, commit: u64) {
    match b.finish() {
        Ok(batch) => buffer.append(db_id, table_id, batch, commit),
        Err(e) => tracing::error!(error = %e, "could not rebuild a batch from the WAL"),
    }
}
