//! Weir: a time-series database that speaks InfluxDB 3 Core's HTTP API.
//!
//! Where things live: [`server`] wires the threads, [`http`] routes requests, [`query`] runs
//! SQL, [`storage`] persists Parquet, [`engine`] runs Python plugins on triggers through
//! [`py_api`], [`auth`] says who may do what, [`cli`] is the command line; [`time`], [`plugin_logs`] and [`trigger_status`] are
//! leaves they all share. The data path itself is the `pipeline` crate.

pub mod alloc;
pub mod auth;
pub mod cli;
pub mod config;
pub mod engine;
pub mod flight;
pub mod flight_sql;
pub mod http;
pub mod influxql;
pub mod metrics;
pub mod plugin_logs;
pub mod py_api;
pub mod query;
pub mod server;
pub mod storage;
/// Durations and instants, shared with the CLI and the fuzz targets (the `weir-wire` leaf).
pub use weir_wire::time;
pub mod trigger_status;
