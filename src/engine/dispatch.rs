//! Dispatch: hands each WAL flush to the triggers that want it, and queues events for a
//! trigger (a synchronous trigger's FIFO, or one work item per event for `run_async` ones).
//!
//! It never runs plugin code and never drops an event: a trigger [`TRIGGER_QUEUE_EVENTS`]
//! behind makes the dispatcher wait.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use pipeline::queue::{TableBatch, WalFlush};

use super::executor::Work;
use super::request;
use super::runner::Runner;
use super::{Engine, Inner};

/// Events a synchronous trigger may have waiting; past it, the dispatcher waits (back-pressure
/// on the flush queue, and from there on writers), it never drops an event.
pub const TRIGGER_QUEUE_EVENTS: usize = 10_000;

/// Something for a trigger to handle.
#[derive(Clone)]
pub enum Event {
    Wal(Arc<WalFlush>),
    /// A schedule tick; the scheduled instant in UTC nanoseconds.
    Schedule { call_time_ns: i64 },
    Request(Arc<request::RequestCall>),
}

/// What [`Inner::try_enqueue`] did with an event.
pub(super) enum Enqueued {
    Yes,
    /// The trigger is disabled or deleted: the event is dropped.
    Stopped,
    /// The trigger's queue is full: the event is handed back.
    Full(Event),
}

impl Engine {
    pub(super) fn dispatch_loop(&self, rx: Receiver<Arc<WalFlush>>) {
        for flush in rx.iter() {
            let runners: Vec<Arc<Runner>> = self.inner.runners.read().values().filter(|r| r.spec.is_wal()).cloned().collect();
            for r in runners {
                if let Some(event) = flush_for(&flush, &r) {
                    self.inner.enqueue(&r, Event::Wal(event));
                }
            }
        }
    }
}

impl Inner {
    /// Queues an event for a trigger, waiting while the trigger is [`TRIGGER_QUEUE_EVENTS`]
    /// behind: back-pressure, never a dropped event. Only for threads that may block.
    pub(super) fn enqueue(&self, r: &Arc<Runner>, mut event: Event) {
        loop {
            match self.try_enqueue(r, event) {
                Enqueued::Yes | Enqueued::Stopped => return,
                Enqueued::Full(e) => event = e,
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Queues an event for a trigger unless the trigger is stopped or full.
    pub(super) fn try_enqueue(&self, r: &Arc<Runner>, event: Event) -> Enqueued {
        if r.stopped.load(Ordering::Acquire) {
            return Enqueued::Stopped;
        }
        if r.def.run_async {
            // Reserved first, so concurrent callers cannot together pass the bound.
            if r.in_flight.fetch_add(1, Ordering::AcqRel) < TRIGGER_QUEUE_EVENTS {
                self.send(Work::Async { runner: r.clone(), event, attempt: 0 });
                return Enqueued::Yes;
            }
            r.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Enqueued::Full(event);
        }
        let mut st = r.state.lock();
        if st.queue.len() >= TRIGGER_QUEUE_EVENTS {
            return Enqueued::Full(event);
        }
        st.queue.push_back((Instant::now(), event));
        if !st.scheduled {
            st.scheduled = true;
            drop(st);
            self.send(Work::Sync(r.clone()));
        }
        Enqueued::Yes
    }
}

/// What a WAL flush holds for trigger `r`: `None` if nothing, else the flush itself, or a copy
/// without the batches committed before the trigger started (only around its start).
pub(super) fn flush_for(flush: &Arc<WalFlush>, r: &Runner) -> Option<Arc<WalFlush>> {
    let fresh = |t: &TableBatch| t.commit >= r.since_commit;
    let wanted = flush.tables.iter().any(|t| fresh(t) && wants(t, r));
    if !wanted {
        return None;
    }
    if flush.tables.iter().all(fresh) {
        return Some(flush.clone());
    }
    Some(Arc::new(WalFlush { epoch: flush.epoch, tables: flush.tables.iter().filter(|t| fresh(t)).cloned().collect() }))
}

/// Rows of `flush` that trigger `r` is given (its database, the tables its spec wants).
fn wanted_rows(flush: &WalFlush, r: &Runner) -> usize {
    flush.tables.iter().filter(|t| wants(t, r)).map(|t| t.batch.num_rows()).sum()
}

fn wants(t: &TableBatch, r: &Runner) -> bool {
    *t.db_name == *r.db && r.spec.wants_table(&t.table_name)
}

/// What a synchronous trigger's next call handles, and how many queued events that covers: the
/// front event, joined by the WAL flushes right behind it while the rows the trigger wants stay
/// within `max_rows`. So a trigger that falls behind catches up in fewer, larger calls (rows in
/// commit order, merged per table by `table_batches`) instead of one call per flush.
pub(super) fn next_call(queue: &VecDeque<(Instant, Event)>, r: &Runner, max_rows: usize) -> Option<(usize, Event)> {
    let (_, first) = queue.front()?;
    let Event::Wal(first_flush) = first else { return Some((1, first.clone())) };
    let mut rows = wanted_rows(first_flush, r);
    let mut n = 1;
    for (_, e) in queue.iter().skip(1) {
        let Event::Wal(f) = e else { break };
        let more = wanted_rows(f, r);
        if rows + more > max_rows {
            break;
        }
        rows += more;
        n += 1;
    }
    if n == 1 {
        return Some((1, first.clone()));
    }
    let mut tables = Vec::new();
    let mut epoch = first_flush.epoch;
    for (_, e) in queue.iter().take(n) {
        if let Event::Wal(f) = e {
            tables.extend(f.tables.iter().filter(|t| wants(t, r)).cloned());
            epoch = f.epoch;
        }
    }
    // The merger orders each flush by commit; the join is ordered the same way.
    tables.sort_by_key(|t| t.commit);
    Some((n, Event::Wal(Arc::new(WalFlush { epoch, tables }))))
}
