//! Weir's data path: line protocol in, durable WAL records and Arrow batches out.
//!
//! The road a write travels, in module order: [`lp`] parses the body in place, [`write`] checks
//! it against the [`catalog`], [`shard`] appends it to the shard's open [`wal`] record and Arrow
//! builders ([`batch`]), and each flush moves the batches into the [`buffer`] (what queries read)
//! and the [`commit_log`] (what the processing engine's WAL triggers read; behind it they read
//! the WAL with [`wal_read`]). [`replay`] rebuilds the buffer from the WAL at start-up.
//!
//! This crate knows nothing of HTTP, Python or SQL, so it builds and benches on its own.

// Tests may unwrap: a panic there is a failed test, not a crashed server.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod batch;
pub mod buffer;
pub mod catalog;
pub mod commit_log;
pub mod fuzzing;
pub mod lp;
pub mod name_eq;
pub mod overlaps;
pub mod replay;
pub mod retention;
pub mod shard;
pub mod stats;
pub mod tokens;
pub mod wal;
pub mod wal_read;
pub mod wal_replay;
pub mod wal_retention;
pub mod write;
