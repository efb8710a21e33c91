//! Events of schedule and request triggers: a synchronous trigger's FIFO, or one work item per
//! event for `run_async` ones. (WAL triggers are not sent events: they read the log, see
//! [`super::feed`].)
//!
//! It never runs plugin code and never drops an event: a trigger [`TRIGGER_QUEUE_EVENTS`]
//! behind makes a scheduler wait, and a request is refused.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline::commit_log::Delivery;

use super::executor::Work;
use super::request;
use super::runner::Runner;
use super::Inner;

/// Events a synchronous trigger may have waiting; past it, the scheduler waits and requests are
/// refused, never an event dropped.
pub const TRIGGER_QUEUE_EVENTS: usize = 10_000;

/// Something for a trigger to handle.
#[derive(Clone)]
pub enum Event {
    /// Rows of a run of commits, for a WAL trigger.
    Wal(Arc<Delivery>),
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
