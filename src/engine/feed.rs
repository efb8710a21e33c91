//! WAL triggers read from the log: each keeps a cursor (the first commit it has not
//! completed) and, whenever it is free, is handed everything after it.
//!
//! Nothing is pushed at a trigger. On every tick of `--wal-flush-interval` the feeder thread
//! (`weir-engine-feed`) reads the settled frontier ([`WriteBuffer::settled`]: every commit below
//! it is durable and in the buffer) and, for each WAL trigger with no call running, takes the
//! rows it wants of the commits in `[cursor, frontier)`: from the in-memory
//! [`CommitLog`] if the range is still there, else from the WAL on disk, on an executor with the
//! GIL released ([`Work::Read`]), so the feeder never waits on a disk. A call gets at most
//! `--trigger-max-batch-rows` rows (whole commits), so a trigger that fell behind catches up in
//! bounded calls, one right after another, and never holds up writes or other triggers: there
//! is no queue between the shards and the engine to fill, only the log, which drops what it
//! cannot hold (the WAL still has it).
//!
//! Cursors move when a call completes (or is given up under the `log` and `retry` error
//! behaviours, as before); they are saved by the saver thread (`weir-engine-cursors`, see
//! [`super::cursors`]), and WAL segments are released for removal only below the lowest saved
//! cursor of the enabled WAL triggers (DESIGN.md invariant 9: at-least-once across crashes).
//! A trigger behind by more than `--trigger-max-lag` is marked `lagging` and logged, never
//! advanced by itself; disabling and enabling it again starts it at the current commit.
//!
//! It never runs plugin code itself.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use pipeline::commit_log::{CommitLog, Delivery, Read, TableBatch};
use pipeline::wal_read::WalReader;
use pyo3::prelude::*;

use super::cursors::{Cursors, SAVE_EVERY};
use super::dispatch::Event;
use super::executor::Work;
use super::runner::Runner;
use super::Inner;
use crate::plugin_logs::LogLevel;

/// Calls of one `run_async` WAL trigger handed and not yet completed, at most.
pub const MAX_ASYNC_WAL_CALLS: usize = 64;
/// Frontier marks kept for lag times; past it, every other one is dropped (coarser, still
/// bounded).
const MAX_MARKS: usize = 16 * 1024;

/// How far behind a WAL trigger may fall before it is marked lagging (`--trigger-max-lag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxLag {
    None,
    /// Its oldest unhandled rows were committed longer ago than this.
    Time(Duration),
    /// It holds more than this many bytes of closed WAL segments.
    Bytes(u64),
}

/// Where one WAL trigger is in the log.
pub(super) struct Feed {
    /// The first commit not yet handed to a call.
    pub(super) handed: u64,
    /// Calls handed and not completed: first commit to the commit after their last.
    pub(super) open: BTreeMap<u64, u64>,
    /// A synchronous trigger's call in progress (kept, the same rows, for retries).
    pub(super) call: Option<Arc<Delivery>>,
    /// A read of the WAL is queued or running for it.
    pub(super) reading: bool,
    /// Its place in the WAL, kept between reads while it is behind the commit log.
    pub(super) reader: Option<WalReader>,
    /// Past `--trigger-max-lag` (logged when it went past, and when it came back).
    pub(super) lagging: bool,
}

impl Feed {
    pub(super) fn new(next: u64) -> Feed {
        Feed { handed: next, open: BTreeMap::new(), call: None, reading: false, reader: None, lagging: false }
    }

    /// The first commit this trigger has not completed: its cursor.
    pub(super) fn cursor(&self) -> u64 {
        self.open.keys().next().copied().unwrap_or(self.handed)
    }

    /// A call is open or a read is on its way.
    pub(super) fn busy(&self) -> bool {
        self.reading || !self.open.is_empty()
    }

    /// What this trigger gets next from the commits below `frontier`: nothing (it is not free,
    /// or has nothing waiting), a call read from `log`, or a read of the WAL (the range is no
    /// longer in the log; [`Feed::reading`] is set until it is done). A range with nothing the
    /// trigger wants moves its cursor without a call.
    pub(super) fn next(&mut self, log: &CommitLog, frontier: u64, max_rows: usize, run_async: bool, wants: impl Fn(&TableBatch) -> bool) -> Next {
        loop {
            let free = if run_async { self.open.len() < MAX_ASYNC_WAL_CALLS } else { self.open.is_empty() };
            if self.reading || !free || self.handed >= frontier {
                return Next::Nothing;
            }
            let Some(read) = log.read(self.handed, frontier, max_rows, &wants) else {
                self.reading = true;
                return Next::ReadWal;
            };
            if let Some(d) = self.take(read, run_async) {
                return Next::Call(d);
            }
        }
    }

    /// Turns rows read after the cursor into the trigger's next call (`None` if it wanted none
    /// of them: the cursor just moves past).
    pub(super) fn take(&mut self, read: Read, run_async: bool) -> Option<Arc<Delivery>> {
        let from = self.handed;
        self.handed = read.through.max(from);
        if read.tables.is_empty() {
            return None;
        }
        let d = Arc::new(Delivery { from, through: self.handed, tables: read.tables });
        self.open.insert(from, self.handed);
        if !run_async {
            self.call = Some(d.clone());
        }
        Some(d)
    }

    /// A call is over (done, or given up): its rows count as completed.
    pub(super) fn done(&mut self, d: &Delivery) {
        self.open.remove(&d.from);
        if self.call.as_ref().is_some_and(|c| c.from == d.from) {
            self.call = None;
        }
    }
}

/// What [`Feed::next`] found for a trigger.
pub(super) enum Next {
    Nothing,
    Call(Arc<Delivery>),
    ReadWal,
}

/// When each frontier was first seen: how long a cursor has been behind.
#[derive(Default)]
pub(super) struct Marks(VecDeque<(u64, Instant)>);

impl Marks {
    fn note(&mut self, frontier: u64, now: Instant) {
        if self.0.back().is_none_or(|&(f, _)| f < frontier) {
            self.0.push_back((frontier, now));
        }
        if self.0.len() > MAX_MARKS {
            let kept: VecDeque<_> = self.0.iter().copied().step_by(2).collect();
            self.0 = kept;
        }
    }

    /// Seconds since the oldest commit at or after `cursor` was first seen settled (0 if none).
    pub(super) fn lag(&self, cursor: u64, now: Instant) -> f64 {
        self.0.iter().find(|&&(f, _)| f > cursor).map_or(0.0, |&(_, at)| now.saturating_duration_since(at).as_secs_f64())
    }

    /// Forgets marks no cursor at or above `floor` needs.
    fn trim(&mut self, floor: u64) {
        while self.0.len() > 1 && self.0[1].0 <= floor {
            self.0.pop_front();
        }
    }
}

impl Inner {
    /// The running WAL triggers.
    pub(super) fn wal_runners(&self) -> Vec<Arc<Runner>> {
        self.runners.read().values().filter(|r| r.feed.is_some()).cloned().collect()
    }

    /// Hands `r` its next call (or, async, calls) if it is free and commits below `frontier`
    /// wait for it; queues a WAL read if they are no longer in the commit log.
    pub(super) fn feed(&self, r: &Arc<Runner>, frontier: u64) {
        let Some(feed) = &r.feed else { return };
        let mut f = feed.lock();
        loop {
            if r.stopped.load(Ordering::Acquire) || r.paused.load(Ordering::Acquire) {
                return;
            }
            match f.next(&self.log, frontier, self.max_batch_rows, r.def.run_async, |t| r.wants(&t.db_name, &t.table_name)) {
                Next::Nothing => return,
                Next::ReadWal => {
                    drop(f);
                    self.send(Work::Read(r.clone()));
                    return;
                }
                Next::Call(d) => {
                    if !self.send_call(r, d) {
                        return;
                    }
                }
            }
        }
    }

    /// Sends a handed call to the executors; returns whether more may be handed now.
    fn send_call(&self, r: &Arc<Runner>, d: Arc<Delivery>) -> bool {
        if r.def.run_async {
            r.in_flight.fetch_add(1, Ordering::AcqRel);
            self.send(Work::Async { runner: r.clone(), event: Event::Wal(d), attempt: 0 });
            true
        } else {
            self.send(Work::Sync(r.clone()));
            false
        }
    }

    /// On an executor: reads the WAL for a trigger behind the commit log, with the GIL
    /// released, then hands the call.
    pub(super) fn read_wal(&self, py: Python<'_>, r: Arc<Runner>) {
        let Some(feed) = &r.feed else { return };
        let frontier = self.tick_frontier.load(Ordering::Acquire);
        let (kept, from) = {
            let mut f = feed.lock();
            (f.reader.take(), f.handed)
        };
        let mut reader = kept.filter(|k| k.position() == from).unwrap_or_else(|| WalReader::new(&self.wal_root, from));
        let read = py.detach(|| {
            reader.read(&self.catalog, frontier, self.max_batch_rows, |db, table| r.wants(db, table))
        });
        let mut f = feed.lock();
        f.reading = false;
        match read {
            Ok(read) => {
                f.reader = Some(reader);
                let call = f.take(read, r.def.run_async);
                drop(f);
                if r.stopped.load(Ordering::Acquire) {
                    return;
                }
                if call.is_none_or(|d| self.send_call(&r, d)) {
                    self.feed(&r, frontier);
                }
            }
            Err(e) => {
                drop(f);
                // Tried again at the next tick.
                let msg = format!("could not read the WAL for this trigger's rows after commit {from}: {e}");
                self.services.logs.push(&r.db, &r.def.name, LogLevel::Error, msg);
            }
        }
    }

    /// A WAL trigger's call is over (done, or given up): its rows are completed. Rows up to the
    /// last tick follow at once, so a trigger that is behind catches up call after call.
    pub(super) fn complete(&self, r: &Arc<Runner>, d: &Delivery) {
        let Some(feed) = &r.feed else { return };
        feed.lock().done(d);
        self.feed(r, self.tick_frontier.load(Ordering::Acquire));
    }

    /// The cursors of the running WAL triggers.
    pub(super) fn cursors(&self) -> Cursors {
        self.wal_runners()
            .iter()
            .filter_map(|r| r.feed.as_ref().map(|f| ((r.db.clone(), r.def.name.clone()), f.lock().cursor())))
            .collect()
    }

    /// Saves the cursors, then lets the WAL go below the lowest of them. Unchanged cursors
    /// are neither written nor told to the retention again (persists release the WAL below
    /// the floor already set).
    pub(super) fn save_cursors(&self) {
        let cursors = self.cursors();
        match self.cursor_store.save(&cursors) {
            Ok(false) => {}
            Ok(true) => {
                let floor = cursors.values().copied().min().unwrap_or(u64::MAX);
                self.retention.hold_from(floor);
            }
            Err(e) => tracing::error!(error = %e, "could not save trigger cursors; the WAL they need is kept"),
        }
    }

    /// Marks triggers behind by more than `--trigger-max-lag` as lagging, and back.
    fn check_lag(&self, runners: &[Arc<Runner>], now: Instant) {
        if self.max_lag == MaxLag::None {
            return;
        }
        let marks = self.marks.lock();
        for r in runners {
            let Some(feed) = &r.feed else { continue };
            let mut f = feed.lock();
            let cursor = f.cursor();
            let (over, how) = match self.max_lag {
                MaxLag::None => (false, String::new()),
                MaxLag::Time(max) => {
                    let lag = marks.lag(cursor, now);
                    (lag > max.as_secs_f64(), format!("its oldest unhandled rows are {lag:.0} s old, past --trigger-max-lag ({} s)", max.as_secs()))
                }
                MaxLag::Bytes(max) => {
                    let held = self.retention.bytes_from(cursor);
                    (held > max, format!("it holds {held} bytes of WAL, past --trigger-max-lag ({max} bytes)"))
                }
            };
            if over != f.lagging {
                f.lagging = over;
                let (level, msg) = if over {
                    (LogLevel::Warn, format!(
                        "trigger is lagging: {how}; its rows are kept until it catches up (disable and enable it to skip to now)"
                    ))
                } else {
                    (LogLevel::Info, "trigger caught up; no longer lagging".to_string())
                };
                tracing::warn!(db = %r.db, trigger = %r.def.name, "{msg}");
                self.services.logs.push(&r.db, &r.def.name, level, msg);
            }
        }
    }

    /// One tick: the frontier is read, free triggers are fed, then the bookkeeping (lag marks,
    /// the log trimmed), so nothing stands between a settled commit and its call.
    pub(super) fn tick(&self) {
        let now = Instant::now();
        let frontier = self.buffer.settled();
        self.tick_frontier.fetch_max(frontier, Ordering::AcqRel);
        let runners = self.wal_runners();
        for r in &runners {
            self.feed(r, frontier);
        }
        let floor = runners.iter().filter_map(|r| r.feed.as_ref().map(|f| f.lock().cursor())).min().unwrap_or(frontier);
        self.log.trim_below(floor);
        {
            let mut marks = self.marks.lock();
            marks.note(frontier, now);
            marks.trim(floor);
        }
        self.check_lag(&runners, now);
    }
}

/// The feeder: one [`Inner::tick`] per `interval`, aligned to its start, or sooner when woken.
pub(super) fn feed_loop(inner: Arc<Inner>, interval: Duration, wake: Receiver<()>) {
    let start = Instant::now();
    let interval_ns = interval.as_nanos().max(1);
    loop {
        let ticks = Instant::now().saturating_duration_since(start).as_nanos() / interval_ns;
        let due = start + Duration::from_nanos(((ticks + 1) * interval_ns) as u64);
        match wake.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => inner.tick(),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The saver: moved cursors are saved every [`SAVE_EVERY`].
pub(super) fn save_loop(inner: Arc<Inner>) {
    loop {
        std::thread::sleep(SAVE_EVERY);
        inner.save_cursors();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_the_first_commit_of_the_oldest_open_call_or_the_first_not_handed() {
        let mut f = Feed::new(10);
        assert_eq!(f.cursor(), 10);
        f.open.insert(10, 14);
        f.open.insert(14, 20);
        f.handed = 20;
        assert_eq!(f.cursor(), 10, "async calls 10..14 and 14..20 are open");
        f.open.remove(&14);
        assert_eq!(f.cursor(), 10, "a later call done first does not move the cursor");
        f.open.remove(&10);
        assert_eq!(f.cursor(), 20);
    }

    fn tb(table: &str, commit: u64) -> TableBatch {
        use arrow::array::Int64Array;
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = arrow::record_batch::RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![commit as i64]))]).unwrap();
        TableBatch { db_id: 0, db_name: "db".into(), table_name: table.into(), batch, commit }
    }

    fn call(n: Next) -> Arc<Delivery> {
        match n {
            Next::Call(d) => d,
            Next::Nothing => panic!("expected a call, got nothing"),
            Next::ReadWal => panic!("expected a call, got a WAL read"),
        }
    }

    fn commits(d: &Delivery) -> Vec<u64> {
        d.tables.iter().map(|t| t.commit).collect()
    }

    #[test]
    fn a_sync_trigger_has_one_call_open_and_its_cursor_moves_only_when_it_completes() {
        let log = CommitLog::new(0, usize::MAX);
        for c in 0..6 {
            log.append(c, &[tb(if c == 2 { "other" } else { "cpu" }, c)]);
        }
        let cpu = |t: &TableBatch| &*t.table_name == "cpu";
        let mut f = Feed::new(0);
        // Frontier 4: commits 0..4 are settled; at most 2 rows a call.
        let first = call(f.next(&log, 4, 2, false, cpu));
        // Commit 2 holds only another table: passed over, up to the commit that did not fit.
        assert_eq!((commits(&first), first.from, first.through), (vec![0, 1], 0, 3));
        assert!(matches!(f.next(&log, 4, 2, false, cpu), Next::Nothing), "one call open at a time");
        assert_eq!(f.cursor(), 0, "not completed yet");
        f.done(&first);
        assert_eq!(f.cursor(), 3);
        let second = call(f.next(&log, 4, 2, false, cpu));
        assert_eq!((commits(&second), second.from, second.through), (vec![3], 3, 4));
        f.done(&second);
        assert!(matches!(f.next(&log, 4, 2, false, cpu), Next::Nothing), "caught up with the frontier");
        // The frontier moves to 6: commits 4 and 5 come in one call.
        let third = call(f.next(&log, 6, 10, false, cpu));
        assert_eq!(commits(&third), vec![4, 5]);
    }

    #[test]
    fn nothing_wanted_moves_the_cursor_without_a_call() {
        let log = CommitLog::new(0, usize::MAX);
        log.append(0, &[tb("other", 0)]);
        log.append(1, &[tb("other", 1)]);
        let mut f = Feed::new(0);
        assert!(matches!(f.next(&log, 2, 10, false, |t| &*t.table_name == "cpu"), Next::Nothing));
        assert_eq!(f.cursor(), 2, "the WAL below 2 is not held for this trigger");
    }

    #[test]
    fn behind_the_commit_log_a_trigger_reads_the_wal_once_at_a_time() {
        let log = CommitLog::new(5, usize::MAX);
        let mut f = Feed::new(3);
        assert!(matches!(f.next(&log, 8, 10, false, |_| true), Next::ReadWal));
        assert!(f.reading);
        assert!(matches!(f.next(&log, 8, 10, false, |_| true), Next::Nothing), "one read at a time");
        // The read comes back with commits 3 and 4 (from the WAL): a call, cursor unmoved.
        f.reading = false;
        let d = f.take(Read { tables: vec![tb("cpu", 3), tb("cpu", 4)], through: 5 }, false).unwrap();
        assert_eq!((d.from, d.through, f.cursor()), (3, 5, 3));
        f.done(&d);
        log.append(5, &[tb("cpu", 5)]);
        assert_eq!(commits(&call(f.next(&log, 8, 10, false, |_| true))), vec![5], "then from memory");
    }

    #[test]
    fn an_async_trigger_has_calls_open_up_to_its_bound_and_its_cursor_is_the_oldest() {
        let log = CommitLog::new(0, usize::MAX);
        for c in 0..(MAX_ASYNC_WAL_CALLS as u64 + 5) {
            log.append(c, &[tb("cpu", c)]);
        }
        let mut f = Feed::new(0);
        let mut calls = Vec::new();
        while let Next::Call(d) = f.next(&log, u64::MAX, 1, true, |_| true) {
            calls.push(d);
        }
        assert_eq!(calls.len(), MAX_ASYNC_WAL_CALLS);
        f.done(&calls[1]);
        assert_eq!(f.cursor(), 0, "call 0 is still open");
        f.done(&calls[0]);
        assert_eq!(f.cursor(), 2);
    }

    #[test]
    fn lag_counts_from_when_the_oldest_unhandled_commit_was_first_seen() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut m = Marks::default();
        m.note(5, at(0));
        m.note(5, at(1));
        m.note(9, at(2));
        m.note(12, at(3));
        let now = at(10);
        assert_eq!(m.lag(4, now), 10.0, "commit 4 was settled at the first mark");
        assert_eq!(m.lag(5, now), 8.0, "commit 5 first seen with frontier 9");
        assert_eq!(m.lag(11, now), 7.0);
        assert_eq!(m.lag(12, now), 0.0, "caught up");
        m.trim(9);
        assert_eq!(m.lag(9, now), 7.0);
    }
}
