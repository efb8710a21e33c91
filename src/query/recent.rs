//! The queries the server answered lately, for `system.queries`: what was asked (SQL, InfluxQL,
//! over HTTP or Flight), of which database, when, how long it took, whether it is still running
//! and how it ended. A bounded ring: the oldest entries leave first.
//!
//! It only records; it never runs or cancels a query.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// Entries kept.
pub const KEPT: usize = 1000;
/// Longest query text kept (the rest is cut, with a mark).
const MAX_TEXT: usize = 4096;

#[derive(Debug, Clone)]
pub struct QueryRecord {
    pub id: u64,
    pub issue_time_ns: i64,
    /// `sql` or `influxql`.
    pub query_type: &'static str,
    /// `http` or `flight`.
    pub via: &'static str,
    pub database: String,
    pub query_text: String,
    /// Seconds from issue to the answer (so far, while running).
    pub duration_s: f64,
    pub running: bool,
    pub success: bool,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct RecentQueries {
    next: AtomicU64,
    entries: Mutex<VecDeque<(QueryRecord, Option<Instant>)>>,
}

/// A query being answered; [`Running::finish`] records how it ended (dropped unfinished, it
/// counts as failed: the client went away).
pub struct Running {
    recent: Arc<RecentQueries>,
    id: u64,
    started: Instant,
    done: bool,
}

impl RecentQueries {
    pub fn start(self: &Arc<Self>, query_type: &'static str, via: &'static str, database: &str, text: &str) -> Running {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut query_text: String = text.chars().take(MAX_TEXT).collect();
        if query_text.len() < text.len() {
            query_text.push_str(" …");
        }
        let record = QueryRecord {
            id,
            issue_time_ns: crate::time::now_ns(),
            query_type,
            via,
            database: database.to_string(),
            query_text,
            duration_s: 0.0,
            running: true,
            success: false,
            error: None,
        };
        let started = Instant::now();
        let mut entries = self.entries.lock();
        if entries.len() >= KEPT {
            entries.pop_front();
        }
        entries.push_back((record, Some(started)));
        drop(entries);
        Running { recent: self.clone(), id, started, done: false }
    }

    /// The entries of `database` (all of them with `None`), oldest first, durations up to now.
    pub fn list(&self, database: Option<&str>) -> Vec<QueryRecord> {
        self.entries
            .lock()
            .iter()
            .filter(|(r, _)| database.is_none_or(|d| r.database == d))
            .map(|(r, started)| {
                let mut r = r.clone();
                if let Some(s) = started {
                    r.duration_s = s.elapsed().as_secs_f64();
                }
                r
            })
            .collect()
    }

    fn end(&self, id: u64, duration_s: f64, error: Option<String>) {
        let mut entries = self.entries.lock();
        if let Some((r, started)) = entries.iter_mut().rev().find(|(r, _)| r.id == id) {
            r.running = false;
            r.duration_s = duration_s;
            r.success = error.is_none();
            r.error = error;
            *started = None;
        }
    }
}

impl Running {
    pub fn finish(mut self, error: Option<String>) {
        self.done = true;
        self.recent.end(self.id, self.started.elapsed().as_secs_f64(), error);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            self.recent.end(self.id, self.started.elapsed().as_secs_f64(), Some("the client went away before the answer".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_running_finished_and_abandoned_queries_within_a_bound() {
        let r = Arc::new(RecentQueries::default());
        let a = r.start("sql", "http", "db", "SELECT 1");
        assert!(r.list(None)[0].running);
        a.finish(None);
        r.start("influxql", "flight", "other", "SELECT x FROM y").finish(Some("bad".into()));
        drop(r.start("sql", "http", "db", "SELECT 2"));
        let all = r.list(None);
        assert_eq!(all.iter().map(|q| (q.success, q.running)).collect::<Vec<_>>(), vec![(true, false), (false, false), (false, false)]);
        assert_eq!(all[1].error.as_deref(), Some("bad"));
        assert_eq!(r.list(Some("other")).len(), 1);
        for i in 0..KEPT + 5 {
            r.start("sql", "http", "db", &format!("SELECT {i}")).finish(None);
        }
        assert_eq!(r.list(None).len(), KEPT);
        assert_eq!(r.list(None).last().map(|q| q.query_text.clone()), Some(format!("SELECT {}", KEPT + 4)));
    }
}
