//! The processing-engine log: what plugins say (`info`, `warn`, `error`) and what the engine
//! says about them (exceptions with their traceback, retries, disables).
//!
//! A bounded ring, newest kept: `system.processing_engine_logs` reads it, and every entry also
//! goes to the server log. Unlike InfluxDB 3, each entry names its database. It never blocks a
//! caller for longer than a push onto a `VecDeque`.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// Entries kept; older ones are dropped first.
pub const LOG_RING_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogEntry {
    pub event_time_ns: i64,
    pub database: String,
    pub trigger_name: String,
    pub level: LogLevel,
    pub text: String,
}

pub struct PluginLogs {
    ring: Mutex<VecDeque<LogEntry>>,
    capacity: usize,
}

impl Default for PluginLogs {
    fn default() -> Self {
        PluginLogs::with_capacity(LOG_RING_ENTRIES)
    }
}

impl PluginLogs {
    pub fn with_capacity(capacity: usize) -> PluginLogs {
        PluginLogs { ring: Mutex::new(VecDeque::new()), capacity: capacity.max(1) }
    }

    pub fn push(&self, database: &str, trigger_name: &str, level: LogLevel, text: String) {
        match level {
            LogLevel::Info => tracing::info!(db = database, trigger = trigger_name, "{text}"),
            LogLevel::Warn => tracing::warn!(db = database, trigger = trigger_name, "{text}"),
            LogLevel::Error => tracing::error!(db = database, trigger = trigger_name, "{text}"),
        }
        let entry = LogEntry {
            event_time_ns: crate::time::now_ns(),
            database: database.to_string(),
            trigger_name: trigger_name.to_string(),
            level,
            text,
        };
        let mut ring = self.ring.lock();
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// The entries of one database, oldest first.
    pub fn for_database(&self, database: &str) -> Vec<LogEntry> {
        self.ring.lock().iter().filter(|e| e.database == database).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest() {
        let logs = PluginLogs::with_capacity(3);
        for i in 0..5 {
            logs.push("db", "t", LogLevel::Info, format!("m{i}"));
        }
        logs.push("other", "t", LogLevel::Warn, "x".into());
        let got: Vec<String> = logs.for_database("db").into_iter().map(|e| e.text).collect();
        assert_eq!(got, vec!["m3", "m4"]);
        assert_eq!(logs.for_database("other").len(), 1);
    }
}
