//! One ingest shard: the write state of one core and its group-commit loop.
//!
//! A write is validated ([`crate::write::prepare`]), its accepted lines are appended to the
//! shard's open WAL record and to per-table Arrow builders, and the writer waits for the commit.
//! The loop commits whenever something is pending and the WAL is idle (group commit: whatever
//! arrives during one WAL write goes into the next): it seals the record, writes it durably
//! (`O_DSYNC`), moves the batches into the write buffer, and acks every writer of that
//! commit. If the WAL write fails, that commit's writers get the error and its rows are dropped
//! unseen: nothing is acked that is not durable.
//!
//! Each commit's batches also go to the [`CommitLog`], which the processing engine reads on
//! its own clock (`--wal-flush-interval`): nothing the engine does can make a shard wait. A
//! write never waits for that clock either (it used to, and a 1 s interval capped each
//! connection at one request a second).
//!
//! It lives on one glommio executor (`Rc`, `RefCell`): it never blocks on a lock held by
//! another thread on the hot path and never runs Python or SQL.
//!
//! Budget per commit: one synchronous (`O_DSYNC`) write (~50 µs–2 ms on SSD), batch building at
//! ~10 M values/s, and O(tables) hand-offs.

// Shard code: no call here may block the thread (clippy.toml lists the calls).
#![deny(clippy::disallowed_methods)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures_channel::oneshot;

use crate::batch::TableBuilder;
use crate::buffer::WriteBuffer;
use crate::catalog::Catalog;
use crate::commit_log::{CommitLog, TableBatch};
use crate::stats::WriteStats;
use crate::wal::{RecordBuf, SegmentWriter, WalError};
use crate::write::{prepare, LineReject, Precision, PrepareError};

/// A write as the HTTP layer hands it over.
pub struct WriteRequest<'a> {
    pub db: &'a str,
    pub body: &'a [u8],
    pub precision: Precision,
    pub accept_partial: bool,
    pub no_sync: bool,
    pub default_time_ns: i64,
}

/// Why a flush could not be acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FlushError {
    /// No room on the disk: nothing of the write was kept, and it may be sent again once there
    /// is room (the shard goes on taking writes).
    #[error("the disk is full and nothing of this write was kept ({0}); send it again once there is room")]
    DiskFull(String),
    /// The WAL failed otherwise; the shard takes no more writes.
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error("the shard has {0} bytes waiting for the WAL; try again shortly")]
    Busy(usize),
    #[error("the write buffer holds {held} bytes, at its cap of {cap} (--max-buffer-bytes); try again once persistence catches up")]
    BufferFull { held: usize, cap: usize },
    #[error("this shard stopped taking writes after a failed WAL write ({0}); restart the server once the disk is healthy")]
    WalFailed(String),
}

/// What a write did before its flush: lines taken, lines refused, and the ack to wait for.
pub struct Accepted {
    pub lines_written: usize,
    pub rejects: Vec<LineReject>,
    /// `None` when nothing was written or `no_sync` was asked for.
    pub durable: Option<oneshot::Receiver<Result<(), FlushError>>>,
}

/// A bound on what one shard holds between flushes.
pub const MAX_PENDING_BYTES: usize = 512 << 20;

#[derive(Default)]
struct Pending {
    record: RecordBuf,
    builders: HashMap<(u32, u32), TableBuilder>,
    waiters: Vec<oneshot::Sender<Result<(), FlushError>>>,
}

pub struct Shard {
    pub id: usize,
    catalog: Arc<Catalog>,
    buffer: Arc<WriteBuffer>,
    /// Where each commit's batches go for the WAL triggers.
    log: Arc<CommitLog>,
    pending: RefCell<Pending>,
    /// The commit loop, parked until a write makes something pending.
    waiting: Cell<Option<Waker>>,
    stats: Arc<WriteStats>,
    /// Rows each table had in the last commit that wrote it: its next builder starts with room
    /// for as many (up to [`MAX_PRESIZED_ROWS`]).
    last_rows: RefCell<HashMap<(u32, u32), usize>>,
    /// Set by the first failed WAL write: after it the kernel may have dropped pages it said
    /// were written (PostgreSQL's "fsyncgate"), so nothing more is taken.
    wal_failed: RefCell<Option<String>>,
}

/// A builder is never sized up front for more rows than this; past it, it grows as it fills.
const MAX_PRESIZED_ROWS: usize = 64 * 1024;

impl Shard {
    pub fn new(id: usize, catalog: Arc<Catalog>, buffer: Arc<WriteBuffer>, log: Arc<CommitLog>, stats: Arc<WriteStats>) -> Shard {
        Shard {
            id,
            catalog,
            buffer,
            log,
            pending: RefCell::new(Pending::default()),
            waiting: Cell::new(None),
            stats,
            last_rows: RefCell::new(HashMap::new()),
            wal_failed: RefCell::new(None),
        }
    }

    /// Validates and stages a write for the next flush. Synchronous: nothing else on this
    /// shard runs between the check and the append.
    pub fn write(&self, req: &WriteRequest<'_>) -> Result<Accepted, WriteError> {
        if let Some(e) = &*self.wal_failed.borrow() {
            return Err(WriteError::WalFailed(e.clone()));
        }
        let pending_bytes = self.pending.borrow().record.len_bytes();
        if pending_bytes > MAX_PENDING_BYTES {
            return Err(WriteError::Busy(pending_bytes));
        }
        if let Some(held) = self.buffer.over_cap() {
            return Err(WriteError::BufferFull { held, cap: self.buffer.cap_bytes() });
        }
        let prepared = prepare(&self.catalog, req.db, req.body, req.precision, req.default_time_ns, req.accept_partial)?;
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.requests.fetch_add(1, Relaxed);
        self.stats.bytes.fetch_add(req.body.len() as u64, Relaxed);
        self.stats.lines.fetch_add(prepared.good.len() as u64, Relaxed);
        self.stats.rejected_lines.fetch_add(prepared.rejects.len() as u64, Relaxed);
        if prepared.good.is_empty() {
            return Ok(Accepted { lines_written: 0, rejects: prepared.rejects, durable: None });
        }
        let mut p = self.pending.borrow_mut();
        let p = &mut *p;
        let at = p.record.begin_entry(prepared.db_id, req.precision, req.default_time_ns);
        let db_name: Arc<str> = Arc::from(prepared.db_name.as_str());
        // Lines of one table come in runs; each run finds its builder once.
        for run in prepared.good.chunk_by(|a, b| a.table == b.table) {
            let table = &prepared.tables[run[0].table];
            let key = (prepared.db_id, table.id);
            let b = p.builders.entry(key).or_insert_with(|| {
                let rows = self.last_rows.borrow().get(&key).copied().unwrap_or(0).min(MAX_PRESIZED_ROWS);
                TableBuilder::with_capacity(prepared.db_id, db_name.clone(), table.clone(), rows)
            });
            for g in run {
                p.record.push_series_line(g.series_id, g.line.series, g.text);
                b.append(&g.line, g.time_ns, g.same_shape, g.series_id);
            }
        }
        p.record.end_entry(at);
        if let Some(w) = self.waiting.take() {
            w.wake();
        }
        let durable = if req.no_sync {
            None
        } else {
            let (tx, rx) = oneshot::channel();
            p.waiters.push(tx);
            Some(rx)
        };
        Ok(Accepted { lines_written: prepared.good.len(), rejects: prepared.rejects, durable })
    }

    /// Commits what is pending: WAL, then buffer and commit log, then acks. Returns the batches.
    pub async fn flush(&self, wal: &mut SegmentWriter) -> Vec<TableBatch> {
        let p = {
            let mut pending = self.pending.borrow_mut();
            if pending.record.is_empty() {
                return Vec::new();
            }
            // Room for twice the last record: commits vary with how many writes arrive during a
            // sync, and a multi-megabyte record that must grow is copied into fresh memory.
            let next = Pending { record: RecordBuf::with_capacity(2 * pending.record.len_bytes()), ..Pending::default() };
            std::mem::replace(&mut *pending, next)
        };
        use std::sync::atomic::Ordering::Relaxed;
        let commit = self.buffer.begin_commit();
        // The epoch field of the record is kept for the format; commits order everything now.
        let record = p.record.seal(0, commit);
        let record_bytes = record.len() as u64;
        let started = Instant::now();
        let appended = wal.append(record, commit).await;
        self.stats.wal_flush.observe_ns(started.elapsed().as_nanos() as u64);
        if let Err(e) = appended {
            self.buffer.end_commit(commit);
            self.stats.wal_flush_errors.fetch_add(1, Relaxed);
            let err = match e {
                // The segment was cut back to its last whole record: these writes are refused,
                // and the next flush tries again (it succeeds once there is room).
                WalError::Full(detail) => {
                    tracing::error!(shard = self.id, error = %detail, "the disk is full: a WAL write failed and its writes are refused; writes go on once there is room");
                    FlushError::DiskFull(detail)
                }
                e => {
                    tracing::error!(shard = self.id, error = %e, "WAL write failed; its writes are refused and this shard takes no more");
                    *self.wal_failed.borrow_mut() = Some(e.to_string());
                    // Writes staged during the failed write are refused too.
                    let staged = std::mem::take(&mut *self.pending.borrow_mut());
                    let err = FlushError::Failed(e.to_string());
                    for w in staged.waiters {
                        let _ = w.send(Err(err.clone()));
                    }
                    err
                }
            };
            for w in p.waiters {
                let _ = w.send(Err(err.clone()));
            }
            return Vec::new();
        }
        self.stats.wal_flushes.fetch_add(1, Relaxed);
        self.stats.wal_bytes.fetch_add(record_bytes, Relaxed);
        let mut out = Vec::with_capacity(p.builders.len());
        let mut last_rows = self.last_rows.borrow_mut();
        for ((db_id, table_id), b) in p.builders {
            last_rows.insert((db_id, table_id), b.rows());
            let db_name = b.db_name.clone();
            let table_name: Arc<str> = Arc::from(b.table.name.as_str());
            match b.finish() {
                Ok(batch) => {
                    self.buffer.append(db_id, table_id, batch.clone(), commit);
                    out.push(TableBatch { db_id, db_name, table_name, batch, commit });
                }
                // Durable in the WAL but not buildable: a bug. Replay will rebuild it on restart.
                Err(e) => tracing::error!(shard = self.id, error = %e, "could not build a batch from a flush"),
            }
        }
        // Before the commit settles: a reader of the settled range finds it here.
        self.log.append(commit, &out);
        self.buffer.end_commit(commit);
        for w in p.waiters {
            let _ = w.send(Ok(()));
        }
        out
    }

    /// The group-commit loop: commits whenever something is pending. Runs forever.
    pub async fn run_flusher(self: std::rc::Rc<Self>, mut wal: SegmentWriter) {
        loop {
            if self.pending.borrow().record.is_empty() {
                PendingWrite { shard: &self }.await;
            }
            self.flush(&mut wal).await;
        }
    }
}

/// Resolves once the shard has something to commit.
struct PendingWrite<'a> {
    shard: &'a Shard,
}

impl Future for PendingWrite<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shard.pending.borrow().record.is_empty() {
            self.shard.waiting.set(Some(cx.waker().clone()));
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}
