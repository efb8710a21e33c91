//! Start-up recovery: rebuilds the write buffer from the WAL.
//!
//! Runs before any shard accepts a write. Each logged entry is validated again against the
//! catalog (which was persisted before the entry was acked) and appended to the buffer, so what
//! a query sees after a restart is what it saw before. Entries of deleted databases are skipped.
//! A torn tail is cut by [`crate::wal::replay`]; nothing here is fatal but I/O on the WAL itself.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::batch::TableBuilder;
use crate::buffer::WriteBuffer;
use crate::catalog::Catalog;
use crate::wal::{replay, ReplayStats};
use crate::write::prepare;

/// Rows per rebuilt batch.
const REPLAY_BATCH_ROWS: usize = 64 * 1024;

pub fn replay_into(root: &Path, catalog: &Catalog, buffer: &WriteBuffer) -> std::io::Result<ReplayStats> {
    let mut builders: HashMap<(u32, u32), TableBuilder> = HashMap::new();
    let mut skipped = 0usize;
    let stats = replay(root, |_epoch, entry| {
        let snapshot = catalog.snapshot();
        let Some(db) = snapshot.db_by_id(entry.db_id) else {
            skipped += 1;
            return;
        };
        let db_name: Arc<str> = Arc::from(db.name.as_str());
        match prepare(catalog, &db.name, &entry.lines, entry.precision, entry.default_time_ns, true) {
            Ok(p) => {
                if !p.rejects.is_empty() {
                    tracing::warn!(db = %db.name, rejected = p.rejects.len(), first = %p.rejects[0].error_message,
                        "WAL lines no longer fit the catalog; skipped");
                }
                for g in &p.good {
                    let table = &p.tables[g.table];
                    let key = (p.db_id, table.id);
                    let b = builders
                        .entry(key)
                        .or_insert_with(|| TableBuilder::new(p.db_id, db_name.clone(), table.clone()));
                    b.append(&g.line, g.time_ns, g.same_shape, g.series_id);
                    if b.rows() >= REPLAY_BATCH_ROWS {
                        if let Some(full) = builders.remove(&key) {
                            finish_into(buffer, key, full);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(db = %db.name, error = %e, "WAL entry could not be replayed"),
        }
    })?;
    for (key, b) in builders {
        finish_into(buffer, key, b);
    }
    if skipped > 0 {
        tracing::info!(entries = skipped, "skipped WAL entries of deleted databases");
    }
    Ok(stats)
}

fn finish_into(buffer: &WriteBuffer, (db_id, table_id): (u32, u32), b: TableBuilder) {
    match b.finish() {
        Ok(batch) => buffer.append(db_id, table_id, batch),
        Err(e) => tracing::error!(error = %e, "could not rebuild a batch from the WAL"),
    }
}
