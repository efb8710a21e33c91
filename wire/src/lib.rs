//! Weir's wire types: what arrives as text from a flag, a URL or a request body and becomes a
//! value, here and nowhere else. Durations and instants ([`time`]), trigger specifications
//! ([`spec`]), the parameters of HTTP requests ([`params`]), and InfluxQL statements
//! ([`influxql`]).
//!
//! A leaf: it depends on no other crate of the workspace and does no I/O, so the server, the
//! CLI and the fuzz targets share it, and [`fuzzing`] holds the checks those targets run.

pub mod fuzzing;
pub mod influxql;
pub mod params;
pub mod spec;
pub mod time;
