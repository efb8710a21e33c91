//! Start-up recovery: rebuilds the write buffer from the WAL.
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
use crate::catalog::Catalog;
use crate::wal::{replay, ReplayError, ReplayOptions, ReplayStats};
use crate::write::prepare;

/// Rows per rebuilt batch.
const REPLAY_BATCH_ROWS: usize = 64 * 1024;

pub fn replay_into(
    root: &Path,
    opts: ReplayOptions,
    catalog: &Catalog,
    buffer: &WriteBuffer,
) -> Result<ReplayStats, ReplayError> {
    let mut builders: HashMap<(u32, u32), TableBuilder> = HashMap::new();
    let mut skipped = 0usize;
    let mut dropped_lines = 0usize;
    // Replay never creates catalog objects: lines are checked against a copy, and lines of a
    // table the real catalog no longer has (deleted) are dropped.
    let real = catalog.snapshot();
    let scratch = Catalog::detached(&real);
    // Batches are cut when a builder fills, tagged with the highest commit in them.
    let mut commit_of: HashMap<(u32, u32), u64> = HashMap::new();
    let stats = replay(root, opts, |_epoch, commit, entry| {
        let Some(db) = real.db_by_id(entry.db_id) else {
            skipped += 1;
            return;
        };
        let db_name: Arc<str> = Arc::from(db.name.as_str());
        match prepare(&scratch, &db.name, &entry.lines, entry.precision, entry.default_time_ns, true) {
            Ok(p) => {
                if !p.rejects.is_empty() {
                    tracing::warn!(db = %db.name, rejected = p.rejects.len(), first = %p.rejects[0].error_message,
                        "WAL lines no longer fit the catalog; skipped");
                }
                for g in &p.good {
                    let table = &p.tables[g.table];
                    // Deleted, or deleted and made again after this record: not this table's.
                    if db.table(&table.name).is_none_or(|t| t.id != table.id || commit < t.created_commit) {
                        dropped_lines += 1;
                        continue;
                    }
                    let key = (p.db_id, table.id);
                    let b = builders
                        .entry(key)
                        .or_insert_with(|| TableBuilder::new(p.db_id, db_name.clone(), table.clone()));
                    b.append(&g.line, g.time_ns, g.same_shape, g.series_id);
                    let c = commit_of.entry(key).or_insert(commit);
                    *c = (*c).max(commit);
                    if b.rows() >= REPLAY_BATCH_ROWS {
                        if let Some(full) = builders.remove(&key) {
                            finish_into(buffer, key, full, commit_of.remove(&key).unwrap_or(commit));
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(db = %db.name, error = %e, "WAL entry could not be replayed"),
        }
    })?;
    for (key, b) in builders {
        let commit = commit_of.get(&key).copied().unwrap_or(0);
        finish_into(buffer, key, b, commit);
    }
    if let Some(max) = stats.max_commit {
        buffer.resume_commits(max + 1);
    }
    buffer.resume_commits(opts.from_commit);
    if skipped > 0 {
        tracing::info!(entries = skipped, "skipped WAL entries of deleted databases");
    }
    if dropped_lines > 0 {
        tracing::info!(lines = dropped_lines, "skipped WAL lines of deleted tables");
    }
    Ok(stats)
}

fn finish_into(buffer: &WriteBuffer, (db_id, table_id): (u32, u32), b: TableBuilder, commit: u64) {
    match b.finish() {
        Ok(batch) => buffer.append(db_id, table_id, batch, commit),
        Err(e) => tracing::error!(error = %e, "could not rebuild a batch from the WAL"),
    }
}
