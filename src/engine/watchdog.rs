//! The watchdog: raises `TimeoutError` in calls past their deadline, and adds an executor when
//! work waits while every executor is busy (a plugin waiting on this server's own API).
//!
//! It takes the GIL only when some call is overdue; it never runs plugin code.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::executor::{spawn_executor, Interrupt};
use super::Inner;

/// Executors the watchdog may add beyond `--py-executors` while work waits on busy ones.
pub const MAX_EXTRA_EXECUTORS: usize = 32;
/// An extra executor leaves after this long without work.
pub const EXTRA_EXECUTOR_IDLE: Duration = Duration::from_secs(10);
/// How often the watchdog looks; work must wait two looks before an executor is added.
const WATCHDOG_TICK: Duration = Duration::from_millis(10);

/// Interrupts calls past their deadline or of a stopped trigger, and adds an executor when work
/// has waited two ticks with none idle.
pub(super) fn watchdog_loop(inner: Arc<Inner>) {
    let mut waited_ticks = 0u32;
    loop {
        std::thread::sleep(WATCHDOG_TICK);
        // A cheap look first; the GIL is taken only when some call is due an interrupt.
        let now = Instant::now();
        let any_due = inner.slots.lock().iter().any(|s| s.running.lock().as_ref().is_some_and(|r| r.due(now).is_some()));
        if any_due {
            // Under the GIL, a call cannot return and clear its slot between the check and the
            // raise: the executor holds the GIL from the call's return until it clears the slot.
            Python::attach(|py| {
                let cancelled_error = match py.import("asyncio").and_then(|m| m.getattr("CancelledError")) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(error = %e, "asyncio.CancelledError is not available");
                        return;
                    }
                };
                let now = Instant::now();
                for s in inner.slots.lock().iter() {
                    let mut running = s.running.lock();
                    let Some(r) = running.as_mut() else { continue };
                    let Some(why) = r.due(now) else { continue };
                    r.interrupted = Some(why);
                    // Again in a second if the plugin swallowed the first one.
                    r.deadline = now + Duration::from_secs(1);
                    // SAFETY: the GIL is held; the exception type is a static CPython object, or
                    // asyncio's class, kept alive by `cancelled_error` past the call.
                    unsafe {
                        let exc = match why {
                            Interrupt::TimedOut => pyo3::ffi::PyExc_TimeoutError,
                            Interrupt::Cancelled => cancelled_error.as_ptr(),
                        };
                        pyo3::ffi::PyThreadState_SetAsyncExc(r.thread_ident as std::os::raw::c_long, exc);
                    }
                }
            });
        }
        let waiting = !inner.work_rx.is_empty() && inner.idle.load(Ordering::Acquire) == 0;
        waited_ticks = if waiting { waited_ticks + 1 } else { 0 };
        let threads = inner.threads.load(Ordering::Acquire);
        if waited_ticks >= 2 && threads < inner.base_executors + MAX_EXTRA_EXECUTORS {
            waited_ticks = 0;
            if let Err(e) = spawn_executor(&inner, format!("weir-py-extra-{threads}"), true) {
                tracing::warn!(error = %e, "could not add a Python executor");
            }
        }
    }
}
