//! The WAL triggers' cursors on disk: for each enabled `table:`/`all_tables` trigger, the first
//! commit it has not completed. Everything below a trigger's cursor has been handled by it; on
//! start it reads everything from its cursor on, so a crash between an ack and the plugin call
//! costs a repeated call, never a lost one (at-least-once).
//!
//! One small JSON file (`DATA/NODE/triggers/cursors.json`), replaced whole: written to a
//! temporary file, synced, renamed over the old one, and the directory synced. Saves are
//! batched (the engine's saver thread writes at most every [`SAVE_EVERY`], and only when a
//! cursor moved), so a busy trigger costs one small fsync per interval, never one per call, and
//! never on a shard. WAL segments are released for removal only after the cursors that no
//! longer need them are saved.
//!
//! It never reads the WAL and never decides where a cursor is; the engine does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// How often moved cursors are saved.
pub const SAVE_EVERY: Duration = Duration::from_millis(100);

/// (database, trigger) to the first commit the trigger has not completed.
pub type Cursors = BTreeMap<(String, String), u64>;

#[derive(Serialize, Deserialize)]
struct Saved {
    db: String,
    trigger: String,
    /// The first commit not completed.
    next_commit: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("reading trigger cursors from {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "trigger cursors in {path} are not valid ({source}); move the file aside to start every WAL \
         trigger at the current commit instead (rows not yet handled by them are then not handed over)"
    )]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("saving trigger cursors to {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

pub struct CursorStore {
    path: PathBuf,
    /// What the file holds now.
    saved: Mutex<Cursors>,
}

impl CursorStore {
    /// Opens the store at `path`, loading what it holds (nothing if the file does not exist).
    pub fn open(path: PathBuf) -> Result<CursorStore, CursorError> {
        let saved = load(&path)?;
        Ok(CursorStore { path, saved: Mutex::new(saved) })
    }

    /// The cursors as last saved.
    pub fn saved(&self) -> Cursors {
        self.saved.lock().clone()
    }

    /// Makes the file hold exactly `cursors`, durably; does nothing if it already does.
    /// Returns whether it wrote.
    pub fn save(&self, cursors: &Cursors) -> Result<bool, CursorError> {
        let mut saved = self.saved.lock();
        if *saved == *cursors {
            return Ok(false);
        }
        write(&self.path, cursors).map_err(|source| CursorError::Write { path: self.path.clone(), source })?;
        *saved = cursors.clone();
        Ok(true)
    }
}

fn load(path: &Path) -> Result<Cursors, CursorError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Cursors::new()),
        Err(source) => return Err(CursorError::Read { path: path.to_path_buf(), source }),
    };
    let list: Vec<Saved> = serde_json::from_slice(&bytes).map_err(|source| CursorError::Parse { path: path.to_path_buf(), source })?;
    Ok(list.into_iter().map(|s| ((s.db, s.trigger), s.next_commit)).collect())
}

fn write(path: &Path, cursors: &Cursors) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let list: Vec<Saved> =
        cursors.iter().map(|((db, trigger), &next_commit)| Saved { db: db.clone(), trigger: trigger.clone(), next_commit }).collect();
    let bytes = serde_json::to_vec_pretty(&list).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_saved_are_loaded_back_and_an_unchanged_set_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("triggers").join("cursors.json");
        let store = CursorStore::open(path.clone()).unwrap();
        assert!(store.saved().is_empty());
        let mut c = Cursors::new();
        c.insert(("db".into(), "t/1".into()), 42);
        c.insert(("other".into(), "t".into()), 7);
        assert!(store.save(&c).unwrap());
        assert!(!store.save(&c).unwrap(), "nothing moved");
        assert_eq!(CursorStore::open(path.clone()).unwrap().saved(), c);
        c.remove(&("other".into(), "t".into()));
        assert!(store.save(&c).unwrap());
        assert_eq!(CursorStore::open(path).unwrap().saved(), c);
    }

    #[test]
    fn a_damaged_cursor_file_is_an_error_not_a_silent_restart_from_now() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursors.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(CursorStore::open(path), Err(CursorError::Parse { .. })));
    }
}
