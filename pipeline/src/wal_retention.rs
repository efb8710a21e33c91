//! Which WAL segments may go: closed segments and the highest commit each holds.
//!
//! A segment is removed only once persistence covers every record in it: the persister calls
//! [`WalRetention::remove_below`] with the commit number everything below which is durable in
//! Parquet and the file index. The open segment of a shard is never listed, so it is never
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
    /// `None`: the segment holds no record (nothing depends on it).
    max_commit: Option<u64>,
}

#[derive(Debug, Default)]
pub struct WalRetention {
    closed: Mutex<Vec<ClosedSegment>>,
    rotation: AtomicU64,
}

impl WalRetention {
    pub fn new() -> WalRetention {
        WalRetention::default()
    }

    /// Registers a segment no writer appends to any more.
    pub fn closed(&self, path: PathBuf, max_commit: Option<u64>) {
        self.closed.lock().push(ClosedSegment { path, max_commit });
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
    pub fn remove_below(&self, commit: u64) -> usize {
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
        assert_eq!(r.remove_below(10), 3);
        assert!(!paths[0].exists() && !paths[1].exists() && !paths[2].exists());
        assert!(paths[3].exists(), "commit 10 is not below 10");
        assert_eq!(r.closed_count(), 1);
    }

    #[test]
    fn rotation_requests_are_counted() {
        let r = WalRetention::new();
        let seen = r.rotation_requested();
        r.request_rotation();
        assert_ne!(r.rotation_requested(), seen);
    }
}
