//! The recent commits in memory, by commit number: what WAL triggers read "everything after my
//! cursor" from while they keep up.
//!
//! A shard appends each commit's batches here (the same `Arc`ed columns the write buffer holds,
//! never a copy of row data) after its WAL record is durable and before the commit is settled
//! ([`crate::buffer::WriteBuffer::end_commit`]). A reader asks for the commits in
//! `[from, to)`, `to` being at most the settled frontier
//! ([`crate::buffer::WriteBuffer::settled`]), so every commit of the range that wrote rows is
//! here, unless the range starts below [`CommitLog::start`]: then it is read back from the WAL
//! ([`crate::wal_read`]).
//!
//! Bounded in bytes: past the bound the oldest commits are dropped and `start` moves past them,
//! never blocking a shard; a trigger that falls that far behind reads the WAL instead. Commits
//! every WAL trigger has completed are dropped too ([`CommitLog::trim_below`]).
//!
//! It never decides what is durable and never reads or writes files.

// Shard code: no call here may block the thread (clippy.toml lists the calls).
#![deny(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;

use crate::buffer::batch_bytes;

/// One table's rows of one commit (or, read back from the WAL, of a run of commits).
#[derive(Debug, Clone)]
pub struct TableBatch {
    pub db_id: u32,
    pub db_name: Arc<str>,
    pub table_name: Arc<str>,
    pub batch: RecordBatch,
    /// The commit that made these rows durable (the last one, for rows of several): a write
    /// acked before another was sent has the lower number, whichever shards took them.
    pub commit: u64,
}

/// The rows one call of a WAL trigger handles: every row it wants of the commits in
/// `[from, through)`, in commit order.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub from: u64,
    pub through: u64,
    pub tables: Vec<TableBatch>,
}

impl Delivery {
    pub fn rows(&self) -> usize {
        self.tables.iter().map(|t| t.batch.num_rows()).sum()
    }
}

/// What [`CommitLog::read`] found.
#[derive(Debug, Default)]
pub struct Read {
    /// The wanted rows, in commit order.
    pub tables: Vec<TableBatch>,
    /// The first commit not covered: the caller's cursor moves here once the rows are handled.
    pub through: u64,
}

struct Inner {
    commits: BTreeMap<u64, Vec<TableBatch>>,
    bytes: usize,
    /// Every settled commit at or above this that wrote rows is in `commits`.
    start: u64,
}

pub struct CommitLog {
    inner: Mutex<Inner>,
    cap_bytes: usize,
}

impl CommitLog {
    /// An empty log whose commits begin at `start` (the next commit number to be drawn), holding
    /// at most about `cap_bytes` of batches.
    pub fn new(start: u64, cap_bytes: usize) -> CommitLog {
        CommitLog { inner: Mutex::new(Inner { commits: BTreeMap::new(), bytes: 0, start }), cap_bytes }
    }

    /// Commits below this are not in memory: read them from the WAL.
    pub fn start(&self) -> u64 {
        self.inner.lock().start
    }

    /// Bytes of batches held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Adds commit `commit`'s batches. Called once per commit, before the commit is settled.
    pub fn append(&self, commit: u64, tables: &[TableBatch]) {
        if tables.is_empty() {
            return;
        }
        let bytes: usize = tables.iter().map(|t| batch_bytes(&t.batch)).sum();
        let mut g = self.inner.lock();
        if commit < g.start {
            // Trimmed or evicted past already: readers of it go to the WAL.
            return;
        }
        g.bytes += bytes;
        g.commits.insert(commit, tables.to_vec());
        while g.bytes > self.cap_bytes {
            let Some((c, parts)) = g.commits.pop_first() else { break };
            g.bytes -= parts.iter().map(|t| batch_bytes(&t.batch)).sum::<usize>();
            g.start = g.start.max(c + 1);
        }
    }

    /// Drops every commit below `commit`: no reader will ask for them again.
    pub fn trim_below(&self, commit: u64) {
        let mut g = self.inner.lock();
        if commit <= g.start {
            return;
        }
        let kept = g.commits.split_off(&commit);
        let dropped = std::mem::replace(&mut g.commits, kept);
        g.bytes -= dropped.values().flatten().map(|t| batch_bytes(&t.batch)).sum::<usize>();
        g.start = commit;
    }

    /// The rows `wants` picks from the commits in `[from, to)`, whole commits only, stopping
    /// before the commit that would take them past `max_rows` (the first commit with rows is
    /// always taken, however large). `None` when `from` is below [`CommitLog::start`]: the
    /// range must be read from the WAL.
    pub fn read(&self, from: u64, to: u64, max_rows: usize, wants: impl Fn(&TableBatch) -> bool) -> Option<Read> {
        let g = self.inner.lock();
        if from < g.start {
            return None;
        }
        let mut out = Read { tables: Vec::new(), through: to.max(from) };
        let mut rows = 0;
        for (&c, parts) in g.commits.range(from..to) {
            let more: usize = parts.iter().filter(|t| wants(t)).map(|t| t.batch.num_rows()).sum();
            if more == 0 {
                continue;
            }
            if rows > 0 && rows + more > max_rows {
                out.through = c;
                break;
            }
            rows += more;
            out.tables.extend(parts.iter().filter(|t| wants(t)).cloned());
        }
        Some(out)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn tb(table: &str, rows: i64, commit: u64) -> TableBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..rows))]).unwrap();
        TableBatch { db_id: 0, db_name: "db".into(), table_name: table.into(), batch, commit }
    }

    fn commits(r: &Read) -> Vec<u64> {
        r.tables.iter().map(|t| t.commit).collect()
    }

    #[test]
    fn a_read_covers_whole_commits_in_order_and_says_where_it_stopped() {
        let log = CommitLog::new(10, usize::MAX);
        // Shards append out of order; reads see commit order.
        log.append(12, &[tb("a", 5, 12)]);
        log.append(10, &[tb("a", 5, 10), tb("b", 1, 10)]);
        log.append(11, &[tb("b", 3, 11)]);
        let all = log.read(10, 13, 100, |_| true).unwrap();
        assert_eq!(commits(&all), vec![10, 10, 11, 12]);
        assert_eq!(all.through, 13);
        // Only table a, at most 6 rows: commit 10 (5 rows) fits, commit 12 would pass the cap.
        let a = log.read(10, 13, 6, |t| &*t.table_name == "a").unwrap();
        assert_eq!((commits(&a), a.through), (vec![10], 12));
        // The rest, from where it stopped.
        let rest = log.read(a.through, 13, 6, |t| &*t.table_name == "a").unwrap();
        assert_eq!((commits(&rest), rest.through), (vec![12], 13));
        // A first commit larger than the cap is still taken whole.
        let big = log.read(10, 13, 1, |_| true).unwrap();
        assert_eq!((commits(&big), big.through), (vec![10, 10], 11));
        // Nothing wanted: the cursor may still move to the end.
        let none = log.read(10, 13, 100, |t| &*t.table_name == "c").unwrap();
        assert!(none.tables.is_empty());
        assert_eq!(none.through, 13);
        // Only up to `to`: commit 12 is not settled yet for this reader.
        let early = log.read(10, 12, 100, |_| true).unwrap();
        assert_eq!((commits(&early), early.through), (vec![10, 10, 11], 12));
    }

    #[test]
    fn below_the_start_a_read_must_go_to_the_wal() {
        let log = CommitLog::new(5, usize::MAX);
        assert!(log.read(4, 6, 10, |_| true).is_none());
        log.append(5, &[tb("a", 1, 5)]);
        log.append(6, &[tb("a", 1, 6)]);
        log.trim_below(6);
        assert_eq!(log.start(), 6);
        assert!(log.read(5, 7, 10, |_| true).is_none());
        assert_eq!(commits(&log.read(6, 7, 10, |_| true).unwrap()), vec![6]);
        // A commit appended below the start (trimmed past) is not kept.
        log.append(5, &[tb("a", 1, 5)]);
        assert_eq!(log.read(6, 7, 10, |_| true).unwrap().tables.len(), 1);
    }

    #[test]
    fn past_its_byte_bound_the_log_drops_the_oldest_commits_and_moves_its_start() {
        let one = batch_bytes(&tb("a", 1000, 0).batch);
        let log = CommitLog::new(0, one * 3);
        for c in 0..5 {
            log.append(c, &[tb("a", 1000, c)]);
        }
        assert!(log.bytes() <= one * 3);
        assert_eq!(log.start(), 2);
        assert!(log.read(1, 5, usize::MAX, |_| true).is_none());
        assert_eq!(commits(&log.read(2, 5, usize::MAX, |_| true).unwrap()), vec![2, 3, 4]);
        log.trim_below(4);
        assert_eq!(log.bytes(), one);
    }
}
