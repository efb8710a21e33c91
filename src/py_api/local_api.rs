//! `influxdb3_local`: the object every plugin call receives.
//!
//! `write`/`write_to_db` buffer lines that are written when the call returns successfully (in
//! chunks, so that one call writing millions of lines never holds a shard for long; the lines
//! buffered count against the call's memory limit);
//! `write_sync`/`write_sync_to_db` write before returning and raise if a line is refused;
//! `query` runs SQL through [`super::PluginSql`] (the GIL released while it runs); `info`/`warn`/`error`
//! log to the server log and `system.processing_engine_logs`; `cache` is the trigger's cache.
//! In a dry run (`plugin_test`) writes and log lines are captured instead, and nothing is written.
//!
//! It never blocks while holding the GIL: every wait (a write's flush, a query) detaches first.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::cache::{CacheSpace, PluginCache};
use super::convert::{append_rows, Nulls};
use super::services::{Services, WriteOutcome};
use crate::plugin_logs::LogLevel;

/// How long `write_sync` waits for its flush before giving up (it cannot be acked while the
/// write path is stalled behind this very trigger's queue).
pub const WRITE_SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Buffered lines are handed to the shards in writes of about this size.
pub const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// What a dry run collects instead of writing and logging.
#[derive(Default)]
pub struct Capture {
    pub log_lines: Mutex<Vec<String>>,
    pub writes: Mutex<BTreeMap<String, Vec<String>>>,
    pub errors: Mutex<Vec<String>>,
}

/// One plugin call's view of the server.
pub struct CallContext {
    pub db: String,
    pub trigger: String,
    pub services: Arc<Services>,
    pub cache: Arc<CacheSpace>,
    /// Lines to write when the call returns, by database.
    buffered: Mutex<BTreeMap<String, String>>,
    pub capture: Option<Arc<Capture>>,
}

impl CallContext {
    pub fn new(db: &str, trigger: &str, services: Arc<Services>, cache: Arc<CacheSpace>, capture: Option<Arc<Capture>>) -> CallContext {
        CallContext { db: db.to_string(), trigger: trigger.to_string(), services, cache, buffered: Mutex::new(BTreeMap::new()), capture }
    }

    pub fn log(&self, level: LogLevel, text: String) {
        match &self.capture {
            Some(c) => c.log_lines.lock().push(format!("{}: {text}", level.name())),
            None => self.services.logs.push(&self.db, &self.trigger, level, text),
        }
    }

    /// Buffers `lines` for `db`, counted against the call's memory limit.
    fn buffer(&self, db: String, lines: String) -> PyResult<()> {
        if !super::memory::charge(lines.len() + 1) {
            return Err(pyo3::exceptions::PyMemoryError::new_err(
                "the lines this call buffered to write passed its memory limit; write fewer per call",
            ));
        }
        let mut buffered = self.buffered.lock();
        let body = buffered.entry(db).or_default();
        body.push_str(&lines);
        body.push('\n');
        Ok(())
    }

    /// Writes what the call buffered; run once the call returned successfully. Failures are
    /// logged against the trigger (the call is over; nobody else could see them).
    pub fn flush_buffered(&self) {
        let buffered = std::mem::take(&mut *self.buffered.lock());
        for (db, body) in buffered {
            if let Some(c) = &self.capture {
                capture_write(c, &db, &body);
                continue;
            }
            let mut first_line = 1;
            for chunk in chunks(&body, WRITE_CHUNK_BYTES) {
                let services = self.services.clone();
                let (own_db, trigger) = (self.db.clone(), self.trigger.clone());
                let target = db.clone();
                let offset = first_line - 1;
                first_line += memchr::memchr_iter(b'\n', chunk.as_bytes()).count();
                self.services.writes_in_flight.fetch_add(1, Ordering::AcqRel);
                self.services.writer.submit(
                    db.clone(),
                    chunk.as_bytes().to_vec(),
                    false,
                    Box::new(move |r| {
                        if let Some(msg) = describe_failure(&target, offset, r) {
                            services.logs.push(&own_db, &trigger, LogLevel::Error, msg);
                        }
                        services.writes_in_flight.fetch_sub(1, Ordering::AcqRel);
                    }),
                );
            }
        }
    }
}

/// A dry run checks each line with the real parser and records it per database.
fn capture_write(c: &Capture, db: &str, body: &str) {
    for item in pipeline::lp::parse_lines(body.as_bytes()) {
        let text = String::from_utf8_lossy(item.text).into_owned();
        if let Err(e) = item.parsed {
            c.errors.lock().push(format!("invalid line for database '{db}': {e}: {text}"));
            continue;
        }
        c.writes.lock().entry(db.to_string()).or_default().push(text);
    }
}

/// `body` in pieces of about `size` bytes, each ending at a line's end (a longer line is a
/// piece of its own).
fn chunks(body: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = if rest.len() <= size {
            rest.len()
        } else {
            match rest.as_bytes()[..size].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => memchr::memchr(b'\n', rest.as_bytes()).map_or(rest.len(), |i| i + 1),
            }
        };
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

/// The log line for a failed or partly refused write; `offset` is the count of lines before
/// this piece of the call's writes, so line numbers count from the call's first line.
fn describe_failure(db: &str, offset: usize, r: Result<WriteOutcome, String>) -> Option<String> {
    match r {
        Err(e) => Some(format!("write to database '{db}' failed: {e}")),
        Ok(o) if o.rejects.is_empty() => None,
        Ok(o) => Some(format!(
            "write to database '{db}': {} line(s) refused: {}",
            o.rejects.len(),
            o.rejects.iter().map(|r| format!("line {}: {}", r.line_number + offset, r.error_message)).collect::<Vec<_>>().join("; ")
        )),
    }
}

/// The lines a write argument stands for: a `str`, or anything with a `build()` returning one.
fn lines_of(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_str()?.to_string());
    }
    if !obj.hasattr("build")? {
        return Err(PyTypeError::new_err(format!(
            "write() takes a LineBuilder (or any object with build()) or a str, not {}",
            obj.get_type().name()?
        )));
    }
    let built = obj.call_method0("build")?;
    built
        .extract::<String>()
        .map_err(|_| PyTypeError::new_err("build() must return a str of line protocol"))
}

/// `influxdb3_local`.
#[pyclass(name = "PluginApi", module = "weir", frozen)]
pub struct PluginApi {
    ctx: Arc<CallContext>,
}

impl PluginApi {
    pub fn new(ctx: Arc<CallContext>) -> PluginApi {
        PluginApi { ctx }
    }

    fn log_args(&self, level: LogLevel, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let parts: Vec<String> = args.iter().map(|a| a.str().map(|s| s.to_string_lossy().into_owned())).collect::<PyResult<_>>()?;
        self.ctx.log(level, parts.join(" "));
        Ok(())
    }

    fn write_now(&self, py: Python<'_>, db: String, obj: &Bound<'_, PyAny>, no_sync: bool) -> PyResult<()> {
        pipeline::catalog::validate_db_name(&db).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let body = lines_of(obj)?;
        if let Some(c) = &self.ctx.capture {
            capture_write(c, &db, &body);
            return Ok(());
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let writer = self.ctx.services.writer.clone();
        let target = db.clone();
        let result = py.detach(move || {
            writer.submit(db, body.into_bytes(), no_sync, Box::new(move |r| {
                let _ = tx.send(r);
            }));
            rx.recv_timeout(WRITE_SYNC_TIMEOUT)
        });
        match result {
            Err(_) => Err(PyRuntimeError::new_err(format!(
                "write to database '{target}' was not durable within {} s",
                WRITE_SYNC_TIMEOUT.as_secs()
            ))),
            Ok(r) => match describe_failure(&target, 0, r) {
                None => Ok(()),
                Some(msg) => Err(PyValueError::new_err(msg)),
            },
        }
    }
}

#[pymethods]
impl PluginApi {
    #[pyo3(signature = (*args))]
    fn info(&self, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.log_args(LogLevel::Info, args)
    }

    #[pyo3(signature = (*args))]
    fn warn(&self, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.log_args(LogLevel::Warn, args)
    }

    #[pyo3(signature = (*args))]
    fn error(&self, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.log_args(LogLevel::Error, args)
    }

    /// Buffers a write to the trigger's database, done when the call returns successfully.
    fn write(&self, line_builder: &Bound<'_, PyAny>) -> PyResult<()> {
        let lines = lines_of(line_builder)?;
        self.ctx.buffer(self.ctx.db.clone(), lines)
    }

    /// Buffers a write to another database.
    fn write_to_db(&self, db: String, line_builder: &Bound<'_, PyAny>) -> PyResult<()> {
        pipeline::catalog::validate_db_name(&db).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let lines = lines_of(line_builder)?;
        self.ctx.buffer(db, lines)
    }

    /// Writes to the trigger's database before returning; raises if a line is refused.
    #[pyo3(signature = (line_builder, no_sync=false))]
    fn write_sync(&self, py: Python<'_>, line_builder: &Bound<'_, PyAny>, no_sync: bool) -> PyResult<()> {
        self.write_now(py, self.ctx.db.clone(), line_builder, no_sync)
    }

    /// Writes to another database before returning; raises if a line is refused.
    #[pyo3(signature = (db, line_builder, no_sync=false))]
    fn write_sync_to_db(&self, py: Python<'_>, db: String, line_builder: &Bound<'_, PyAny>, no_sync: bool) -> PyResult<()> {
        self.write_now(py, db, line_builder, no_sync)
    }

    /// Runs SQL; `args` fill `$name` placeholders. Returns a list of dicts.
    #[pyo3(signature = (query, args=None, database=None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: Option<&Bound<'py, PyDict>>,
        database: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let params = match args {
            None => None,
            Some(d) => Some(params_to_json(d)?),
        };
        let db = database.unwrap_or_else(|| self.ctx.db.clone());
        let sql = self.ctx.services.sql.clone();
        let batches = py
            .detach(move || sql.query(&db, &query, params.as_ref()))
            .map_err(|e| PyRuntimeError::new_err(format!("query failed: {e}")))?;
        let list = PyList::empty(py);
        for b in &batches {
            append_rows(py, b, Nulls::AsNone, &list)?;
        }
        Ok(list)
    }

    #[getter]
    fn cache(&self) -> PluginCache {
        PluginCache::new(self.ctx.cache.clone(), self.ctx.services.global_cache.clone())
    }
}

fn params_to_json(d: &Bound<'_, PyDict>) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    let mut m = serde_json::Map::new();
    for (k, v) in d.iter() {
        let key: String = k.str()?.to_string_lossy().into_owned();
        let val = if v.is_none() {
            serde_json::Value::Null
        } else if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
            serde_json::Value::Bool(b.is_true())
        } else if let Ok(i) = v.extract::<i64>() {
            serde_json::Value::from(i)
        } else if let Ok(f) = v.extract::<f64>() {
            serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::String(v.str()?.to_string_lossy().into_owned())
        };
        m.insert(key, val);
    }
    Ok(m)
}

#[cfg(test)]
mod chunk_tests {
    use super::chunks;

    #[test]
    fn buffered_lines_are_written_in_pieces_that_end_at_line_ends() {
        let body: String = (0..1000).map(|i| format!("m,host=h{i} v={i}i {i}\n")).collect();
        let pieces: Vec<&str> = chunks(&body, 4096).collect();
        assert!(pieces.len() > 1);
        assert_eq!(pieces.concat(), body, "nothing lost or repeated");
        for p in &pieces {
            assert!(p.ends_with('\n') && p.len() <= 4096, "{p:?}");
        }
        // A line longer than a piece is a piece of its own, whole.
        let long = format!("{}\nshort v=1\n", "x".repeat(100));
        assert_eq!(chunks(&long, 10).collect::<Vec<_>>(), vec![&long[..101], "short v=1\n"]);
        assert_eq!(chunks("a v=1", 10).collect::<Vec<_>>(), vec!["a v=1"]);
        assert_eq!(chunks("", 10).count(), 0);
    }
}
