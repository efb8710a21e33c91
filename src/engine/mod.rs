//! The processing engine: triggers, the Python executors that run their plugins, and the
//! feeding of committed rows to WAL triggers.
//!
//! Threads: one feeder ([`feed`]) hands each free WAL trigger the rows after its cursor, on
//! every tick of `--wal-flush-interval` (from the in-memory commit log, as `Arc`s, no copy; or
//! from the WAL when a trigger is behind), and one saver keeps the cursors on disk
//! ([`cursors`]); a scheduler ([`schedule`])
//! fires `every:` and `cron:` triggers; `--py-executors` executor threads ([`executor`]) run
//! plugin calls from one shared work queue, taking the GIL once per drained batch; one timer
//! thread ([`retry`]) re-queues retries when their backoff is over; one [`watchdog`] interrupts
//! calls past their time limit and adds executors when work waits while every executor is busy.
//! Python never runs on a shard or query thread. The running set of triggers is kept by
//! [`runner`]; dry runs live in [`dry_run`], the arguments of a call in [`call_args`].
//!
//! Ordering (DESIGN.md invariant 5): a synchronous WAL trigger has at most one call open, and
//! its next call starts at the commit after the last one's; a synchronous schedule or request
//! trigger keeps its own FIFO of events, with at most one work item queued or running. So calls
//! happen one at a time in WAL order, whichever executor runs them. `run_async` triggers may
//! have several calls open.
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
//! Isolation (invariants 4 and 9): a plugin's exception is caught, logged with its traceback,
//! and handled by its trigger's error behaviour; nothing it does reaches another trigger but the
//! time it holds its executor, and nothing reaches the shards: a slow WAL trigger only falls
//! behind in the log, whose rows stay in the WAL until it has handled them.
//!
//! Triggers are defined in the catalog; [`Engine::reconcile`] makes the running set match it
//! after every change and at start-up. It never writes row data itself: plugin writes go through
//! [`ingest`] to the shards.

mod call_args;
pub mod cursors;
mod dispatch;
mod dry_run;
mod executor;
mod feed;
pub mod ingest;
pub mod packages;
pub mod plugin;
mod plugin_files;
pub mod request;
mod replay;
mod retry;
mod runner;
pub mod schedule;
pub use weir_wire::spec;
mod watchdog;

#[cfg(test)]
#[path = "arrow_export_tests.rs"]
mod arrow_export_tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use pipeline::catalog::{Catalog, CatalogError, CatalogOp, Trigger};
use pipeline::buffer::WriteBuffer;
use pipeline::commit_log::CommitLog;
use pipeline::wal_retention::WalRetention;
use pyo3::prelude::*;

use crate::py_api::cache::CacheSpace;
use crate::py_api::python;
use self::executor::{spawn_executor, Slot, Work};
use crate::py_api::Services;
use self::plugin::{PluginError, PluginLoader};
use self::retry::{timer_loop, Delayed};
use self::spec::{SpecError, TriggerSpec};
use self::watchdog::watchdog_loop;

pub use self::call_args::table_batches;
pub use self::dispatch::{Event, TRIGGER_QUEUE_EVENTS};
pub use self::feed::{MaxLag, MAX_ASYNC_WAL_CALLS};
pub use self::dry_run::{DryRunInput, DryRunReport};
pub use self::request::PendingReply;
pub use self::replay::ReplayProgress;
pub use self::retry::{RETRY_FIRST_DELAY, RETRY_MAX_ATTEMPTS, RETRY_MAX_DELAY};
pub use self::runner::{Runner, TriggerStats};
pub use self::watchdog::{EXTRA_EXECUTOR_IDLE, MAX_EXTRA_EXECUTORS};

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


struct Inner {
    catalog: Arc<Catalog>,
    /// The write buffer, for its commit count: a trigger starts at the current one.
    buffer: Arc<WriteBuffer>,
    services: Arc<Services>,
    plugins: PluginLoader,
    work_tx: Sender<Work>,
    work_rx: Receiver<Work>,
    /// Executor threads alive, and how many of them wait for work.
    threads: AtomicUsize,
    idle: AtomicUsize,
    base_executors: usize,
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Limits of a call for triggers that set none of their own.
    call_limits: runner::CallLimits,
    runners: RwLock<HashMap<(String, String), Arc<Runner>>>,
    caches: Mutex<HashMap<(String, String), Arc<CacheSpace>>>,
    /// Dry runs' cache namespaces by name, with when each was last used.
    test_caches: Mutex<dry_run::TestCaches>,
    timer: Sender<Delayed>,
    timer_seq: AtomicU64,
    schedule_changes: Sender<()>,
    plugin_repo: String,
    packages: packages::PackagePolicy,
    max_batch_rows: usize,
    /// Set at shutdown: executors drop trigger work instead of starting it.
    closing: AtomicBool,
    /// Recent commits, read by WAL triggers that keep up.
    log: Arc<CommitLog>,
    /// The WAL, read by WAL triggers behind the log.
    wal_root: PathBuf,
    /// Told the lowest saved cursor, so the WAL a trigger needs is kept.
    retention: Arc<WalRetention>,
    cursor_store: cursors::CursorStore,
    /// Saved cursors, for the triggers of the first reconcile only.
    start_cursors: Mutex<cursors::Cursors>,
    /// The settled frontier at the last tick: a trigger that completes a call is fed up to it.
    tick_frontier: AtomicU64,
    marks: Mutex<feed::Marks>,
    max_lag: MaxLag,
    /// Wakes the feeder for a tick now.
    wake_feed: Sender<()>,
    replays: replay::Replays,
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
    /// Whether plugin packages may be installed, and pip's time limit.
    pub packages: packages::PackagePolicy,
    pub executors: usize,
    /// Time limit of a call for triggers that set none.
    pub default_timeout: Duration,
    /// Memory limit of a call for triggers that set none (`None`: no limit).
    pub memory_limit: Option<u64>,
    /// Most rows one call of a WAL trigger is given (whole commits; the first always).
    pub max_batch_rows: usize,
    /// How often WAL triggers are fed (`--wal-flush-interval`).
    pub flush_interval: Duration,
    /// Past this behind, a WAL trigger is marked lagging.
    pub max_lag: MaxLag,
    /// Where WAL triggers read committed rows, and where they keep their cursors.
    pub wal: WalSource,
    /// A token plugins may call the server back with, given them as `INFLUXDB3_AUTH_TOKEN`
    /// (`None` with auth off).
    pub auth_token: Option<String>,
}

/// What WAL triggers read from and keep: the commit log, the WAL and their cursors.
pub struct WalSource {
    pub log: Arc<CommitLog>,
    /// The WAL's root (the shard directories).
    pub root: PathBuf,
    pub retention: Arc<WalRetention>,
    pub cursors: cursors::CursorStore,
}


impl crate::trigger_status::TriggerStatusSource for Engine {
    fn trigger_status(&self, db: &str) -> Vec<crate::trigger_status::TriggerStatus> {
        let runners: Vec<Arc<Runner>> = self.inner.runners.read().values().filter(|r| r.db == db).cloned().collect();
        runners.iter().map(|r| self.status(r)).collect()
    }

    fn plugin_files(&self, db: &str) -> Vec<crate::trigger_status::PluginFileRow> {
        let snapshot = self.inner.catalog.snapshot();
        let Some(d) = snapshot.db(db) else { return Vec::new() };
        d.triggers.values().flat_map(|t| plugin_files::files_of(&self.inner.plugins, &t.name, &t.plugin_filename)).collect()
    }
}

impl Engine {
    /// Starts Python, the executors, the timer, the scheduler, and the feeder of WAL triggers.
    pub fn start(cfg: EngineConfig, catalog: Arc<Catalog>, buffer: Arc<WriteBuffer>, services: Arc<Services>) -> Result<Engine, EngineError> {
        python::start().map_err(EngineError::Unavailable)?;
        Python::attach(|py| python::prepare(py, &cfg.plugin_dir, cfg.packages.system_site_packages))
            .map_err(|e| EngineError::Unavailable(format!("preparing the plugin environment: {e}")))?;
        if let Some(token) = &cfg.auth_token {
            Python::attach(|py| python::set_env(py, "INFLUXDB3_AUTH_TOKEN", token))
                .map_err(|e| EngineError::Unavailable(format!("preparing the plugin environment: {e}")))?;
        }
        let n = cfg.executors.max(1);
        // Unbounded in items, bounded in practice: sync triggers have at most one item each,
        // async ones at most TRIGGER_QUEUE_EVENTS, requests one per waiting HTTP request.
        let (work_tx, work_rx) = crossbeam_channel::unbounded::<Work>();
        let (timer_tx, timer_rx) = crossbeam_channel::unbounded::<Delayed>();
        let (changes_tx, changes_rx) = crossbeam_channel::unbounded::<()>();
        let (wake_tx, wake_rx) = crossbeam_channel::bounded::<()>(1);
        let start_cursors = cfg.wal.cursors.saved();
        let inner = Arc::new(Inner {
            catalog,
            buffer,
            services,
            plugins: PluginLoader::new(cfg.plugin_dir),
            work_tx,
            work_rx,
            threads: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            base_executors: n,
            slots: Mutex::new(Vec::new()),
            call_limits: runner::CallLimits { timeout: cfg.default_timeout, memory: cfg.memory_limit },
            runners: RwLock::new(HashMap::new()),
            caches: Mutex::new(HashMap::new()),
            test_caches: Mutex::default(),
            timer: timer_tx,
            timer_seq: AtomicU64::new(0),
            schedule_changes: changes_tx,
            plugin_repo: cfg.plugin_repo,
            packages: cfg.packages,
            closing: AtomicBool::new(false),
            max_batch_rows: cfg.max_batch_rows.max(1),
            tick_frontier: AtomicU64::new(cfg.wal.log.start()),
            log: cfg.wal.log,
            wal_root: cfg.wal.root,
            retention: cfg.wal.retention,
            cursor_store: cfg.wal.cursors,
            start_cursors: Mutex::new(start_cursors),
            marks: Mutex::default(),
            max_lag: cfg.max_lag,
            wake_feed: wake_tx,
            replays: Default::default(),
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
        let engine = Engine { inner: inner.clone() };
        engine.reconcile();
        {
            let inner = inner.clone();
            let every = cfg.flush_interval;
            spawn("weir-engine-feed", Box::new(move || feed::feed_loop(inner, every, wake_rx)))?;
        }
        spawn("weir-engine-cursors", Box::new(move || feed::save_loop(inner)))?;
        Ok(engine)
    }

    pub fn logs(&self) -> &Arc<crate::plugin_logs::PluginLogs> {
        &self.inner.services.logs
    }

    /// The running triggers, for `/metrics`.
    pub fn runners(&self) -> Vec<Arc<Runner>> {
        self.inner.runners.read().values().cloned().collect()
    }

    /// A running trigger's live state.
    pub fn status(&self, r: &Runner) -> crate::trigger_status::TriggerStatus {
        let frontier = self.inner.tick_frontier.load(Ordering::Acquire);
        let now = std::time::Instant::now();
        let marks = self.inner.marks.lock();
        r.status(frontier, |cursor| marks.lag(cursor, now))
    }

    /// Feeds the WAL triggers now instead of at the next tick (for benches and tests that
    /// measure the engine alone).
    pub fn feed_now(&self) {
        let _ = self.inner.wake_feed.try_send(());
    }

    /// The WAL triggers' cursors: the first commit each has not completed.
    pub fn cursors(&self) -> cursors::Cursors {
        self.inner.cursors()
    }

    /// Saves the WAL triggers' cursors now (at shutdown, so a clean restart hands nothing
    /// over twice).
    pub fn save_cursors(&self) {
        self.inner.save_cursors();
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

    /// Checks a trigger's settings and its plugin (fetching a `gh:` one): the plugin exists,
    /// compiles and defines the function the spec calls. Answers the warning of a plugin that
    /// cannot be imported yet (see [`plugin::PluginLoader::check`]).
    async fn check_trigger(&self, trigger: &Trigger, spec: &TriggerSpec) -> Result<Option<String>, EngineError> {
        if trigger.name.trim().is_empty() {
            return Err(EngineError::Invalid("trigger_name must not be empty".into()));
        }
        if trigger.timeout_ms == Some(0) {
            return Err(EngineError::Invalid("timeout must be greater than zero".into()));
        }
        self.fetch(&trigger.plugin_filename).await?;
        self.inner.plugins.resolve(&trigger.plugin_filename)?;
        let inner = self.inner.clone();
        let (file, function, spec_text) = (trigger.plugin_filename.clone(), spec.entry_point(), trigger.specification.clone());
        self.on_executor(move |py, _| inner.plugins.check(py, &file, function, &spec_text)).await?.map_err(Into::into)
    }

    /// Logs a check's warning to the trigger's log.
    fn log_warning(&self, db: &str, name: &str, warning: &Option<String>) {
        if let Some(w) = warning {
            self.inner.services.logs.push(db, name, crate::plugin_logs::LogLevel::Warn, w.clone());
        }
    }

    /// Creates a trigger after checking it ([`Self::check_trigger`]); returns the warning of
    /// a plugin that cannot be imported yet, which the trigger's log also gets.
    pub async fn create_trigger(&self, db: &str, trigger: Trigger) -> Result<Option<String>, EngineError> {
        let spec = TriggerSpec::parse(&trigger.specification)?;
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
        let warning = self.check_trigger(&trigger, &spec).await?;
        let name = trigger.name.clone();
        self.inner.catalog.update(&[CatalogOp::CreateTrigger { db: db.to_string(), trigger }])?;
        self.log_warning(db, &name, &warning);
        self.reconcile();
        Ok(warning)
    }

    /// A trigger's definition.
    pub fn trigger(&self, db: &str, name: &str) -> Result<Arc<Trigger>, EngineError> {
        let snapshot = self.inner.catalog.snapshot();
        let dbm = snapshot.db(db).ok_or_else(|| CatalogError::DatabaseNotFound(db.to_string()))?;
        Ok(dbm.triggers.get(name).ok_or_else(|| CatalogError::TriggerNotFound(name.to_string()))?.clone())
    }

    /// Replaces a trigger's definition (its spec stays: a new spec is a new trigger), checked
    /// as at creation. A running WAL trigger keeps its place in the WAL: the new definition
    /// starts at the old one's cursor, so no commit is skipped (a call running meanwhile may
    /// see its commits again).
    pub async fn update_trigger(&self, db: &str, trigger: Trigger) -> Result<Option<String>, EngineError> {
        let old = self.trigger(db, &trigger.name)?;
        if old.specification != trigger.specification {
            return Err(EngineError::Invalid(format!(
                "a trigger's specification cannot change ('{}'); delete the trigger and create it again",
                old.specification
            )));
        }
        let spec = TriggerSpec::parse(&trigger.specification)?;
        let warning = self.check_trigger(&trigger, &spec).await?;
        let name = trigger.name.clone();
        // A running WAL trigger first finishes the calls it was handed (none new is handed), so
        // the new definition starts exactly where they end: no commit twice, none skipped. A
        // call that outlasts its own time limit is not waited for; its commits may then be
        // handed again (at least once, as after a crash).
        let old_runner = self.inner.runners.read().get(&(db.to_string(), name.clone())).filter(|r| r.feed.is_some()).cloned();
        if let Some(r) = &old_runner {
            r.paused.store(true, Ordering::Release);
            let deadline = std::time::Instant::now() + r.limits.timeout + Duration::from_secs(1);
            while r.busy() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let updated = self.inner.catalog.update(&[CatalogOp::ReplaceTrigger { db: db.to_string(), trigger }]);
        if let Some(r) = &old_runner {
            // Unchanged or refused: the old runner carries on.
            r.paused.store(false, Ordering::Release);
        }
        updated?;
        self.log_warning(db, &name, &warning);
        self.reconcile();
        Ok(warning)
    }

    /// Writes a plugin file under the plugin directory (creating or replacing it); triggers
    /// using it load the new code at their next call.
    pub async fn write_plugin_file(&self, name: String, content: String) -> Result<(), EngineError> {
        let dir = self.inner.plugins.dir().to_path_buf();
        tokio::task::spawn_blocking(move || plugin_files::write_file(&dir, &name, &content))
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))??;
        Ok(())
    }

    /// Replaces a package plugin's directory with `files` (`(relative path, content)`).
    pub async fn write_plugin_directory(&self, name: String, files: Vec<(String, String)>) -> Result<(), EngineError> {
        let dir = self.inner.plugins.dir().to_path_buf();
        tokio::task::spawn_blocking(move || plugin_files::write_directory(&dir, &name, &files))
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))??;
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

    /// Stops starting plugin calls and waits up to `timeout` for the running ones to finish
    /// (their writes included). Returns the triggers whose calls were still running.
    pub fn shutdown(&self, timeout: Duration) -> Vec<String> {
        self.inner.closing.store(true, Ordering::Release);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let busy = self.inner.threads.load(Ordering::Acquire).saturating_sub(self.inner.idle.load(Ordering::Acquire));
            if busy == 0 && self.inner.services.writes_in_flight.load(Ordering::Acquire) == 0 {
                return Vec::new();
            }
            if std::time::Instant::now() >= deadline {
                let runners = self.inner.runners.read();
                return runners.values().filter(|r| r.busy()).map(|r| format!("{}/{}", r.db, r.def.name)).collect();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Makes the running triggers match the catalog: starts enabled ones, stops the rest.
    pub fn reconcile(&self) {
        self.inner.reconcile();
    }

    /// pip-installs into the plugin venv (on a blocking thread), then makes the new packages
    /// importable for the next plugin call.
    pub async fn install(&self, what: packages::Install) -> Result<(), EngineError> {
        let dir = self.inner.plugins.dir().to_path_buf();
        let (d, policy) = (dir.clone(), self.inner.packages);
        tokio::task::spawn_blocking(move || packages::install(&d, what, policy))
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))??;
        self.on_executor(move |py, _| {
            python::prepare(py, &dir, policy.system_site_packages)
                .and_then(|_| py.import("importlib")?.call_method0("invalidate_caches").map(|_| ()))
                .map_err(|e| EngineError::Unavailable(format!("could not load the new packages: {e}")))
        })
        .await?
    }
}
