//! The processing engine: triggers, the Python executors that run their plugins, and the
//! dispatch of WAL flushes to them.
//!
//! Threads: one dispatcher reads the flush queue (`pipeline::queue`) and hands each flush, as an
//! `Arc` (no copy), to the triggers that want it; a scheduler ([`schedule`]) fires `every:` and
//! `cron:` triggers; `--py-executors` executor threads run plugin calls from one shared work
//! queue, taking the GIL once per drained batch; one timer thread re-queues retries when their
//! backoff is over; one watchdog interrupts calls past their time limit and adds executors when
//! work waits while every executor is busy. Python never runs on a shard or query thread.
//!
//! Ordering (DESIGN.md invariant 5): a synchronous trigger keeps its own FIFO of events, and at
//! most one work item of it is queued or running at a time; the next event is taken only when
//! the current one is done (or given up), so calls happen one at a time in WAL order, whichever
//! executor runs them. `run_async` triggers send each event as its own work item.
//!
//! Re-entrancy (SPEC §5): a plugin may call this server's HTTP API, even a request trigger, and
//! wait for it. While it waits (GIL released), its executor is taken; if work then waits with no
//! executor free, the watchdog starts an extra one (up to [`MAX_EXTRA_EXECUTORS`], each leaving
//! after [`EXTRA_EXECUTOR_IDLE`] idle), so the call it waits on still runs.
//!
//! Time limits: each call has a deadline (the trigger's `timeout`, or the server's default);
//! past it, the watchdog raises `TimeoutError` in the plugin's thread (this stops a
//! `while True: pass`; a C call that never returns to Python is stopped when it does).
//!
//! Isolation (invariant 4): a plugin's exception is caught, logged with its traceback, and
//! handled by its trigger's error behaviour; nothing it does reaches another trigger but the
//! time it holds its executor.
//!
//! Triggers are defined in the catalog; [`Engine::reconcile`] makes the running set match it
//! after every change and at start-up. It never writes row data itself: plugin writes go through
//! [`ingest`] to the shards.

pub mod arenas;
pub mod cache;
pub mod convert;
pub mod ingest;
pub mod local_api;
pub mod logs;
pub mod packages;
pub mod plugin;
pub mod python;
pub mod request;
pub mod schedule;
pub mod spec;

#[cfg(test)]
#[path = "arrow_export_tests.rs"]
mod arrow_export_tests;
#[cfg(test)]
#[path = "line_builder_tests.rs"]
mod line_builder_tests;

use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use pipeline::catalog::{Catalog, CatalogError, CatalogOp, ErrorBehavior, Trigger};
use pipeline::queue::{TableBatch, WalFlush};
use pipeline::stats::Histogram;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList};

use self::cache::CacheSpace;
use self::local_api::{CallContext, Capture, PluginApi, Services};
use self::logs::LogLevel;
use self::plugin::{PluginError, PluginLoader};
use self::python::format_exception;
use self::spec::{SpecError, TriggerSpec};

/// Events a synchronous trigger may have waiting; past it, the dispatcher waits (back-pressure
/// on the flush queue, and from there on writers), it never drops an event.
pub const TRIGGER_QUEUE_EVENTS: usize = 10_000;
/// Attempts after the first for `retry` triggers, before the event is given up (and logged).
pub const RETRY_MAX_ATTEMPTS: u32 = 5;
/// First retry delay; each next one doubles, up to [`RETRY_MAX_DELAY`].
pub const RETRY_FIRST_DELAY: Duration = Duration::from_millis(100);
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(10);
/// Executors the watchdog may add beyond `--py-executors` while work waits on busy ones.
pub const MAX_EXTRA_EXECUTORS: usize = 32;
/// An extra executor leaves after this long without work.
pub const EXTRA_EXECUTOR_IDLE: Duration = Duration::from_secs(10);
/// How often the watchdog looks; work must wait two looks before an executor is added.
const WATCHDOG_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the processing engine is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Package(#[from] packages::PackageError),
    #[error("no trigger serves the request path '{0}'")]
    NoRoute(String),
    #[error("{0}")]
    Timeout(String),
}

/// Checks a database name given by a plugin or a request (as the catalog would).
pub fn check_db_name(db: &str) -> Result<(), String> {
    pipeline::catalog::validate_db_name(db).map_err(|e| e.to_string())
}

/// Something for a trigger to handle.
#[derive(Clone)]
pub enum Event {
    Wal(Arc<WalFlush>),
    /// A schedule tick; the scheduled instant in UTC nanoseconds.
    Schedule { call_time_ns: i64 },
    Request(Arc<request::RequestCall>),
}

/// What [`Inner::try_enqueue`] did with an event.
enum Enqueued {
    Yes,
    /// The trigger is disabled or deleted: the event is dropped.
    Stopped,
    /// The trigger's queue is full: the event is handed back.
    Full(Event),
}

/// A request handed to its trigger, whose answer is still to come.
pub struct PendingReply {
    reply: futures_channel::oneshot::Receiver<request::Reply>,
    /// How long to wait before giving up on the answer (the caller's runtime keeps the time).
    pub bound: Duration,
    trigger: String,
}

impl PendingReply {
    /// The plugin's answer, or `Timeout` once `expired` completes first: pass a timer of
    /// [`PendingReply::bound`] from the runtime the caller runs on.
    pub async fn wait(self, expired: impl std::future::Future<Output = ()>) -> Result<request::Reply, EngineError> {
        let PendingReply { reply, bound, trigger } = self;
        let answered = futures_lite::future::or(async { Some(reply.await) }, async {
            expired.await;
            None
        })
        .await;
        match answered {
            Some(Ok(r)) => Ok(r),
            Some(Err(_)) => Err(EngineError::Unavailable(format!("trigger '{trigger}' was disabled before it answered"))),
            None => Err(EngineError::Timeout(format!("trigger '{trigger}' did not answer within {} ms", bound.as_millis()))),
        }
    }
}

/// Per-trigger counters, for `/metrics`.
#[derive(Default)]
pub struct TriggerStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub latency: Histogram,
}

struct RunnerState {
    queue: VecDeque<Event>,
    /// A `Work::Sync` for this trigger is queued, running or waiting on the timer.
    scheduled: bool,
    /// Failed attempts of the event at the front.
    attempt: u32,
}

/// A running (enabled) trigger.
pub struct Runner {
    pub db: String,
    pub def: Arc<Trigger>,
    pub spec: TriggerSpec,
    /// How long one call may run.
    timeout: Duration,
    state: Mutex<RunnerState>,
    /// Set when the trigger is disabled or deleted: queued events are dropped unrun.
    stopped: AtomicBool,
    /// Async calls queued or running.
    in_flight: AtomicUsize,
    cache: Arc<CacheSpace>,
    pub stats: TriggerStats,
    /// The write buffer's commit count when this trigger started: WAL flushes hand it only
    /// rows committed since. A write acked before the trigger was created (or enabled) is
    /// published on a later tick, but it is not this trigger's to see.
    since_commit: u64,
}

impl Runner {
    /// A call of this trigger is queued or running.
    pub fn busy(&self) -> bool {
        self.state.lock().scheduled || self.in_flight.load(Ordering::Acquire) > 0
    }
}

/// Code run on an executor, with that executor's slot (to put a call under the watchdog).
type Task = Box<dyn FnOnce(Python<'_>, &Slot) + Send>;

enum Work {
    Sync(Arc<Runner>),
    Async { runner: Arc<Runner>, event: Event, attempt: u32 },
    Task(Task),
}

struct Delayed {
    due: Instant,
    seq: u64,
    work: Work,
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

/// What the watchdog knows of the call an executor is running.
struct Running {
    thread_ident: i64,
    deadline: Instant,
    interrupted: bool,
}

#[derive(Default)]
struct Slot {
    running: Mutex<Option<Running>>,
    /// The executor thread's Python ident (`threading.get_ident()`), looked up once.
    ident: std::sync::OnceLock<i64>,
}

impl Slot {
    fn thread_ident(&self, py: Python<'_>) -> PyResult<i64> {
        if let Some(i) = self.ident.get() {
            return Ok(*i);
        }
        let ident = py.import("threading")?.call_method0("get_ident")?.extract::<u64>()? as i64;
        Ok(*self.ident.get_or_init(|| ident))
    }

    /// Runs a plugin call under the watchdog, which raises `TimeoutError` in it once `limit`
    /// has passed. Returns the call's result and whether the watchdog interrupted it.
    fn watched<T>(&self, py: Python<'_>, limit: Duration, call: impl FnOnce() -> T) -> PyResult<(T, bool)> {
        let ident = self.thread_ident(py)?;
        *self.running.lock() = Some(Running { thread_ident: ident, deadline: Instant::now() + limit, interrupted: false });
        let out = call();
        let interrupted = self.running.lock().take().is_some_and(|run| run.interrupted);
        Ok((out, interrupted))
    }
}

struct Inner {
    catalog: Arc<Catalog>,
    services: Arc<Services>,
    plugins: PluginLoader,
    work_tx: Sender<Work>,
    work_rx: Receiver<Work>,
    /// Executor threads alive, and how many of them wait for work.
    threads: AtomicUsize,
    idle: AtomicUsize,
    base_executors: usize,
    slots: Mutex<Vec<Arc<Slot>>>,
    default_timeout: Duration,
    runners: RwLock<HashMap<(String, String), Arc<Runner>>>,
    caches: Mutex<HashMap<(String, String), Arc<CacheSpace>>>,
    timer: Sender<Delayed>,
    timer_seq: AtomicU64,
    schedule_changes: Sender<()>,
    plugin_repo: String,
}

/// The handle the server and the HTTP layer hold.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub struct EngineConfig {
    pub plugin_dir: PathBuf,
    /// Base URL of `gh:` plugins.
    pub plugin_repo: String,
    pub executors: usize,
    /// Time limit of a call for triggers that set none.
    pub default_timeout: Duration,
}

/// What a dry run feeds the plugin.
pub enum DryRunInput {
    Wal { lines: String },
    Schedule { spec: TriggerSpec },
}

/// What `plugin_test/wal` and `plugin_test/schedule` answer.
#[derive(Debug, Default, serde::Serialize)]
pub struct DryRunReport {
    /// For schedule plugins: the instant the plugin was called for (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_time: Option<String>,
    pub log_lines: Vec<String>,
    pub database_writes: BTreeMap<String, Vec<String>>,
    pub errors: Vec<String>,
}

impl Engine {
    /// Starts Python, the executors, the timer and (if given) the dispatcher of WAL flushes.
    pub fn start(
        cfg: EngineConfig,
        catalog: Arc<Catalog>,
        services: Arc<Services>,
        flushes: Option<Receiver<Arc<WalFlush>>>,
    ) -> Result<Engine, EngineError> {
        python::start().map_err(EngineError::Unavailable)?;
        Python::attach(|py| python::prepare(py, &cfg.plugin_dir))
            .map_err(|e| EngineError::Unavailable(format!("preparing the plugin environment: {e}")))?;
        let n = cfg.executors.max(1);
        // Unbounded in items, bounded in practice: sync triggers have at most one item each,
        // async ones at most TRIGGER_QUEUE_EVENTS, requests one per waiting HTTP request.
        let (work_tx, work_rx) = crossbeam_channel::unbounded::<Work>();
        let (timer_tx, timer_rx) = crossbeam_channel::unbounded::<Delayed>();
        let (changes_tx, changes_rx) = crossbeam_channel::unbounded::<()>();
        let inner = Arc::new(Inner {
            catalog,
            services,
            plugins: PluginLoader::new(cfg.plugin_dir),
            work_tx,
            work_rx,
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            base_executors: n,
            slots: Mutex::new(Vec::new()),
            default_timeout: cfg.default_timeout,
            runners: RwLock::new(HashMap::new()),
            caches: Mutex::new(HashMap::new()),
            timer: timer_tx,
            timer_seq: AtomicU64::new(0),
            schedule_changes: changes_tx,
            plugin_repo: cfg.plugin_repo,
        });
        for i in 0..n {
            spawn_executor(&inner, format!("weir-py-{i}"), false).map_err(|e| EngineError::Unavailable(e.to_string()))?;
        }
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name.into()).spawn(f).map(|_| ()).map_err(|e| EngineError::Unavailable(e.to_string()))
        };
        {
            let tx = inner.work_tx.clone();
            spawn("weir-engine-timer", Box::new(move || timer_loop(timer_rx, tx)))?;
        }
        {
            let inner = inner.clone();
            spawn("weir-engine-watchdog", Box::new(move || watchdog_loop(inner)))?;
        }
        {
            let inner = inner.clone();
            spawn("weir-engine-scheduler", Box::new(move || schedule::scheduler_loop(inner, changes_rx)))?;
        }
        let engine = Engine { inner };
        engine.reconcile();
        if let Some(rx) = flushes {
            let e = engine.clone();
            std::thread::Builder::new()
                .name("weir-engine-dispatch".into())
                .spawn(move || e.dispatch_loop(rx))
                .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        }
        Ok(engine)
    }

    pub fn logs(&self) -> &Arc<logs::PluginLogs> {
        &self.inner.services.logs
    }

    /// The running triggers, for `/metrics`.
    pub fn runners(&self) -> Vec<Arc<Runner>> {
        self.inner.runners.read().values().cloned().collect()
    }

    /// Fetches a `gh:` plugin into the cache if needed (on a blocking thread).
    async fn fetch(&self, name: &str) -> Result<(), EngineError> {
        if !name.starts_with("gh:") {
            return Ok(());
        }
        let (dir, repo, name) = (self.inner.plugins.dir().to_path_buf(), self.inner.plugin_repo.clone(), name.to_string());
        tokio::task::spawn_blocking(move || plugin::fetch_gh(&dir, &repo, &name))
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))??;
        Ok(())
    }

    /// Runs `f` on an executor (with the GIL) and returns its result.
    async fn on_executor<T: Send + 'static>(&self, f: impl FnOnce(Python<'_>, &Slot) -> T + Send + 'static) -> Result<T, EngineError> {
        let (tx, rx) = futures_channel::oneshot::channel();
        let work = Work::Task(Box::new(move |py, slot| {
            let _ = tx.send(f(py, slot));
        }));
        self.inner.work_tx.send(work).map_err(|_| EngineError::Unavailable("the Python executors stopped".into()))?;
        rx.await.map_err(|_| EngineError::Unavailable("a Python executor dropped the request".into()))
    }

    /// Creates a trigger after checking its spec and its plugin (exists, compiles, defines the
    /// function the spec calls).
    pub async fn create_trigger(&self, db: &str, trigger: Trigger) -> Result<(), EngineError> {
        if trigger.name.trim().is_empty() {
            return Err(EngineError::Invalid("trigger_name must not be empty".into()));
        }
        let spec = TriggerSpec::parse(&trigger.specification)?;
        if trigger.timeout_ms == Some(0) {
            return Err(EngineError::Invalid("timeout must be greater than zero".into()));
        }
        let snapshot = self.inner.catalog.snapshot();
        if snapshot.db(db).is_none() {
            return Err(CatalogError::DatabaseNotFound(db.to_string()).into());
        }
        if let TriggerSpec::Request(path) = &spec {
            for d in snapshot.databases.values() {
                for t in d.triggers.values() {
                    if matches!(TriggerSpec::parse(&t.specification), Ok(TriggerSpec::Request(p)) if &p == path) {
                        return Err(EngineError::Conflict(format!(
                            "request path '{path}' is already used by trigger '{}' in database '{}'",
                            t.name, d.name
                        )));
                    }
                }
            }
        }
        self.fetch(&trigger.plugin_filename).await?;
        self.inner.plugins.resolve(&trigger.plugin_filename)?;
        let inner = self.inner.clone();
        let (file, function, spec_text) = (trigger.plugin_filename.clone(), spec.entry_point(), trigger.specification.clone());
        self.on_executor(move |py, _| inner.plugins.function(py, &file, function, &spec_text).map(|_| ())).await??;
        self.inner.catalog.update(&[CatalogOp::CreateTrigger { db: db.to_string(), trigger }])?;
        self.reconcile();
        Ok(())
    }

    /// Deletes a trigger; an enabled one only with `force`.
    pub fn delete_trigger(&self, db: &str, name: &str, force: bool) -> Result<(), EngineError> {
        let snapshot = self.inner.catalog.snapshot();
        let dbm = snapshot.db(db).ok_or_else(|| CatalogError::DatabaseNotFound(db.to_string()))?;
        let t = dbm.triggers.get(name).ok_or_else(|| CatalogError::TriggerNotFound(name.to_string()))?;
        if !t.disabled && !force {
            return Err(EngineError::Conflict(format!(
                "trigger '{name}' is enabled; disable it first or delete it with force"
            )));
        }
        self.inner.catalog.update(&[CatalogOp::DeleteTrigger { db: db.to_string(), name: name.to_string() }])?;
        self.reconcile();
        Ok(())
    }

    /// Enables or disables a trigger (idempotent).
    pub fn set_disabled(&self, db: &str, name: &str, disabled: bool) -> Result<(), EngineError> {
        self.inner.catalog.update(&[CatalogOp::SetTriggerDisabled { db: db.to_string(), name: name.to_string(), disabled }])?;
        self.reconcile();
        Ok(())
    }

    /// Makes the running triggers match the catalog: starts enabled ones, stops the rest.
    pub fn reconcile(&self) {
        self.inner.reconcile();
    }

    fn dispatch_loop(&self, rx: Receiver<Arc<WalFlush>>) {
        for flush in rx.iter() {
            let runners: Vec<Arc<Runner>> = self.inner.runners.read().values().filter(|r| r.spec.is_wal()).cloned().collect();
            for r in runners {
                if let Some(event) = flush_for(&flush, &r) {
                    self.inner.enqueue(&r, Event::Wal(event));
                }
            }
        }
    }

    /// Hands a request to `/api/v3/engine/PATH` to the request trigger of that path. Never
    /// blocks: a trigger already holding its queue's worth of requests refuses with
    /// `Unavailable`. The caller awaits the answer with [`PendingReply::wait`] on its own runtime.
    pub fn start_request(
        &self,
        path: &str,
        query: Vec<(String, String)>,
        headers: Vec<(String, Vec<u8>)>,
        body: bytes::Bytes,
    ) -> Result<PendingReply, EngineError> {
        let runner = self
            .inner
            .runners
            .read()
            .values()
            .find(|r| matches!(&r.spec, TriggerSpec::Request(p) if p == path))
            .cloned()
            .ok_or_else(|| EngineError::NoRoute(path.to_string()))?;
        let (call, reply) = request::RequestCall::new(query, headers, body);
        match self.inner.try_enqueue(&runner, Event::Request(Arc::new(call))) {
            Enqueued::Yes => {}
            Enqueued::Stopped => return Err(EngineError::Unavailable(format!("trigger '{}' is disabled", runner.def.name))),
            Enqueued::Full(_) => {
                return Err(EngineError::Unavailable(format!(
                    "trigger '{}' already has {TRIGGER_QUEUE_EVENTS} requests waiting; try again later",
                    runner.def.name
                )))
            }
        }
        // The watchdog answers 504 at the limit; this bound only covers a call that could not
        // even start (every executor stuck in C code) so the client is never left hanging.
        Ok(PendingReply { reply, bound: runner.timeout + Duration::from_secs(5), trigger: runner.def.name.to_string() })
    }

    /// pip-installs into the plugin venv (on a blocking thread), then makes the new packages
    /// importable for the next plugin call.
    pub async fn install(&self, what: packages::Install) -> Result<(), EngineError> {
        let dir = self.inner.plugins.dir().to_path_buf();
        let d = dir.clone();
        tokio::task::spawn_blocking(move || packages::install(&d, what))
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))??;
        self.on_executor(move |py, _| {
            python::add_venv_site_packages(py, &python::venv_dir(&dir))
                .and_then(|_| py.import("importlib")?.call_method0("invalidate_caches").map(|_| ()))
                .map_err(|e| EngineError::Unavailable(format!("could not load the new packages: {e}")))
        })
        .await?
    }

    /// Runs a plugin once without writing anything (`plugin_test/wal`, `plugin_test/schedule`):
    /// a WAL plugin on `lines`, or a schedule plugin at the schedule's next tick.
    pub async fn dry_run(
        &self,
        filename: &str,
        db: &str,
        input: DryRunInput,
        arguments: Option<BTreeMap<String, String>>,
        cache_name: Option<String>,
    ) -> Result<DryRunReport, EngineError> {
        check_db_name(db).map_err(EngineError::Invalid)?;
        self.fetch(filename).await?;
        self.inner.plugins.resolve(filename)?;
        let mut report = DryRunReport::default();
        let event = match input {
            DryRunInput::Wal { lines } => {
                let tables = batches_from_lines(db, &lines, &mut report.errors);
                Event::Wal(Arc::new(WalFlush { epoch: 0, tables }))
            }
            DryRunInput::Schedule { spec } => {
                let now = crate::http::write::now_ns();
                let at = schedule::next_fire_ns(&spec, now)
                    .ok_or_else(|| EngineError::Invalid("the schedule never fires".into()))?;
                report.trigger_time = Some(chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(at).to_rfc3339());
                Event::Schedule { call_time_ns: at }
            }
        };
        let cache = {
            let key = ("\0test".to_string(), cache_name.unwrap_or_default());
            self.inner.caches.lock().entry(key).or_default().clone()
        };
        let inner = self.inner.clone();
        let (filename, db) = (filename.to_string(), db.to_string());
        let capture = Arc::new(Capture::default());
        let cap = capture.clone();
        let error = self
            .on_executor(move |py, slot| -> Option<String> {
                let entry = match event {
                    Event::Schedule { .. } => spec::PROCESS_SCHEDULED_CALL,
                    _ => spec::PROCESS_WRITES,
                };
                let func = match inner.plugins.function(py, &filename, entry, "plugin_test") {
                    Ok(f) => f,
                    Err(e) => return Some(e.to_string()),
                };
                let ctx = Arc::new(CallContext::new(&db, "plugin_test", inner.services.clone(), cache, Some(cap)));
                // Under the watchdog with the default limit, as a trigger's call is: a plugin
                // that never returns must not hold an executor for good.
                let limit = inner.default_timeout;
                let mut timed_out = false;
                let mut run = || -> PyResult<()> {
                    let local = Py::new(py, PluginApi::new(ctx.clone()))?;
                    let args = args_dict(py, arguments.as_ref())?;
                    let call_args = call_args(py, local, &event, &db, &TriggerSpec::AllTables, args)?;
                    let (out, interrupted) = slot.watched(py, limit, || func.call1(call_args))?;
                    timed_out = interrupted;
                    out.map(|_| ())
                };
                match run() {
                    Ok(()) => {
                        ctx.flush_buffered();
                        None
                    }
                    Err(_) if timed_out => Some(format!("the plugin ran longer than the time limit of {} ms and was stopped", limit.as_millis())),
                    Err(e) => Some(format_exception(py, &e)),
                }
            })
            .await?;
        report.errors.extend(error);
        report.log_lines = std::mem::take(&mut *capture.log_lines.lock());
        report.database_writes = std::mem::take(&mut *capture.writes.lock());
        report.errors.extend(std::mem::take(&mut *capture.errors.lock()));
        Ok(report)
    }
}

impl Inner {
    fn reconcile(&self) {
        let snapshot = self.catalog.snapshot();
        let mut wanted: HashMap<(String, String), Arc<Trigger>> = HashMap::new();
        let mut defined = std::collections::HashSet::new();
        for d in snapshot.databases.values() {
            for t in d.triggers.values() {
                defined.insert((d.name.clone(), t.name.clone()));
                if !t.disabled {
                    wanted.insert((d.name.clone(), t.name.clone()), t.clone());
                }
            }
        }
        let mut runners = self.runners.write();
        runners.retain(|k, r| {
            let keep = wanted.get(k).is_some_and(|t| **t == *r.def);
            if !keep {
                r.stopped.store(true, Ordering::Release);
            }
            keep
        });
        let mut caches = self.caches.lock();
        caches.retain(|k, _| k.0.starts_with('\0') || defined.contains(k));
        for (key, def) in wanted {
            if runners.contains_key(&key) {
                continue;
            }
            let spec = match TriggerSpec::parse(&def.specification) {
                Ok(s) => s,
                Err(e) => {
                    self.services.logs.push(&key.0, &key.1, LogLevel::Error, format!("trigger not started: {e}"));
                    continue;
                }
            };
            let timeout = def.timeout_ms.map_or(self.default_timeout, Duration::from_millis);
            let cache = caches.entry(key.clone()).or_default().clone();
            let runner = Arc::new(Runner {
                since_commit: self.services.query.buffer().commits(),
                db: key.0.clone(),
                def,
                spec,
                timeout,
                state: Mutex::new(RunnerState { queue: VecDeque::new(), scheduled: false, attempt: 0 }),
                stopped: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                cache,
                stats: TriggerStats::default(),
            });
            runners.insert(key, runner);
        }
        drop(runners);
        let _ = self.schedule_changes.send(());
    }

    fn send(&self, work: Work) {
        // Executors live as long as the process; a send fails only during exit.
        let _ = self.work_tx.send(work);
    }

    /// Queues an event for a trigger, waiting while the trigger is [`TRIGGER_QUEUE_EVENTS`]
    /// behind: back-pressure, never a dropped event. Only for threads that may block.
    fn enqueue(&self, r: &Arc<Runner>, mut event: Event) {
        loop {
            match self.try_enqueue(r, event) {
                Enqueued::Yes | Enqueued::Stopped => return,
                Enqueued::Full(e) => event = e,
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Queues an event for a trigger unless the trigger is stopped or full.
    fn try_enqueue(&self, r: &Arc<Runner>, event: Event) -> Enqueued {
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
        st.queue.push_back(event);
        if !st.scheduled {
            st.scheduled = true;
            drop(st);
            self.send(Work::Sync(r.clone()));
        }
        Enqueued::Yes
    }

    fn later(&self, delay: Duration, work: Work) {
        let seq = self.timer_seq.fetch_add(1, Ordering::Relaxed);
        let _ = self.timer.send(Delayed { due: Instant::now() + delay, seq, work });
    }

    fn run(&self, py: Python<'_>, slot: &Slot, work: Work) {
        match work {
            Work::Task(f) => f(py, slot),
            Work::Sync(r) => self.run_sync(py, slot, r),
            Work::Async { runner, event, attempt } => {
                if runner.stopped.load(Ordering::Acquire) {
                    runner.in_flight.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
                let ok = self.call(py, slot, &runner, &event);
                if ok {
                    runner.in_flight.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
                match self.after_failure(py, &runner, &event, attempt) {
                    Some(delay) => {
                        self.later(delay, Work::Async { runner, event, attempt: attempt + 1 });
                    }
                    None => {
                        runner.in_flight.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            }
        }
    }

    fn run_sync(&self, py: Python<'_>, slot: &Slot, r: Arc<Runner>) {
        let event = {
            let mut st = r.state.lock();
            if r.stopped.load(Ordering::Acquire) {
                st.queue.clear();
                st.scheduled = false;
                return;
            }
            match st.queue.front() {
                Some(e) => e.clone(),
                None => {
                    st.scheduled = false;
                    return;
                }
            }
        };
        let ok = self.call(py, slot, &r, &event);
        let retry = if ok {
            None
        } else {
            let attempt = r.state.lock().attempt;
            self.after_failure(py, &r, &event, attempt)
        };
        let mut st = r.state.lock();
        if let Some(delay) = retry {
            st.attempt += 1;
            drop(st);
            // Still scheduled: the timer sends it back, the same event first.
            self.later(delay, Work::Sync(r.clone()));
            return;
        }
        st.queue.pop_front();
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

    /// Applies the error behaviour after a failed call; returns the delay before a retry.
    fn after_failure(&self, py: Python<'_>, r: &Runner, event: &Event, attempt: u32) -> Option<Duration> {
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

    /// One plugin call. Returns whether it succeeded; a failure is already logged.
    fn call(&self, py: Python<'_>, slot: &Slot, r: &Runner, event: &Event) -> bool {
        let started = Instant::now();
        let mut timed_out = false;
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
                let (out, interrupted) = slot.watched(py, r.timeout, || func.call1(call_args))?;
                timed_out = interrupted;
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
        r.stats.latency.observe_ns(started.elapsed().as_nanos() as u64);
        match result {
            Ok(()) => true,
            Err((trace, short)) => {
                r.stats.errors.fetch_add(1, Ordering::Relaxed);
                let msg = if timed_out {
                    format!("plugin call exceeded its time limit of {} ms and was interrupted: {trace}", r.timeout.as_millis())
                } else {
                    format!("plugin call failed: {trace}")
                };
                self.services.logs.push(&r.db, &r.def.name, LogLevel::Error, msg);
                if let Event::Request(req) = event {
                    if timed_out {
                        req.answer_error(504, &format!("the plugin ran longer than its time limit of {} ms", r.timeout.as_millis()));
                    } else {
                        req.answer_error(500, short.as_deref().unwrap_or("plugin failed"));
                    }
                }
                false
            }
        }
    }
}

fn spawn_executor(inner: &Arc<Inner>, name: String, extra: bool) -> std::io::Result<()> {
    let slot = Arc::new(Slot::default());
    inner.slots.lock().push(slot.clone());
    inner.threads.fetch_add(1, Ordering::AcqRel);
    let i = inner.clone();
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        executor_loop(&i, &slot, extra);
        i.slots.lock().retain(|s| !Arc::ptr_eq(s, &slot));
        i.threads.fetch_sub(1, Ordering::AcqRel);
    });
    if spawned.is_err() {
        inner.threads.fetch_sub(1, Ordering::AcqRel);
    }
    spawned.map(|_| ())
}

fn executor_loop(inner: &Inner, slot: &Slot, extra: bool) {
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

/// Interrupts calls past their deadline, and adds an executor when work has waited two ticks
/// with none idle.
fn watchdog_loop(inner: Arc<Inner>) {
    let mut waited_ticks = 0u32;
    loop {
        std::thread::sleep(WATCHDOG_TICK);
        // A cheap look first; the GIL is taken only when some call is past its deadline.
        let now = Instant::now();
        let any_overdue = inner.slots.lock().iter().any(|s| s.running.lock().as_ref().is_some_and(|r| r.deadline <= now));
        if any_overdue {
            // Under the GIL, a call cannot return and clear its slot between the check and the
            // raise: the executor holds the GIL from the call's return until it clears the slot.
            Python::attach(|_py| {
                let now = Instant::now();
                for s in inner.slots.lock().iter() {
                    let mut running = s.running.lock();
                    let Some(r) = running.as_mut() else { continue };
                    if r.deadline > now {
                        continue;
                    }
                    r.interrupted = true;
                    // Again in a second if the plugin swallowed the first one.
                    r.deadline = now + Duration::from_secs(1);
                    // SAFETY: the GIL is held; the exception type is a static CPython object.
                    unsafe {
                        pyo3::ffi::PyThreadState_SetAsyncExc(r.thread_ident as std::os::raw::c_long, pyo3::ffi::PyExc_TimeoutError);
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

fn timer_loop(rx: Receiver<Delayed>, work: Sender<Work>) {
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

/// The positional arguments of the plugin function an event calls: `process_writes`,
/// `process_scheduled_call` or `process_request`.
fn call_args<'py>(
    py: Python<'py>,
    local: Py<PluginApi>,
    event: &Event,
    db: &str,
    spec: &TriggerSpec,
    args: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
    match event {
        Event::Wal(flush) => (local, table_batches(py, flush, db, spec)?, args).into_pyobject(py),
        Event::Schedule { call_time_ns } => (local, schedule::call_time(py, *call_time_ns)?, args).into_pyobject(py),
        Event::Request(req) => {
            let (q, h, b) = req.to_python(py)?;
            (local, q, h, b, args).into_pyobject(py)
        }
    }
}

/// The trigger's arguments as a dict, or None when it has none.
fn args_dict<'py>(py: Python<'py>, args: Option<&BTreeMap<String, String>>) -> PyResult<Bound<'py, PyAny>> {
    match args {
        None => Ok(py.None().into_bound(py)),
        Some(a) => {
            let d = PyDict::new(py);
            for (k, v) in a {
                d.set_item(k, v)?;
            }
            Ok(d.into_any())
        }
    }
}

/// What a WAL flush holds for trigger `r`: `None` if nothing, else the flush itself, or a copy
/// without the batches committed before the trigger started (only around its start).
fn flush_for(flush: &Arc<WalFlush>, r: &Runner) -> Option<Arc<WalFlush>> {
    let fresh = |t: &TableBatch| t.commit >= r.since_commit;
    let wanted = flush.tables.iter().any(|t| fresh(t) && *t.db_name == *r.db && r.spec.wants_table(&t.table_name));
    if !wanted {
        return None;
    }
    if flush.tables.iter().all(fresh) {
        return Some(flush.clone());
    }
    Some(Arc::new(WalFlush { epoch: flush.epoch, tables: flush.tables.iter().filter(|t| fresh(t)).cloned().collect() }))
}

/// `table_batches` for one trigger: one `TableBatch` dict per table of `db` that the spec
/// wants, rows as dicts, and `"arrow"` built on demand. Public for the benches.
pub fn table_batches<'py>(py: Python<'py>, flush: &WalFlush, db: &str, spec: &TriggerSpec) -> PyResult<Bound<'py, PyList>> {
    // Group by table, keeping first-seen order: several shards may each hold part of a table.
    let mut groups: Vec<(&str, Vec<&TableBatch>)> = Vec::new();
    for t in &flush.tables {
        if *t.db_name != *db || !spec.wants_table(&t.table_name) {
            continue;
        }
        match groups.iter_mut().find(|(name, _)| *name == &*t.table_name) {
            Some((_, v)) => v.push(t),
            None => groups.push((&t.table_name, vec![t])),
        }
    }
    let cls = py.import("weir_runtime")?.getattr("TableBatch")?;
    let out = PyList::empty(py);
    for (name, parts) in groups {
        let rows = PyList::empty(py);
        for p in &parts {
            convert::append_rows(py, &p.batch, convert::Nulls::Omit, &rows)?;
        }
        let batch = cls.call0()?;
        batch.set_item("table_name", name)?;
        batch.set_item("rows", rows)?;
        let arrow_parts: Vec<arrow::record_batch::RecordBatch> = parts.iter().map(|p| p.batch.clone()).collect();
        let source = PyCFunction::new_closure(py, None, None, move |args, _kwargs| -> PyResult<Py<PyAny>> {
            use arrow::pyarrow::ToPyArrow;
            let py = args.py();
            // One part is handed over as is (zero-copy); parts from several shards are joined.
            let merged = match arrow_parts.as_slice() {
                [one] => one.clone(),
                many => pipeline::buffer::merge(many).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?,
            };
            Ok(merged.to_pyarrow(py)?.unbind())
        })?;
        batch.setattr("_arrow_source", source)?;
        out.append(batch)?;
    }
    Ok(out)
}

/// Builds a flush's table batches from line protocol, for dry runs: the lines are checked
/// against a scratch catalog, never the server's.
fn batches_from_lines(db: &str, lines: &str, errors: &mut Vec<String>) -> Vec<TableBatch> {
    let scratch = Catalog::in_memory();
    let now = crate::http::write::now_ns();
    let prepared = match pipeline::write::prepare(&scratch, db, lines.as_bytes(), pipeline::write::Precision::Auto, now, true) {
        Ok(p) => p,
        Err(e) => {
            errors.push(e.to_string());
            return Vec::new();
        }
    };
    for r in &prepared.rejects {
        errors.push(format!("input line {}: {}: {}", r.line_number, r.error_message, r.original_line));
    }
    let db_name: Arc<str> = Arc::from(db);
    let mut builders: Vec<pipeline::batch::TableBuilder> = Vec::new();
    for g in &prepared.good {
        let table = &prepared.tables[g.table];
        let i = match builders.iter().position(|b| b.table.id == table.id) {
            Some(i) => i,
            None => {
                builders.push(pipeline::batch::TableBuilder::new(prepared.db_id, db_name.clone(), table.clone()));
                builders.len() - 1
            }
        };
        builders[i].append(&g.line, g.time_ns, g.same_shape, g.series_id);
    }
    builders
        .into_iter()
        .filter_map(|b| {
            let table_name: Arc<str> = Arc::from(b.table.name.as_str());
            match b.finish() {
                Ok(batch) => Some(TableBatch { db_id: prepared.db_id, db_name: db_name.clone(), table_name, batch, commit: 0 }),
                Err(e) => {
                    errors.push(e.to_string());
                    None
                }
            }
        })
        .collect()
}
