//! `influxdb3_local.cache`: a key-value store for plugins, one namespace per trigger plus a
//! global one, with optional time-to-live.
//!
//! Values are Python objects kept as they are (no copy, no pickling). Expired entries are gone
//! on the next `get`, and swept when a namespace grows; each namespace is bounded, so a plugin
//! that caches without TTL gets a clear error instead of eating the server's memory. It lives as
//! long as the server, not across restarts (as SPEC §5 says).
//!
//! No Python object is ever dropped while a namespace's lock is held: dropping one can run its
//! `__del__`, which may use the cache again (the same thread would wait on its own lock) or let
//! another thread take the GIL and wait on the lock this one holds (each waits on the other).
//! Values replaced, removed or expired are taken out under the lock and dropped after it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::exceptions::{PyMemoryError, PyValueError};
use pyo3::prelude::*;

/// Entries one namespace may hold.
pub const CACHE_MAX_ENTRIES: usize = 1_000_000;

struct Entry {
    value: Py<PyAny>,
    expires: Option<Instant>,
}

#[derive(Default)]
pub struct CacheSpace {
    map: Mutex<HashMap<String, Entry>>,
}

impl CacheSpace {
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The object plugins see as `influxdb3_local.cache`.
#[pyclass(name = "PluginCache", module = "weir", frozen)]
pub struct PluginCache {
    own: std::sync::Arc<CacheSpace>,
    global: std::sync::Arc<CacheSpace>,
}

impl PluginCache {
    pub fn new(own: std::sync::Arc<CacheSpace>, global: std::sync::Arc<CacheSpace>) -> PluginCache {
        PluginCache { own, global }
    }

    fn space(&self, use_global: bool) -> &CacheSpace {
        if use_global {
            &self.global
        } else {
            &self.own
        }
    }
}

#[pymethods]
impl PluginCache {
    /// Stores `value` under `key`, for `ttl` seconds if given.
    #[pyo3(signature = (key, value, ttl=None, use_global=false))]
    fn put(&self, key: String, value: Py<PyAny>, ttl: Option<f64>, use_global: bool) -> PyResult<()> {
        let expires = match ttl {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 => Some(Instant::now() + Duration::from_secs_f64(t.min(1e9))),
            Some(t) => return Err(PyValueError::new_err(format!("ttl must be a positive number of seconds, not {t}"))),
        };
        let mut dropped: Vec<Entry> = Vec::new();
        let stored = {
            let mut map = self.space(use_global).map.lock();
            if map.len() >= CACHE_MAX_ENTRIES && !map.contains_key(&key) {
                let now = Instant::now();
                let expired: Vec<String> =
                    map.iter().filter(|(_, e)| e.expires.is_some_and(|x| x <= now)).map(|(k, _)| k.clone()).collect();
                dropped.extend(expired.iter().filter_map(|k| map.remove(k)));
            }
            if map.len() >= CACHE_MAX_ENTRIES && !map.contains_key(&key) {
                Err(PyMemoryError::new_err(format!(
                    "the cache holds {CACHE_MAX_ENTRIES} entries already; delete some or give them a ttl"
                )))
            } else {
                dropped.extend(map.insert(key, Entry { value, expires }));
                Ok(())
            }
        };
        drop(dropped);
        stored
    }

    /// The value under `key`, or `default` if there is none or it expired.
    #[pyo3(signature = (key, default=None, use_global=false))]
    fn get(&self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>, use_global: bool) -> Py<PyAny> {
        let expired = {
            let mut map = self.space(use_global).map.lock();
            match map.get(key) {
                Some(e) if e.expires.is_none_or(|x| x > Instant::now()) => return e.value.clone_ref(py),
                Some(_) => map.remove(key),
                None => None,
            }
        };
        drop(expired);
        default.unwrap_or_else(|| py.None())
    }

    /// Removes `key`; `True` if it was there (and not expired).
    #[pyo3(signature = (key, use_global=false))]
    fn delete(&self, key: &str, use_global: bool) -> bool {
        // The guard is a temporary: it is released before `removed` is dropped.
        let removed = self.space(use_global).map.lock().remove(key);
        removed.is_some_and(|e| e.expires.is_none_or(|x| x > Instant::now()))
    }
}
