//! The catalog's copy in a remote object store (`NODE/catalogs/VVVVVVVVVVVVVVVVVVVV.json`).
//!
//! The catalog proper is the local `catalog.json`, written before any change is published.
//! On a remote store (S3) the node's disk may be lost while its Parquet files live on, and the
//! files mean nothing without the database and table ids they were written under. So the
//! persister copies every new catalog version there within a poll, and always before it
//! saves an index version (which may name tables that version made). Start-up opens the newer
//! of the local file and the newest copy ([`pipeline::catalog::Catalog::open_seeded`]).
//!
//! It never changes the catalog; it only copies and reads back versions. The `file` store
//! shares the node's disk, so nothing is copied there.

use bytes::Bytes;
use object_store::path::Path;
use pipeline::catalog::CatalogSnapshot;

use super::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CatalogCopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("catalog copy {path} is unreadable: {reason}")]
    Corrupt { path: String, reason: String },
}

fn dir(node: &str) -> Path {
    Path::from_iter([node, "catalogs"])
}

fn version_path(node: &str, version: u64) -> Path {
    dir(node).join(format!("{version:020}.json").as_str())
}

async fn versions(store: &Store, node: &str) -> Result<Vec<u64>, StoreError> {
    let mut v: Vec<u64> = store
        .list(&dir(node))
        .await?
        .into_iter()
        .filter_map(|(p, _)| p.filename()?.strip_suffix(".json")?.parse().ok())
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// Copies `snapshot` durably, then removes copies older than the one before it.
pub async fn save(store: &Store, node: &str, snapshot: &CatalogSnapshot) -> Result<(), CatalogCopyError> {
    let bytes = serde_json::to_vec(snapshot)
        .map_err(|e| CatalogCopyError::Corrupt { path: "new".into(), reason: e.to_string() })?;
    store.put_durable(&version_path(node, snapshot.version), Bytes::from(bytes)).await?;
    for old in versions(store, node).await? {
        if old + 1 < snapshot.version {
            store.delete(&version_path(node, old)).await?;
        }
    }
    Ok(())
}

/// The newest copy, if any. A newest copy that does not parse is an error: the files it
/// describes would otherwise be read under no catalog at all.
pub async fn load_newest(store: &Store, node: &str) -> Result<Option<CatalogSnapshot>, CatalogCopyError> {
    let Some(&newest) = versions(store, node).await?.last() else {
        return Ok(None);
    };
    let path = version_path(node, newest);
    let bytes = store.get(&path).await?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| CatalogCopyError::Corrupt { path: path.to_string(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::catalog::{Catalog, CatalogOp};

    #[tokio::test]
    async fn the_newest_copy_reads_back_and_old_ones_go() {
        let store = Store::memory();
        assert!(load_newest(&store, "n").await.unwrap().is_none());
        let cat = Catalog::in_memory();
        for name in ["a", "b", "c"] {
            cat.update(&[CatalogOp::CreateDatabase { name: name.into(), retention_ns: None }]).unwrap();
            save(&store, "n", &cat.snapshot()).await.unwrap();
        }
        let got = load_newest(&store, "n").await.unwrap().unwrap();
        assert_eq!(got.version, cat.snapshot().version);
        assert!(got.db("c").is_some());
        assert_eq!(versions(&store, "n").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_unreadable_newest_copy_is_an_error() {
        let store = Store::memory();
        store.put_durable(&version_path("n", 3), Bytes::from_static(b"{oops")).await.unwrap();
        assert!(matches!(load_newest(&store, "n").await, Err(CatalogCopyError::Corrupt { .. })));
    }
}
