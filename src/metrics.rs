//! `/metrics`: the server's counters in the Prometheus text format.
//!
//! Gathers the write path's stats (from the shards), query counts and latency, queue depths,
//! and the storage's state (buffer size and cap, Parquet files, the persisted commit).
//! Reading it never blocks a shard.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use pipeline::buffer::WriteBuffer;
use pipeline::stats::{counter, gauge, Histogram, WriteStats};

use crate::http::error::Resp;
use crate::storage::Storage;
use crate::trigger_status::TriggerStatus;

pub struct Metrics {
    pub write: Arc<WriteStats>,
    buffer: Arc<WriteBuffer>,
    storage: Arc<Storage>,
    queries: AtomicU64,
    query_errors: AtomicU64,
    query_latency: Histogram,
}

impl Metrics {
    pub fn new(
        write: Arc<WriteStats>,
        buffer: Arc<WriteBuffer>,
        storage: Arc<Storage>,
    ) -> Metrics {
        Metrics {
            write,
            buffer,
            storage,
            queries: AtomicU64::new(0),
            query_errors: AtomicU64::new(0),
            query_latency: Histogram::default(),
        }
    }

    pub fn observe_query(&self, elapsed: Duration, ok: bool) {
        self.queries.fetch_add(1, Relaxed);
        if !ok {
            self.query_errors.fetch_add(1, Relaxed);
        }
        self.query_latency.observe_ns(elapsed.as_nanos() as u64);
    }

    pub fn render(&self, engine: &crate::engine::Engine) -> String {
        let mut out = String::with_capacity(4096);
        self.write.render(&mut out);
        counter(&mut out, "weir_query_requests_total", "SQL queries received.", self.queries.load(Relaxed));
        counter(&mut out, "weir_query_errors_total", "SQL queries that failed.", self.query_errors.load(Relaxed));
        self.query_latency.render("weir_query_duration_seconds", "SQL query latency, request to encoded answer.", "", &mut out);
        self.render_storage(&mut out);
        render_triggers(engine, &mut out);
        out
    }

    fn render_storage(&self, out: &mut String) {
        gauge(out, "weir_write_buffer_bytes", "Bytes of rows held in the write buffer.", self.buffer.bytes() as u64);
        gauge(out, "weir_write_buffer_cap_bytes", "The write buffer's cap (--max-buffer-bytes).", self.buffer.cap_bytes() as u64);
        let index = self.storage.index();
        gauge(out, "weir_parquet_files", "Parquet files listed in the file index.", index.files.len() as u64);
        gauge(out, "weir_parquet_bytes", "Bytes of the Parquet files listed.", index.files.iter().map(|f| f.size_bytes).sum());
        gauge(out, "weir_parquet_rows", "Rows in the Parquet files listed.", index.files.iter().map(|f| f.row_count).sum());
        gauge(out, "weir_persisted_through_commit", "Every commit below this is in Parquet.", index.persisted_through);
    }

    pub fn response(&self, engine: &crate::engine::Engine) -> Resp {
        let mut r = Response::new(Full::new(Bytes::from(self.render(engine))));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    }
}

/// A per-trigger metric: name, help, Prometheus type, and one trigger's value.
type Family = (&'static str, &'static str, &'static str, fn(&TriggerStatus) -> String);

/// Per running trigger: calls, failed calls, events waiting and the oldest one's wait, call
/// latency. Counts start when the trigger starts (created, enabled, or the server started).
fn render_triggers(engine: &crate::engine::Engine, out: &mut String) {
    use std::fmt::Write;
    let mut runners = engine.runners();
    runners.sort_by(|a, b| (&a.db, &a.def.name).cmp(&(&b.db, &b.def.name)));
    let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let labels: Vec<String> = runners.iter().map(|r| format!("db=\"{}\",trigger=\"{}\"", label(&r.db), label(&r.def.name))).collect();
    let status: Vec<TriggerStatus> = runners.iter().map(|r| engine.status(r)).collect();
    let families: [Family; 6] = [
        ("weir_trigger_calls_total", "Plugin calls per trigger.", "counter", |s| s.calls.to_string()),
        ("weir_trigger_errors_total", "Plugin calls that raised or timed out, per trigger.", "counter", |s| s.errors.to_string()),
        ("weir_trigger_queued_events", "Events waiting for a call, per trigger.", "gauge", |s| s.queued_events.to_string()),
        ("weir_trigger_lag_seconds", "How long the oldest waiting event has waited, per trigger.", "gauge", |s| s.lag_seconds.to_string()),
        ("weir_trigger_lag_commits", "Commits a WAL trigger has not completed yet.", "gauge", |s| s.lag_commits.unwrap_or(0).to_string()),
        ("weir_trigger_lagging", "1 while a WAL trigger is behind by more than --trigger-max-lag.", "gauge", |s| u8::from(s.lagging).to_string()),
    ];
    for (name, help, kind, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (st, l) in status.iter().zip(&labels) {
            let _ = writeln!(out, "{name}{{{l}}} {}", value(st));
        }
    }
    for (r, l) in runners.iter().zip(&labels) {
        r.stats.latency.render("weir_trigger_call_duration_seconds", "Plugin call latency per trigger.", l, out);
    }
}
