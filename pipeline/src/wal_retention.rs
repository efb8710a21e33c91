//! Which WAL segments may go: closed segments and the highest commit each holds.
//!
//! A segment is removed only once persistence covers every record in it *and* every enabled WAL
//! trigger has completed every record in it (the commit number is the spine of both): the
//! persister reports the commit everything below which is durable in Parquet and the file index
//! ([`WalRetention::persisted_below`]), the processing engine the lowest cursor of its WAL
//! triggers once that cursor is saved ([`WalRetention::hold_from`]), and segments wholly below
//! both go. The open segment of a shard is never listed, so it is never
//! removed; after a persist the persister asks the shards to rotate
//! ([`WalRetention::request_rotation`]), so that even a slowly written segment is closed and
//! can go at the next persist instead of growing for ever.
//!
//! It never reads or writes records; it only forgets files.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
struct ClosedSegment {
    path: PathBuf,
    /// Its size when it was closed.
    bytes: u64,
    /// `None`: the segment holds no record (nothing depends on it).
    max_commit: Option<u64>,
}

#[derive(Debug)]
pub struct WalRetention {
    closed: Mutex<Vec<ClosedSegment>>,
    rotation: AtomicU64,
    /// Every commit below this is persisted.
    persisted: AtomicU64,
    /// WAL triggers still need every commit at or above this (`u64::MAX`: none is held).
    held: AtomicU64,
}

impl Default for WalRetention {
    fn default() -> Self {
        WalRetention { closed: Mutex::default(), rotation: AtomicU64::new(0), persisted: AtomicU64::new(0), held: AtomicU64::new(u64::MAX) }
    }
}

impl WalRetention {
    pub fn new() -> WalRetention {
        WalRetention::default()
    }

    /// Persistence covers every commit below `commit`; removes what may go now.
    pub fn persisted_below(&self, commit: u64) -> usize {
        self.persisted.fetch_max(commit, Ordering::AcqRel);
        self.remove_released()
    }

    /// WAL triggers need the commits at or above `commit` (`u64::MAX`: none); removes what may
    /// go now. Only to be called once the cursors it is the lowest of are durable.
    pub fn hold_from(&self, commit: u64) -> usize {
        self.held.store(commit, Ordering::Release);
        self.remove_released()
    }

    /// The commit below which segments may go: persisted and completed by every WAL trigger.
    pub fn released_below(&self) -> u64 {
        self.persisted.load(Ordering::Acquire).min(self.held.load(Ordering::Acquire))
    }

    /// Removes the closed segments wholly below [`WalRetention::released_below`].
    pub fn remove_released(&self) -> usize {
        self.remove_below(self.released_below())
    }

    /// Registers a segment no writer appends to any more.
    pub fn closed(&self, path: PathBuf, max_commit: Option<u64>) {
        // Once, at close: the size of a closed segment does not change.
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        self.closed.lock().push(ClosedSegment { path, bytes, max_commit });
    }

    /// Bytes of the closed segments holding a commit at or above `commit`: what a WAL trigger
    /// with that cursor keeps on disk (open segments not counted).
    pub fn bytes_from(&self, commit: u64) -> u64 {
        self.closed.lock().iter().filter(|s| s.max_commit.is_some_and(|m| m >= commit)).map(|s| s.bytes).sum()
    }

    /// Asks every shard to start a new segment at its next record.
    pub fn request_rotation(&self) {
        self.rotation.fetch_add(1, Ordering::AcqRel);
    }

    /// How many rotations were asked for so far; a writer rotates when it sees this change.
    pub fn rotation_requested(&self) -> u64 {
        self.rotation.load(Ordering::Acquire)
    }

    /// Closed segments still kept.
    pub fn closed_count(&self) -> usize {
        self.closed.lock().len()
    }

    /// Removes every closed segment whose records all have commit numbers below `commit`.
    /// Returns how many went. A segment that cannot be removed stays listed (and replay skips
    /// its records anyway, since they are below the persisted commit).
    fn remove_below(&self, commit: u64) -> usize {
        let due: Vec<ClosedSegment> = {
            let mut closed = self.closed.lock();
            let (due, keep) = closed.drain(..).partition(|s| s.max_commit.is_none_or(|m| m < commit));
            *closed = keep;
            due
        };
        let mut removed = 0;
        let mut failed = Vec::new();
        for s in due {
            match std::fs::remove_file(&s.path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed += 1,
                Err(e) => {
                    tracing::warn!(segment = %s.path.display(), error = %e, "could not remove a persisted WAL segment");
                    failed.push(s);
                }
            }
        }
        self.closed.lock().extend(failed);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_segments_wholly_below_the_persisted_commit_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let r = WalRetention::new();
        let mut paths = Vec::new();
        for (i, max) in [Some(4), Some(9), None, Some(10)].into_iter().enumerate() {
            let p = dir.path().join(format!("{i}.wal"));
            std::fs::write(&p, b"x").unwrap();
            r.closed(p.clone(), max);
            paths.push(p);
        }
        assert_eq!(r.persisted_below(10), 3);
        assert!(!paths[0].exists() && !paths[1].exists() && !paths[2].exists());
        assert!(paths[3].exists(), "commit 10 is not below 10");
        assert_eq!(r.closed_count(), 1);
    }

    #[test]
    fn invariant_9_segments_a_wal_trigger_still_needs_are_kept_after_they_are_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let r = WalRetention::new();
        let mut paths = Vec::new();
        for (i, max) in [Some(4), Some(9), Some(14)].into_iter().enumerate() {
            let p = dir.path().join(format!("{i}.wal"));
            std::fs::write(&p, b"x").unwrap();
            r.closed(p.clone(), max);
            paths.push(p);
        }
        // A trigger's cursor is at 5: commits 5..9 are persisted but not yet handled by it.
        assert_eq!(r.hold_from(5), 0);
        assert_eq!(r.bytes_from(5), 2, "segments up to 9 and 14 hold commits from 5 on");
        assert_eq!(r.persisted_below(20), 1);
        assert!(!paths[0].exists() && paths[1].exists() && paths[2].exists());
        // It catches up to 12; no trigger at all then.
        assert_eq!(r.hold_from(12), 1);
        assert!(paths[2].exists());
        assert_eq!(r.hold_from(u64::MAX), 1);
        assert_eq!(r.closed_count(), 0);
    }

    #[test]
    fn rotation_requests_are_counted() {
        let r = WalRetention::new();
        let seen = r.rotation_requested();
        r.request_rotation();
        assert_ne!(r.rotation_requested(), seen);
    }
}
