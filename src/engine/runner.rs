//! The running set of triggers: one [`Runner`] per enabled trigger, made to match the catalog
//! by [`Inner::reconcile`] after every change and at start-up.
//!
//! It never calls a plugin; it only starts and stops runners.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pipeline::catalog::Trigger;
use pipeline::stats::Histogram;

use crate::py_api::cache::CacheSpace;
use super::dispatch::Event;
use super::feed::Feed;
use crate::plugin_logs::LogLevel;
use super::spec::TriggerSpec;
use super::Inner;
use crate::trigger_status::TriggerStatus;

/// Per-trigger counters, for `/metrics`.
#[derive(Default)]
pub struct TriggerStats {
    pub calls: AtomicU64,
    /// When the last call ended (ns since the epoch; 0 before the first).
    pub last_call_ns: AtomicI64,
    pub errors: AtomicU64,
    pub latency: Histogram,
}

pub(super) struct RunnerState {
    /// Events waiting, each with when it was queued.
    pub(super) queue: VecDeque<(Instant, Event)>,
    /// A `Work::Sync` for this trigger is queued, running or waiting on the timer.
    pub(super) scheduled: bool,
    /// Failed attempts of the call at the front.
    pub(super) attempt: u32,
    /// While a call is retried: the event it handles and how many queued events that covers,
    /// so a retry handles exactly what the failed call did.
    pub(super) pending: Option<(usize, Event)>,
}

/// A running (enabled) trigger.
pub struct Runner {
    pub db: String,
    pub def: Arc<Trigger>,
    pub spec: TriggerSpec,
    /// How long one call may run and how much memory it may take: the trigger's own settings,
    /// else the server's.
    pub(super) limits: CallLimits,
    pub(super) state: Mutex<RunnerState>,
    /// Set when the trigger is disabled or deleted: queued events are dropped unrun.
    pub(super) stopped: Arc<AtomicBool>,
    /// Set while the trigger is being updated: no new WAL call is handed to it, so the calls
    /// it has can finish before the new definition takes over at its cursor.
    pub(super) paused: AtomicBool,
    /// Async calls queued or running.
    pub(super) in_flight: AtomicUsize,
    pub(super) cache: Arc<CacheSpace>,
    pub stats: TriggerStats,
    /// A WAL trigger's place in the log (`None` for schedule and request triggers).
    pub(super) feed: Option<Mutex<Feed>>,
}

/// The limits of one call: how long it may run, and how much memory it may take.
#[derive(Clone, Copy, Debug)]
pub(super) struct CallLimits {
    pub timeout: Duration,
    pub memory: Option<u64>,
}

impl Runner {
    /// A runner of `def`, whose own time and memory limits override the server's `defaults`.
    pub(super) fn new(db: String, def: Arc<Trigger>, spec: TriggerSpec, defaults: CallLimits, cache: Arc<CacheSpace>, feed: Option<Feed>) -> Runner {
        Runner {
            db,
            limits: CallLimits {
                timeout: def.timeout_ms.map_or(defaults.timeout, Duration::from_millis),
                memory: def.memory_limit_bytes.or(defaults.memory),
            },
            def,
            spec,
            state: Mutex::new(RunnerState { queue: VecDeque::new(), scheduled: false, attempt: 0, pending: None }),
            stopped: Arc::new(AtomicBool::new(false)),
            paused: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            cache,
            stats: TriggerStats::default(),
            feed: feed.map(Mutex::new),
        }
    }

    /// A call of this trigger is queued or running.
    pub fn busy(&self) -> bool {
        self.state.lock().scheduled || self.in_flight.load(Ordering::Acquire) > 0 || self.feed.as_ref().is_some_and(|f| f.lock().busy())
    }

    /// Whether rows of `table` in database `db` are this trigger's (its database, and a table
    /// its spec names).
    pub(super) fn wants(&self, db: &str, table: &str) -> bool {
        db == self.db && self.spec.wants_table(table)
    }

    /// Its live state, for `system.processing_engine_triggers`. `frontier` is the settled
    /// frontier and `lag` how long a cursor has been behind it, for WAL triggers.
    pub(super) fn status(&self, frontier: u64, lag: impl Fn(u64) -> f64) -> TriggerStatus {
        let (queued, oldest) = {
            let st = self.state.lock();
            (st.queue.len(), st.queue.front().map(|(at, _)| *at))
        };
        let last = self.stats.last_call_ns.load(Ordering::Relaxed);
        let mut s = TriggerStatus {
            trigger_name: self.def.name.clone(),
            queued_events: (queued + self.in_flight.load(Ordering::Acquire)) as u64,
            lag_seconds: oldest.map_or(0.0, |at| at.elapsed().as_secs_f64()),
            calls: self.stats.calls.load(Ordering::Relaxed),
            errors: self.stats.errors.load(Ordering::Relaxed),
            last_call_time_ns: (last != 0).then_some(last),
            call_duration_p50_s: self.stats.latency.quantile_upper_s(0.5),
            call_duration_p99_s: self.stats.latency.quantile_upper_s(0.99),
            ..TriggerStatus::default()
        };
        if let Some(feed) = &self.feed {
            let f = feed.lock();
            let cursor = f.cursor();
            s.queued_events = f.open.len() as u64;
            s.lag_seconds = lag(cursor);
            s.cursor = cursor.checked_sub(1);
            s.lag_commits = Some(frontier.saturating_sub(cursor));
            s.lagging = f.lagging;
        }
        s
    }
}

impl Inner {
    pub(super) fn reconcile(&self) {
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
        // An updated WAL trigger (still wanted, new definition) resumes at the old one's cursor.
        let mut carried: HashMap<(String, String), u64> = HashMap::new();
        runners.retain(|k, r| {
            let keep = wanted.get(k).is_some_and(|t| **t == *r.def);
            if !keep {
                r.stopped.store(true, Ordering::Release);
                if let (true, Some(feed)) = (wanted.contains_key(k), &r.feed) {
                    carried.insert(k.clone(), feed.lock().cursor());
                }
            }
            keep
        });
        let mut added_wal = false;
        let mut caches = self.caches.lock();
        // Deleted triggers' namespaces are dropped after the lock is released (cache.rs says why).
        let gone: Vec<(String, String)> = caches.keys().filter(|k| !defined.contains(*k)).cloned().collect();
        let freed: Vec<_> = gone.iter().filter_map(|k| caches.remove(k)).collect();
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
            let cache = caches.entry(key.clone()).or_default().clone();
            // A WAL trigger resumes at its saved cursor (at start-up), or starts at the next
            // commit: every write acked before it was created or enabled is not its to see.
            let feed = spec.is_wal().then(|| {
                let saved = carried.remove(&key).or_else(|| self.start_cursors.lock().remove(&key));
                added_wal = true;
                Feed::new(saved.unwrap_or_else(|| self.buffer.commits()))
            });
            let runner = Arc::new(Runner::new(key.0.clone(), def, spec, self.call_limits, cache, feed));
            runners.insert(key, runner);
        }
        drop(runners);
        drop(caches);
        drop(freed);
        // Cursors of triggers not started at the first reconcile are not resumed later: a
        // trigger enabled again starts at the current commit.
        self.start_cursors.lock().clear();
        if added_wal {
            // Saved before the change is answered: a crash right after it must not lose the
            // new trigger's starting point.
            self.save_cursors();
        }
        let _ = self.schedule_changes.send(());
    }
}
