//! What the engine reports about its triggers, for `system.processing_engine_triggers` and
//! `system.plugin_files`: the row types and the trait the engine implements.
//!
//! A leaf, so the query side reads the engine's state without depending on the engine.

/// One trigger's live state. Only triggers the engine runs have one; a disabled trigger has none.
#[derive(Debug, Clone, Default)]
pub struct TriggerStatus {
    pub trigger_name: String,
    /// Events (ticks, requests) waiting for a call, or calls of a `run_async` trigger queued or
    /// running; for a WAL trigger, its calls open (handed, not completed).
    pub queued_events: u64,
    /// How long the oldest waiting event has waited, in seconds (0 when none waits); for a WAL
    /// trigger, how long ago its oldest unhandled commit was settled.
    pub lag_seconds: f64,
    /// A WAL trigger's cursor: the last commit it has completed (`None` before any, and for
    /// other triggers).
    pub cursor: Option<u64>,
    /// Commits settled that a WAL trigger has not completed.
    pub lag_commits: Option<u64>,
    /// A WAL trigger behind by more than `--trigger-max-lag`.
    pub lagging: bool,
    /// Calls since the trigger started, and how many of them failed or timed out.
    pub calls: u64,
    pub errors: u64,
    /// When the last call ended, in nanoseconds since the epoch.
    pub last_call_time_ns: Option<i64>,
    /// Call duration quantiles in seconds (bucket upper bounds, so at most one bucket high).
    pub call_duration_p50_s: Option<f64>,
    pub call_duration_p99_s: Option<f64>,
}

/// One file of a trigger's plugin, for `system.plugin_files`.
#[derive(Debug, Clone)]
pub struct PluginFileRow {
    pub trigger_name: String,
    /// The plugin's name (`x.py`, `gh:x.py`), or `pkg/m.py` for a package's file.
    pub file_name: String,
    /// Where it is on the server.
    pub file_path: String,
    pub size_bytes: u64,
    /// Milliseconds since the epoch.
    pub last_modified_ms: i64,
}

/// The source of [`TriggerStatus`] rows: the processing engine.
pub trait TriggerStatusSource: Send + Sync {
    /// The running triggers of database `db`.
    fn trigger_status(&self, db: &str) -> Vec<TriggerStatus>;
    /// The plugin files of database `db`'s triggers, enabled or not.
    fn plugin_files(&self, db: &str) -> Vec<PluginFileRow>;
}
