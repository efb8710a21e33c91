//! The Python-facing side of the processing engine: the embedded interpreter and its runtime
//! module, `influxdb3_local` (writes, queries, logs, caches), `LineBuilder`, and the conversion
//! of Arrow data to Python rows.
//!
//! It knows nothing of triggers, dispatch or executors ([`crate::engine`] does); what it needs
//! from the server it reaches through the traits in [`services`]. Code here runs on an executor
//! thread with the GIL held, and releases it before any wait.

pub mod arenas;
pub mod cache;
pub mod convert;
pub mod json_out;
pub mod local_api;
pub mod memory;
pub mod python;
pub mod services;

pub use self::services::{PluginSql, PluginWriter, Services, WriteDone, WriteOutcome};

#[cfg(test)]
#[path = "line_builder_tests.rs"]
mod line_builder_tests;
