//! Storage beyond the WAL: Parquet files in an object store, their index, and the persister.
//!
//! The commit number is the spine: the persister freezes the write buffer at a boundary `B`,
//! writes every row committed below `B` as Parquet (one file per table per `--gen1-duration`
//! window, sorted by series and time, each point once), makes each file and then a new index
//! version (`persisted_through = B`) durable, and only then drops those rows from the buffer
//! and the WAL segments wholly below `B`. Queries read the index and the buffer under one lock
//! ([`Storage::view`]), so they see every row exactly once whichever side of a persist they
//! run on.
//!
//! It never takes writes and never blocks a shard: it runs on its own thread.

pub mod catalog_copy;
pub mod index;
mod layout;
pub mod persist;
pub mod points;
pub mod store;

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use index::{FileIndex, IndexError};
use store::Store;

pub struct Storage {
    pub node: String,
    pub store: Store,
    index: RwLock<Arc<FileIndex>>,
    /// Files of deleted databases and tables, for the persister to drop (it alone writes the
    /// index).
    forgets: Mutex<Vec<Forget>>,
}

/// The files of a deleted database (`table_id: None`) or table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forget {
    pub db_id: u32,
    pub table_id: Option<u32>,
}

impl Forget {
    pub fn covers(&self, db_id: u32, table_id: u32) -> bool {
        db_id == self.db_id && self.table_id.is_none_or(|t| t == table_id)
    }
}

impl Storage {
    /// Loads the newest file index of `node` from `store`.
    pub async fn open(node: &str, store: Store) -> Result<Storage, IndexError> {
        let index = FileIndex::load(&store, node).await?;
        Ok(Storage { node: node.to_string(), store, index: RwLock::new(Arc::new(index)), forgets: Mutex::default() })
    }

    /// An empty storage in memory (tests and benches).
    pub fn in_memory() -> Storage {
        Storage { node: "weir".into(), store: Store::memory(), index: RwLock::new(Arc::default()), forgets: Mutex::default() }
    }

    /// The current index.
    pub fn index(&self) -> Arc<FileIndex> {
        self.index.read().clone()
    }

    /// Runs `f` with the current index while no persist can publish: what `f` reads of the
    /// write buffer matches the index (the rows are in one or the other, never both or neither).
    pub fn view<R>(&self, f: impl FnOnce(&Arc<FileIndex>) -> R) -> R {
        let index = self.index.read();
        f(&index)
    }

    /// Asks for the files of a deleted database or table to be removed (the persister does it
    /// within a poll; queries stop reading them at once, as the catalog no longer names them).
    pub fn forget_later(&self, f: Forget) {
        self.forgets.lock().push(f);
    }

    /// The removals asked for since the last call.
    pub fn take_forgets(&self) -> Vec<Forget> {
        std::mem::take(&mut *self.forgets.lock())
    }

    /// Puts back removals that could not be done.
    pub fn retry_forgets(&self, mut f: Vec<Forget>) {
        self.forgets.lock().append(&mut f);
    }

    /// Publishes `index` and, before any reader sees it, runs `release` (which drops the rows
    /// the new files hold from the write buffer).
    pub fn publish(&self, index: FileIndex, release: impl FnOnce()) {
        let mut current = self.index.write();
        *current = Arc::new(index);
        release();
    }
}
