//! The file index: every persisted Parquet file, and the commit number persistence covers.
//!
//! `persisted_through` is the spine's middle: every commit below it is in the files listed
//! here, so the WAL below it may go and replay starts there. The index is kept as numbered
//! versions in the object store (`NODE/index/VVVVVVVVVVVVVVVVVVVV.json`), each written whole
//! and durable before the WAL it covers is removed; start-up loads the highest. Old versions
//! are removed once a newer one is durable (the one before it is kept, for inspection).
//!
//! It never touches Parquet files themselves.

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::store::{Store, StoreError};

/// One persisted Parquet file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParquetFile {
    pub id: u64,
    pub db_id: u32,
    pub table_id: u32,
    /// Its object-store path.
    pub path: String,
    pub row_count: u64,
    pub size_bytes: u64,
    /// Nanoseconds since the epoch, both inclusive.
    pub min_time: i64,
    pub max_time: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIndex {
    pub version: u64,
    /// Every commit below this is persisted in `files`.
    pub persisted_through: u64,
    pub next_file_id: u64,
    pub files: Vec<ParquetFile>,
    /// Per table, the time ranges where its files and buffer may hold a point twice
    /// ([`pipeline::overlaps`]): kept here so a restart still merges them.
    #[serde(default)]
    pub overlaps: Vec<TableOverlaps>,
}

/// A table's (database id, table id), newest persisted time, and saved overlap ranges.
pub type Seed<'a> = ((u32, u32), Option<i64>, &'a [(i64, i64)]);

/// One table's overlap ranges (inclusive, ns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableOverlaps {
    pub db_id: u32,
    pub table_id: u32,
    pub ranges: Vec<(i64, i64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("file index {path} is unreadable: {reason}")]
    Corrupt { path: String, reason: String },
}

fn dir(node: &str) -> Path {
    Path::from_iter([node, "index"])
}

fn version_path(node: &str, version: u64) -> Path {
    dir(node).join(format!("{version:020}.json").as_str())
}

/// Index versions present under `node`, ascending.
async fn versions(store: &Store, node: &str) -> Result<Vec<u64>, IndexError> {
    let mut v: Vec<u64> = store
        .list(&dir(node))
        .await?
        .into_iter()
        .filter_map(|(p, _)| p.filename()?.strip_suffix(".json")?.parse().ok())
        .collect();
    v.sort_unstable();
    Ok(v)
}

impl FileIndex {
    /// The newest version in `store`, or an empty index. A newest version that does not parse
    /// is an error, never a silent fall-back: the WAL it covered may be gone.
    pub async fn load(store: &Store, node: &str) -> Result<FileIndex, IndexError> {
        let Some(&newest) = versions(store, node).await?.last() else {
            return Ok(FileIndex::default());
        };
        let path = version_path(node, newest);
        let bytes = store.get(&path).await?;
        serde_json::from_slice(&bytes).map_err(|e| IndexError::Corrupt { path: path.to_string(), reason: e.to_string() })
    }

    /// Writes this version durably, then removes versions older than the one before it.
    pub async fn save(&self, store: &Store, node: &str) -> Result<(), IndexError> {
        let bytes = serde_json::to_vec(self).map_err(|e| IndexError::Corrupt { path: "new".into(), reason: e.to_string() })?;
        store.put_durable(&version_path(node, self.version), Bytes::from(bytes)).await?;
        for old in versions(store, node).await? {
            if old + 1 < self.version {
                store.delete(&version_path(node, old)).await?;
            }
        }
        Ok(())
    }

    /// The newest time in each table's files, and its saved overlap ranges: what start-up
    /// seeds the write buffer's overlap tracking with.
    pub fn seeds(&self) -> Vec<Seed<'_>> {
        type Parts<'a> = (Option<i64>, &'a [(i64, i64)]);
        let mut seeds: std::collections::BTreeMap<(u32, u32), Parts<'_>> = Default::default();
        for f in &self.files {
            let e = seeds.entry((f.db_id, f.table_id)).or_insert((None, &[]));
            e.0 = e.0.max(Some(f.max_time));
        }
        for o in &self.overlaps {
            seeds.entry((o.db_id, o.table_id)).or_insert((None, &[])).1 = &o.ranges;
        }
        seeds.into_iter().map(|(k, (floor, ranges))| (k, floor, ranges)).collect()
    }

    /// Files of one table.
    pub fn table_files(&self, db_id: u32, table_id: u32) -> impl Iterator<Item = &ParquetFile> {
        self.files.iter().filter(move |f| f.db_id == db_id && f.table_id == table_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: u64) -> ParquetFile {
        ParquetFile { id, db_id: 1, table_id: 2, path: format!("p/{id}"), row_count: 3, size_bytes: 4, min_time: 5, max_time: 6 }
    }

    #[tokio::test]
    async fn the_newest_version_is_loaded_and_old_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::file(dir.path()).unwrap();
        assert_eq!(FileIndex::load(&store, "n").await.unwrap(), FileIndex::default());
        for v in 1..=4 {
            let idx = FileIndex { version: v, persisted_through: v * 10, next_file_id: v, files: (0..v).map(file).collect(), overlaps: vec![] };
            idx.save(&store, "n").await.unwrap();
        }
        let got = FileIndex::load(&store, "n").await.unwrap();
        assert_eq!(got.version, 4);
        assert_eq!(got.persisted_through, 40);
        assert_eq!(got.files.len(), 4);
        assert_eq!(versions(&store, "n").await.unwrap(), vec![3, 4]);
    }

    #[tokio::test]
    async fn an_unreadable_newest_version_is_an_error() {
        let store = Store::memory();
        FileIndex { version: 1, ..Default::default() }.save(&store, "n").await.unwrap();
        store.put_durable(&version_path("n", 2), Bytes::from_static(b"{not json")).await.unwrap();
        assert!(matches!(FileIndex::load(&store, "n").await, Err(IndexError::Corrupt { .. })));
    }
}
