//! Request triggers: one HTTP request to `/api/v3/engine/PATH`, carried to a plugin's
//! `process_request` and its answer carried back.
//!
//! The HTTP side builds a [`RequestCall`] and awaits its reply; the executor passes query
//! parameters and headers as `dict[str, str]` (header names lower-case, `Authorization`
//! removed, repeats joined by `, `, bytes decoded lossily) and the body as `bytes`, and turns
//! whatever the plugin returned into a reply with `weir_runtime._response` (every shape of
//! SPEC §5). The reply is sent exactly once: a failure answers 500 (504 past the time limit).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use super::dispatch::{Enqueued, Event, TRIGGER_QUEUE_EVENTS};
use super::runner::Runner;
use super::spec::TriggerSpec;
use super::{Engine, EngineError};

/// What the plugin's answer became.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct RequestCall {
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
    reply: Mutex<Option<oneshot::Sender<Reply>>>,
}

impl RequestCall {
    pub fn new(query: Vec<(String, String)>, headers: Vec<(String, Vec<u8>)>, body: Bytes) -> (RequestCall, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        (RequestCall { query, headers, body, reply: Mutex::new(Some(tx)) }, rx)
    }

    fn answer(&self, reply: Reply) {
        if let Some(tx) = self.reply.lock().take() {
            let _ = tx.send(reply);
        }
    }

    pub fn answer_error(&self, status: u16, message: &str) {
        let body = serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default();
        self.answer(Reply { status, headers: vec![("content-type".into(), "application/json".into())], body });
    }

    /// The three request arguments of `process_request`.
    pub fn to_python<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>, Bound<'py, PyBytes>)> {
        let query = PyDict::new(py);
        for (k, v) in &self.query {
            query.set_item(k, v)?;
        }
        let mut merged: Vec<(String, String)> = Vec::new();
        for (name, value) in &self.headers {
            let name = name.to_ascii_lowercase();
            if name == "authorization" {
                continue;
            }
            let value = String::from_utf8_lossy(value).into_owned();
            match merged.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(&value);
                }
                None => merged.push((name, value)),
            }
        }
        let headers = PyDict::new(py);
        for (k, v) in merged {
            headers.set_item(k, v)?;
        }
        Ok((query, headers, PyBytes::new(py, &self.body)))
    }

    /// Answers with what the plugin returned; an unusable return value is an error.
    ///
    /// The common answers (a plain `dict`/`list` as JSON, a `str` as HTML) are encoded here, as
    /// `weir_runtime._response` would, without its type probing (and JSON without `json.dumps`'s
    /// Python frames, see [`crate::py_api::json_out`]); every other shape goes to it.
    pub fn answer_from_python(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static RESPONSE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let reply = if value.is_exact_instance_of::<PyDict>() || value.is_exact_instance_of::<PyList>() {
            let body = match crate::py_api::json_out::dumps(value) {
                Some(text) => text.into_bytes(),
                None => DUMPS.import(py, "json", "dumps")?.call1((value,))?.cast::<PyString>()?.to_str()?.as_bytes().to_vec(),
            };
            Reply { status: 200, headers: vec![("Content-Type".into(), "application/json".into())], body }
        } else if let Ok(s) = value.cast_exact::<PyString>() {
            let body = s.to_str()?.as_bytes().to_vec();
            Reply { status: 200, headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())], body }
        } else {
            let normalized = RESPONSE.import(py, "weir_runtime", "_response")?.call1((value,))?;
            let (status, headers, body): (u16, Vec<(String, String)>, Vec<u8>) = normalized.extract()?;
            Reply { status, headers, body }
        };
        self.answer(reply);
        Ok(())
    }
}

/// A request handed to its trigger, whose answer is still to come.
pub struct PendingReply {
    reply: futures_channel::oneshot::Receiver<Reply>,
    /// How long to wait before giving up on the answer (the caller's runtime keeps the time).
    pub bound: Duration,
    trigger: String,
}

impl PendingReply {
    /// The plugin's answer, or `Timeout` once `expired` completes first: pass a timer of
    /// [`PendingReply::bound`] from the runtime the caller runs on.
    pub async fn wait(self, expired: impl std::future::Future<Output = ()>) -> Result<Reply, EngineError> {
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

impl Engine {
    fn request_runner(&self, path: &str) -> Option<Arc<Runner>> {
        self.inner.runners.read().values().find(|r| matches!(&r.spec, TriggerSpec::Request(p) if p == path)).cloned()
    }

    /// The database of the request trigger serving `path`, if one does.
    pub fn request_trigger_db(&self, path: &str) -> Option<String> {
        self.request_runner(path).map(|r| r.db.clone())
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
        let runner = self.request_runner(path).ok_or_else(|| EngineError::NoRoute(path.to_string()))?;
        let (call, reply) = RequestCall::new(query, headers, body);
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
        Ok(PendingReply { reply, bound: runner.limits.timeout + Duration::from_secs(5), trigger: runner.def.name.to_string() })
    }
}
