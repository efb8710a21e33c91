//! Weir: a time-series database that speaks InfluxDB 3 Core's HTTP API.
//!
//! Where things live: [`server`] wires the threads, [`http`] routes requests, [`query`] runs
//! SQL, [`engine`] runs Python plugins on triggers, [`cli`] is the command line; the data path itself is the `pipeline` crate.

pub mod alloc;
pub mod cli;
pub mod config;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod query;
pub mod server;
pub mod storage;
