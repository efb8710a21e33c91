//! The Python executors: threads that take work from one shared queue and run it under the
//! GIL, once per drained batch; and one plugin call, with its error handling and stats.
//!
//! Only these threads run plugin code; a shard or query thread never does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use pyo3::prelude::*;

use super::call_args::{args_dict, call_args};
use super::dispatch::Event;
use crate::py_api::local_api::{CallContext, PluginApi};
use crate::plugin_logs::LogLevel;
use crate::py_api::python::format_exception;
use super::runner::{CallLimits, Runner};
use crate::py_api::memory;
use super::watchdog::EXTRA_EXECUTOR_IDLE;
use super::Inner;

/// Code run on an executor, with that executor's slot (to put a call under the watchdog).
pub(super) type Task = Box<dyn FnOnce(Python<'_>, &Slot) + Send>;

pub(super) enum Work {
    Sync(Arc<Runner>),
    /// Read a WAL trigger's next rows from the WAL (it is behind the commit log).
    Read(Arc<Runner>),
    Async { runner: Arc<Runner>, event: Event, attempt: u32 },
    Task(Task),
}

/// Why the watchdog interrupted a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Interrupt {
    /// Past its time limit: `TimeoutError` was raised in it.
    TimedOut,
    /// Its trigger was disabled or deleted: `asyncio.CancelledError` was raised in it.
    Cancelled,
}

/// What stopped a call short, if anything.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stopped {
    /// The watchdog interrupted it.
    pub(super) interrupted: Option<Interrupt>,
    /// An allocation was refused for its memory limit (Python raised `MemoryError`).
    pub(super) out_of_memory: bool,
}

/// What the watchdog knows of the call an executor is running.
pub(super) struct Running {
    pub(super) thread_ident: i64,
    pub(super) deadline: Instant,
    /// The trigger's stop flag: once set, the call is cancelled.
    pub(super) stopped: Option<Arc<AtomicBool>>,
    pub(super) interrupted: Option<Interrupt>,
}

impl Running {
    /// The interrupt this call is due now, if any: a first cancellation at once, a timeout (or
    /// a repeat of either, for a plugin that swallowed it) once the deadline has passed.
    pub(super) fn due(&self, now: Instant) -> Option<Interrupt> {
        let cancelled = self.stopped.as_ref().is_some_and(|s| s.load(Ordering::Acquire));
        if cancelled && self.interrupted != Some(Interrupt::Cancelled) {
            return Some(Interrupt::Cancelled);
        }
        if self.deadline <= now {
            return Some(self.interrupted.unwrap_or(Interrupt::TimedOut));
        }
        None
    }
}

#[derive(Default)]
pub(super) struct Slot {
    pub(super) running: Mutex<Option<Running>>,
    /// The executor thread's Python ident (`threading.get_ident()`), looked up once.
    pub(super) ident: std::sync::OnceLock<i64>,
}

impl Slot {
    fn thread_ident(&self, py: Python<'_>) -> PyResult<i64> {
        if let Some(i) = self.ident.get() {
            return Ok(*i);
        }
        let ident = py.import("threading")?.call_method0("get_ident")?.extract::<u64>()? as i64;
        Ok(*self.ident.get_or_init(|| ident))
    }

    /// Runs a plugin call under the watchdog, which raises `TimeoutError` in it once its time
    /// limit has passed, or `asyncio.CancelledError` once `stopped` is set, and under its memory
    /// limit ([`memory::within`]). Returns the call's result and what stopped it, if anything.
    pub(super) fn watched<T>(
        &self,
        py: Python<'_>,
        limits: CallLimits,
        stopped: Option<Arc<AtomicBool>>,
        call: impl FnOnce() -> T,
    ) -> PyResult<(T, Stopped)> {
        let ident = self.thread_ident(py)?;
        let deadline = Instant::now() + limits.timeout;
        *self.running.lock() = Some(Running { thread_ident: ident, deadline, stopped, interrupted: None });
        let (out, out_of_memory) = memory::within(limits.memory, call);
        let interrupted = self.running.lock().take().and_then(|run| run.interrupted);
        Ok((out, Stopped { interrupted, out_of_memory }))
    }
}

impl Inner {
    pub(super) fn send(&self, work: Work) {
        // Executors live as long as the process; a send fails only during exit.
        let _ = self.work_tx.send(work);
    }

    pub(super) fn run(&self, py: Python<'_>, slot: &Slot, work: Work) {
        if self.closing.load(Ordering::Acquire) {
            // Shutting down: no call starts. A dropped request's reply channel closes, which
            // answers its client 503.
            // A WAL trigger's open call stays open: its cursor does not pass the rows, and they
            // are handed again after the restart.
            match work {
                Work::Task(f) => f(py, slot),
                Work::Sync(r) => r.state.lock().scheduled = false,
                Work::Read(r) => {
                    if let Some(f) = &r.feed {
                        f.lock().reading = false;
                    }
                }
                Work::Async { runner, .. } => {
                    runner.in_flight.fetch_sub(1, Ordering::AcqRel);
                }
            }
            return;
        }
        match work {
            Work::Task(f) => f(py, slot),
            Work::Sync(r) if r.feed.is_some() => self.run_wal_sync(py, slot, r),
            Work::Sync(r) => self.run_sync(py, slot, r),
            Work::Read(r) => self.read_wal(py, r),
            Work::Async { runner, event, attempt } => {
                if runner.stopped.load(Ordering::Acquire) {
                    runner.in_flight.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
                let ok = self.call(py, slot, &runner, &event);
                // A cancelled call is not retried, nor does it disable anything.
                let retry = if ok || runner.stopped.load(Ordering::Acquire) { None } else { self.after_failure(py, &runner, &event, attempt) };
                if let Some(delay) = retry {
                    self.later(delay, Work::Async { runner, event, attempt: attempt + 1 });
                    return;
                }
                runner.in_flight.fetch_sub(1, Ordering::AcqRel);
                if let Event::Wal(d) = &event {
                    if !runner.stopped.load(Ordering::Acquire) {
                        self.complete(&runner, d);
                    }
                }
            }
        }
    }

    pub(super) fn run_sync(&self, py: Python<'_>, slot: &Slot, r: Arc<Runner>) {
        let (covers, event) = {
            let mut st = r.state.lock();
            if r.stopped.load(Ordering::Acquire) {
                st.queue.clear();
                st.pending = None;
                st.scheduled = false;
                return;
            }
            let next = st.pending.clone().or_else(|| st.queue.front().map(|(_, e)| (1, e.clone())));
            match next {
                Some(n) => n,
                None => {
                    st.scheduled = false;
                    return;
                }
            }
        };
        let ok = self.call(py, slot, &r, &event);
        let retry = if ok || r.stopped.load(Ordering::Acquire) {
            None
        } else {
            let attempt = r.state.lock().attempt;
            self.after_failure(py, &r, &event, attempt)
        };
        let mut st = r.state.lock();
        if let Some(delay) = retry {
            st.attempt += 1;
            st.pending = Some((covers, event));
            drop(st);
            // Still scheduled: the timer sends it back, the same call first.
            self.later(delay, Work::Sync(r.clone()));
            return;
        }
        let covers = covers.min(st.queue.len());
        st.queue.drain(..covers);
        st.pending = None;
        st.attempt = 0;
        if st.queue.is_empty() || r.stopped.load(Ordering::Acquire) {
            st.queue.clear();
            st.scheduled = false;
        } else {
            drop(st);
            // Back of the queue: other triggers get their turn.
            self.send(Work::Sync(r));
        }
    }

    /// A synchronous WAL trigger's call: the rows its feed handed it, the same ones again on a
    /// retry. Completed (its cursor passes them) once it succeeds or is given up; a call stopped
    /// by a disable or delete is not completed.
    fn run_wal_sync(&self, py: Python<'_>, slot: &Slot, r: Arc<Runner>) {
        let Some(feed) = &r.feed else { return };
        let Some(d) = feed.lock().call.clone() else { return };
        if r.stopped.load(Ordering::Acquire) {
            return;
        }
        let event = Event::Wal(d.clone());
        let ok = self.call(py, slot, &r, &event);
        if r.stopped.load(Ordering::Acquire) {
            return;
        }
        if !ok {
            let attempt = r.state.lock().attempt;
            if let Some(delay) = self.after_failure(py, &r, &event, attempt) {
                r.state.lock().attempt += 1;
                self.later(delay, Work::Sync(r.clone()));
                return;
            }
        }
        r.state.lock().attempt = 0;
        self.complete(&r, &d);
    }

    /// One plugin call. Returns whether it succeeded; a failure is already logged.
    pub(super) fn call(&self, py: Python<'_>, slot: &Slot, r: &Runner, event: &Event) -> bool {
        let started = Instant::now();
        let mut stopped = Stopped::default();
        let result = (|| -> Result<(), (String, Option<String>)> {
            let func = self
                .plugins
                .function(py, &r.def.plugin_filename, r.spec.entry_point(), &r.def.specification)
                .map_err(|e| (e.to_string(), Some(e.to_string())))?;
            let ctx = Arc::new(CallContext::new(&r.db, &r.def.name, self.services.clone(), r.cache.clone(), None));
            let mut run = || -> PyResult<Option<Bound<'_, PyAny>>> {
                let local = Py::new(py, PluginApi::new(ctx.clone()))?;
                let args = args_dict(py, r.def.arguments.as_ref())?;
                let call_args = call_args(py, local, event, &r.db, &r.spec, args)?;
                let threads = active_threads(py);
                let (out, why) = slot.watched(py, r.limits, Some(r.stopped.clone()), || func.call1(call_args))?;
                stopped = why;
                let left = active_threads(py).saturating_sub(threads);
                if left > 0 {
                    let msg = format!("the call left {left} thread(s) running; they run on in the server's interpreter and share the GIL with every plugin");
                    self.services.logs.push(&r.db, &r.def.name, LogLevel::Warn, msg);
                }
                let out = out?;
                Ok(matches!(event, Event::Request(_)).then_some(out))
            };
            let returned = run().map_err(|e| {
                let short = e.value(py).str().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                (format_exception(py, &e), Some(format!("{}: {short}", e.get_type(py).name().map(|n| n.to_string()).unwrap_or_default())))
            })?;
            if let (Event::Request(req), Some(value)) = (event, returned) {
                req.answer_from_python(py, &value).map_err(|e| (format_exception(py, &e), Some(e.to_string())))?;
            }
            // Without the GIL: a full shard queue makes this wait, and others must run meanwhile.
            py.detach(|| ctx.flush_buffered());
            Ok(())
        })();
        r.stats.calls.fetch_add(1, Ordering::Relaxed);
        r.stats.last_call_ns.store(crate::time::now_ns(), Ordering::Relaxed);
        r.stats.latency.observe_ns(started.elapsed().as_nanos() as u64);
        match result {
            Ok(()) => true,
            Err((trace, short)) => {
                let interrupt = stopped.interrupted;
                if interrupt == Some(Interrupt::Cancelled) {
                    // Not an error of the plugin: the user stopped the trigger.
                    let msg = "plugin call cancelled: the trigger was disabled or deleted while it ran";
                    self.services.logs.push(&r.db, &r.def.name, LogLevel::Warn, msg.to_string());
                    if let Event::Request(req) = event {
                        req.answer_error(503, &format!("trigger '{}' was disabled before it answered", r.def.name));
                    }
                    return false;
                }
                r.stats.errors.fetch_add(1, Ordering::Relaxed);
                let msg = if interrupt.is_some() {
                    format!("plugin call exceeded its time limit of {} ms and was interrupted: {trace}", r.limits.timeout.as_millis())
                } else if stopped.out_of_memory {
                    format!(
                        "plugin call passed its memory limit of {} bytes (the trigger's memory_limit, or --plugin-memory-limit) and was refused memory: {trace}",
                        r.limits.memory.unwrap_or_default()
                    )
                } else {
                    format!("plugin call failed: {trace}")
                };
                self.services.logs.push(&r.db, &r.def.name, LogLevel::Error, msg);
                if let Event::Request(req) = event {
                    if interrupt.is_some() {
                        req.answer_error(504, &format!("the plugin ran longer than its time limit of {} ms", r.limits.timeout.as_millis()));
                    } else {
                        req.answer_error(500, short.as_deref().unwrap_or("plugin failed"));
                    }
                }
                false
            }
        }
    }
}

/// An executor thread's stack. Recursion in C code (`repr` or `json.dumps` of deeply nested
/// lists) uses this stack, not the heap: at Rust's default 2 MiB a plugin that raised its
/// recursion limit overflowed it and aborted the server. 64 MiB holds the deepest recursion
/// `weir_guard` allows (a limit of 20,000) several times over; it is address space, touched only
/// as deep as a call goes.
const EXECUTOR_STACK_BYTES: usize = 64 << 20;

/// Threads Python code started (`threading.Thread` and `_thread` alike) still running, or 0
/// if that cannot be asked. `_thread._count` is one C call: `threading.active_count` ran Python
/// code and an import, twice per plugin call, and was a third of a request trigger's cost.
fn active_threads(py: Python<'_>) -> usize {
    static COUNT: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    COUNT.import(py, "_thread", "_count").and_then(|f| f.call0()?.extract()).unwrap_or(0)
}

pub(super) fn spawn_executor(inner: &Arc<Inner>, name: String, extra: bool) -> std::io::Result<()> {
    let slot = Arc::new(Slot::default());
    inner.slots.lock().push(slot.clone());
    inner.threads.fetch_add(1, Ordering::AcqRel);
    let i = inner.clone();
    let spawned = std::thread::Builder::new().name(name).stack_size(EXECUTOR_STACK_BYTES).spawn(move || {
        executor_loop(&i, &slot, extra);
        i.slots.lock().retain(|s| !Arc::ptr_eq(s, &slot));
        i.threads.fetch_sub(1, Ordering::AcqRel);
    });
    if spawned.is_err() {
        inner.threads.fetch_sub(1, Ordering::AcqRel);
    }
    spawned.map(|_| ())
}

pub(super) fn executor_loop(inner: &Inner, slot: &Slot, extra: bool) {
    loop {
        inner.idle.fetch_add(1, Ordering::AcqRel);
        let first = if extra { inner.work_rx.recv_timeout(EXTRA_EXECUTOR_IDLE).ok() } else { inner.work_rx.recv().ok() };
        inner.idle.fetch_sub(1, Ordering::AcqRel);
        let Some(first) = first else { return };
        // One GIL acquisition for everything that is waiting now.
        Python::attach(|py| {
            inner.run(py, slot, first);
            while let Ok(w) = inner.work_rx.try_recv() {
                inner.run(py, slot, w);
            }
        });
    }
}
