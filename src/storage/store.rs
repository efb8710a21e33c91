//! The object store Weir's files live in (`--object-store file|memory|s3`), with a durable put.
//!
//! One code path for every store: Parquet files and file-index versions are written through
//! `object_store`. What `object_store` does not promise, this adds: on the `file` store a put
//! is fsynced (file and the directories leading to it) before it returns, since the WAL that a
//! file replaces is removed right after. An S3 put is durable when S3 answers it. A store is
//! *remote* when it does not share the node's local disk (S3): the catalog is then copied into
//! it too (`catalog_copy`). It never decides what is written where (see `layout` in `persist`,
//! and `index`).

use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("object store I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Where and how to reach an S3-compatible bucket (InfluxDB 3's `--aws-*` flags).
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub bucket: String,
    /// Endpoint URL for S3-compatible servers (MinIO, Ceph, moto); AWS's when unset.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Allow `http://` endpoints (refused otherwise).
    pub allow_http: bool,
}

#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// Set for the `file` store, whose puts are synced by hand.
    local: Option<Arc<LocalFileSystem>>,
    root: Option<std::path::PathBuf>,
    remote: bool,
}

impl Store {
    /// Files under `root` (created if missing).
    pub fn file(root: &std::path::Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(root)?;
        let root = std::fs::canonicalize(root)?;
        let local = Arc::new(LocalFileSystem::new_with_prefix(&root)?);
        Ok(Store { inner: local.clone(), local: Some(local), root: Some(root), remote: false })
    }

    /// Kept in memory: nothing survives the process.
    pub fn memory() -> Store {
        Store { inner: Arc::new(InMemory::new()), local: None, root: None, remote: false }
    }

    /// An S3-compatible bucket. Credentials not given here come from the environment's usual
    /// AWS sources (instance metadata, web identity), as `object_store` finds them.
    pub fn s3(opts: &S3Options) -> Result<Store, StoreError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&opts.bucket)
            .with_region(&opts.region)
            .with_allow_http(opts.allow_http);
        if let Some(e) = &opts.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &opts.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &opts.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        if let Some(t) = &opts.session_token {
            b = b.with_token(t);
        }
        Ok(Store { inner: Arc::new(b.build()?), local: None, root: None, remote: true })
    }

    /// Whether the store lives apart from the node's local disk (and so must hold everything
    /// a node with an empty disk needs to start: the catalog as well as files and index).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// Checks that the store answers (a list of `prefix`), so a wrong bucket or credentials
    /// stop the start with the store's own error rather than the first persist.
    pub async fn check(&self, prefix: &Path) -> Result<(), StoreError> {
        use futures::StreamExt;
        let mut listing = self.inner.list(Some(prefix));
        if let Some(Err(e)) = listing.next().await {
            return Err(e.into());
        }
        Ok(())
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// Writes `bytes` at `path`; durable when this returns `Ok`.
    pub async fn put_durable(&self, path: &Path, bytes: Bytes) -> Result<(), StoreError> {
        self.inner.put(path, PutPayload::from_bytes(bytes)).await?;
        if let (Some(local), Some(root)) = (&self.local, &self.root) {
            let file = local.path_to_filesystem(path)?;
            let root = root.clone();
            // Blocking syscalls: off the async worker.
            tokio::task::spawn_blocking(move || sync_path(&file, &root))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
        }
        Ok(())
    }

    pub async fn get(&self, path: &Path) -> Result<Bytes, StoreError> {
        Ok(self.inner.get(path).await?.bytes().await?)
    }

    /// Every object under `prefix`, with its size.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<(Path, u64)>, StoreError> {
        use futures::TryStreamExt;
        let metas: Vec<_> = self.inner.list(Some(prefix)).try_collect().await?;
        Ok(metas.into_iter().map(|m| (m.location, m.size)).collect())
    }

    /// Removes `path`; a path already gone is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), StoreError> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// fsyncs `file` and every directory from it up to `root`: a new file's name is durable only
/// once its directory is, and the date/hour directories may be new too.
fn sync_path(file: &std::path::Path, root: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        std::fs::File::open(d)?.sync_all()?;
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_durable_put_lands_as_a_file_and_lists_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::file(dir.path()).unwrap();
        let path = Path::from_iter(["node", "dbs", "a b/c", "1.parquet"]);
        store.put_durable(&path, Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(store.get(&path).await.unwrap(), Bytes::from_static(b"hello"));
        let listed = store.list(&Path::from("node")).await.unwrap();
        assert_eq!(listed, vec![(path.clone(), 5)]);
        store.delete(&path).await.unwrap();
        store.delete(&path).await.unwrap();
        assert!(store.list(&Path::from("node")).await.unwrap().is_empty());
    }
}
