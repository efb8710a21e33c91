//! The processing-engine log: what plugins say (`info`, `warn`, `error`) and what the engine
//! says about them (exceptions with their traceback, retries, disables).
//!
//! A bounded ring, newest kept, of entries of bounded size (a longer text is cut, and says so):
//! `system.processing_engine_logs` reads it, and every entry also goes to the server log. Unlike InfluxDB 3, each entry names its database. It never blocks a
//! caller for longer than a push onto a `VecDeque`.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// Entries kept; older ones are dropped first.
pub const LOG_RING_ENTRIES: usize = 10_000;

/// Longest text one entry keeps, in bytes: a long traceback fits, a plugin logging a whole
/// dataset does not hold the ring's memory at 10,000 times its size.
pub const MAX_ENTRY_BYTES: usize = 64 << 10;

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
        let text = bounded(text, MAX_ENTRY_BYTES);
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

    /// Every entry, oldest first.
    pub fn all(&self) -> Vec<LogEntry> {
        self.ring.lock().iter().cloned().collect()
    }

    /// The entries of one database, oldest first.
    pub fn for_database(&self, database: &str) -> Vec<LogEntry> {
        self.ring.lock().iter().filter(|e| e.database == database).cloned().collect()
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), with a note of what was cut.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let total = text.len();
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(&format!("… [{} of {total} bytes cut: a log entry keeps at most {max}]", total - cut));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_entry_is_cut_and_says_so() {
        let logs = PluginLogs::with_capacity(3);
        logs.push("db", "t", LogLevel::Info, "é".repeat(MAX_ENTRY_BYTES));
        let text = logs.for_database("db").remove(0).text;
        assert!(text.len() < MAX_ENTRY_BYTES + 100, "{}", text.len());
        assert!(text.ends_with(&format!("[{MAX_ENTRY_BYTES} of {} bytes cut: a log entry keeps at most {MAX_ENTRY_BYTES}]", 2 * MAX_ENTRY_BYTES)), "{}", &text[text.len() - 80..]);
        assert_eq!(bounded("short".into(), 10), "short");
        // Cut at a character boundary, never inside one.
        assert!(bounded("aé".into(), 2).starts_with("a…"));
    }

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
