//! Retries: the error behaviour applied after a failed call (log, retry with doubling backoff,
//! or disable), and the timer thread that sends delayed work back to the executors.
//!
//! It never runs a plugin itself; the timer only re-queues work.

use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use pipeline::catalog::{CatalogOp, ErrorBehavior};
use pyo3::prelude::*;

use super::dispatch::Event;
use super::executor::Work;
use crate::plugin_logs::LogLevel;
use super::runner::Runner;
use super::Inner;

/// Attempts after the first for `retry` triggers, before the event is given up (and logged).
pub const RETRY_MAX_ATTEMPTS: u32 = 5;
/// First retry delay; each next one doubles, up to [`RETRY_MAX_DELAY`].
pub const RETRY_FIRST_DELAY: Duration = Duration::from_millis(100);
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(10);

pub(super) struct Delayed {
    pub(super) due: Instant,
    pub(super) seq: u64,
    pub(super) work: Work,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    // Reversed: BinaryHeap is a max-heap, the earliest due must come out first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

impl Inner {
    pub(super) fn later(&self, delay: Duration, work: Work) {
        let seq = self.timer_seq.fetch_add(1, Ordering::Relaxed);
        let _ = self.timer.send(Delayed { due: Instant::now() + delay, seq, work });
    }

    /// Applies the error behaviour after a failed call; returns the delay before a retry.
    pub(super) fn after_failure(&self, py: Python<'_>, r: &Runner, event: &Event, attempt: u32) -> Option<Duration> {
        match r.def.error_behavior {
            ErrorBehavior::Log => None,
            // A request was already answered (500 or 504); running it again answers no one.
            ErrorBehavior::Retry if matches!(event, Event::Request(_)) => None,
            ErrorBehavior::Retry if attempt < RETRY_MAX_ATTEMPTS => {
                let delay = RETRY_FIRST_DELAY.saturating_mul(1 << attempt.min(16)).min(RETRY_MAX_DELAY);
                self.services.logs.push(
                    &r.db,
                    &r.def.name,
                    LogLevel::Warn,
                    format!("retry {} of {RETRY_MAX_ATTEMPTS} in {} ms", attempt + 1, delay.as_millis()),
                );
                Some(delay)
            }
            ErrorBehavior::Retry => {
                self.services.logs.push(
                    &r.db,
                    &r.def.name,
                    LogLevel::Error,
                    format!("giving up on this event after {} attempts", attempt + 1),
                );
                None
            }
            ErrorBehavior::Disable => {
                let op = CatalogOp::SetTriggerDisabled { db: r.db.clone(), name: r.def.name.clone(), disabled: true };
                let saved = py.detach(|| self.catalog.update(&[op]));
                let msg = match saved {
                    Ok(_) => "trigger disabled after an error; enable it again to resume".to_string(),
                    Err(e) => format!("trigger could not be disabled after an error: {e}"),
                };
                r.stopped.store(true, Ordering::Release);
                self.services.logs.push(&r.db, &r.def.name, LogLevel::Error, msg);
                self.reconcile();
                None
            }
        }
    }
}

pub(super) fn timer_loop(rx: Receiver<Delayed>, work: Sender<Work>) {
    let mut heap: BinaryHeap<Delayed> = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|d| d.due <= now) {
            if let Some(d) = heap.pop() {
                let _ = work.send(d.work);
            }
        }
        let next = match heap.peek() {
            Some(d) => rx.recv_timeout(d.due.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(d) => heap.push(d),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}
