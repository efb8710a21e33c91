//! Server configuration: the flags of `weir serve`, each also read from a `WEIR_*` variable.
//!
//! It only describes; `server` acts on it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::engine::MaxLag;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectStoreKind {
    /// Files under `--data-dir`.
    File,
    /// A temporary directory removed at exit: nothing survives a restart.
    Memory,
    /// An S3-compatible bucket (`--bucket`, `--aws-*`) for Parquet files, their index and a
    /// copy of the catalog; the WAL and the catalog itself stay under `--data-dir`.
    S3,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Names this node; prefix of its files in the object store.
    #[arg(long, env = "WEIR_NODE_ID", default_value = "weir")]
    pub node_id: String,

    /// Where WAL, catalog and Parquet live.
    #[arg(long, env = "WEIR_OBJECT_STORE", value_enum, default_value = "file")]
    pub object_store: ObjectStoreKind,

    /// Root directory for the `file` object store; with `s3`, where the WAL and the catalog
    /// live.
    #[arg(long, env = "WEIR_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Bucket of the `s3` object store.
    #[arg(long, env = "WEIR_BUCKET")]
    pub bucket: Option<String>,

    /// S3 endpoint URL, for S3-compatible servers (MinIO, Ceph, moto); AWS's when unset.
    #[arg(long, env = "AWS_ENDPOINT")]
    pub aws_endpoint: Option<String>,

    /// S3 access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub aws_access_key_id: Option<String>,

    /// S3 secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub aws_secret_access_key: Option<String>,

    /// S3 session token, for temporary credentials.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    pub aws_session_token: Option<String>,

    /// S3 region.
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    pub aws_default_region: String,

    /// Allow an `http://` S3 endpoint.
    #[arg(long, env = "AWS_ALLOW_HTTP")]
    pub aws_allow_http: bool,

    /// Plugin files; relative plugin filenames resolve here.
    #[arg(long, env = "WEIR_PLUGIN_DIR", default_value = "./plugins")]
    pub plugin_dir: PathBuf,

    /// HTTP listen address.
    #[arg(long, env = "WEIR_HTTP_BIND", default_value = "127.0.0.1:8181")]
    pub http_bind: SocketAddr,

    /// Group-commit period; WAL triggers fire after each flush.
    #[arg(long, env = "WEIR_WAL_FLUSH_INTERVAL", default_value = "1s", value_parser = crate::time::parse_duration)]
    pub wal_flush_interval: Duration,

    /// Accept requests without a token. Auth is on by default: every route but /health and /ping
    /// needs `Authorization: Bearer TOKEN` (create the first with `weir create token --admin`).
    #[arg(long, env = "WEIR_WITHOUT_AUTH")]
    pub without_auth: bool,

    /// An offline admin token file (`weir create token --admin --offline --output-file F`):
    /// its token is created at start unless a token of its name exists.
    #[arg(long, env = "WEIR_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Routes to serve without a token, comma separated: health, ping, metrics (health and ping
    /// never need one; metrics does unless named here).
    #[arg(long, env = "WEIR_DISABLE_AUTHZ", value_delimiter = ',', value_parser = ["health", "ping", "metrics"])]
    pub disable_authz: Vec<String>,

    /// Ingest shards (threads, one per core). Default: three cores of every four, and every core
    /// below four (a 2-core machine ingests on both; Python and queries share them).
    #[arg(long, env = "WEIR_SHARDS")]
    pub shards: Option<usize>,

    /// Python executor threads. Default: one per four cores, at least one.
    #[arg(long, env = "WEIR_PY_EXECUTORS")]
    pub py_executors: Option<usize>,

    /// Longest one plugin call may run before it is interrupted (a trigger's own `timeout`
    /// setting overrides it).
    #[arg(long, env = "WEIR_PLUGIN_TIMEOUT", default_value = "60s", value_parser = crate::time::parse_duration)]
    pub plugin_timeout: Duration,

    /// Most memory one plugin call may grow Python's heap by (and buffer in writes); past it the
    /// plugin gets `MemoryError`. A trigger's `memory_limit` setting overrides it. A size
    /// (`512MiB`) or `none`. Default: an eighth of the machine's RAM.
    #[arg(long, env = "WEIR_PLUGIN_MEMORY_LIMIT", value_parser = parse_memory_limit)]
    pub plugin_memory_limit: Option<MemoryLimit>,

    /// Most rows one call of a WAL trigger is given (whole commits, so one large write may pass
    /// it): a trigger that has fallen behind catches up in calls of this size.
    #[arg(long, env = "WEIR_TRIGGER_MAX_BATCH_ROWS", default_value_t = 100_000)]
    pub trigger_max_batch_rows: usize,

    /// A WAL trigger whose oldest unhandled rows are older than this (`10m`), or that holds more
    /// than this much closed WAL (`512MiB`), is marked `lagging` and logged (its rows are still
    /// kept for it; `none`: never marked).
    #[arg(long, env = "WEIR_TRIGGER_MAX_LAG", default_value = "10m", value_parser = parse_max_lag)]
    pub trigger_max_lag: MaxLag,

    /// Bytes of recent commits kept in memory for WAL triggers (default: an eighth of
    /// `--max-buffer-bytes`); a trigger further behind reads the WAL from disk.
    #[arg(long, env = "WEIR_TRIGGER_MEMORY_BYTES")]
    pub trigger_memory_bytes: Option<usize>,

    /// On SIGTERM or Ctrl-C, how long to wait for running plugin calls (and the writes they
    /// make) to finish before exiting. No new call starts meanwhile.
    #[arg(long, env = "WEIR_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = crate::time::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Threads of the query runtime. Default: half the cores, at least two (so one long query
    /// never leaves every other request waiting for the only thread).
    #[arg(long, env = "WEIR_QUERY_THREADS")]
    pub query_threads: Option<usize>,

    /// Memory all running queries share, in bytes (default: an eighth of RAM). A query that
    /// needs more than what is left gets 429; queries never spill to disk.
    #[arg(long, env = "WEIR_QUERY_MEMORY_BYTES")]
    pub query_memory_bytes: Option<usize>,

    /// Longest a query may run before it is stopped (504).
    #[arg(long, env = "WEIR_QUERY_TIMEOUT", default_value = "5m", value_parser = crate::time::parse_duration)]
    pub query_timeout: Duration,

    /// Queries over HTTP that may run at once; past it they get 429 with Retry-After (default:
    /// four per core, at least 8).
    #[arg(long, env = "WEIR_MAX_CONCURRENT_QUERIES")]
    pub max_concurrent_queries: Option<usize>,

    /// Longest a client may take to send a request's head, from its first byte; a slower one is
    /// disconnected.
    #[arg(long, env = "WEIR_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = crate::time::parse_duration)]
    pub http_header_timeout: Duration,

    /// Longest a connection may stay open with no request in flight and nothing sent.
    #[arg(long, env = "WEIR_HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = crate::time::parse_duration)]
    pub http_idle_timeout: Duration,

    /// Longest a request body may take to arrive whole, from its head (408 past it).
    #[arg(long, env = "WEIR_HTTP_BODY_TIMEOUT", default_value = "60s", value_parser = crate::time::parse_duration)]
    pub http_body_timeout: Duration,

    /// Connections open at once; past it a new one is answered 503 and closed. Default: the
    /// open-file limit (raised to its hard limit at start) less a reserve.
    #[arg(long, env = "WEIR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Largest request body accepted, in bytes (also bounds a gzip body once decompressed).
    #[arg(long, env = "WEIR_MAX_HTTP_REQUEST_SIZE", default_value_t = 10 * 1024 * 1024)]
    pub max_http_request_size: usize,

    /// Refuse `install_packages` and `install_requirements` (403): plugins get only the
    /// packages an operator put in the plugin environment.
    #[arg(long, env = "WEIR_DISABLE_PACKAGE_MANAGEMENT")]
    pub disable_package_management: bool,

    /// Longest one pip run (or the plugin virtualenv's creation) may take.
    #[arg(long, env = "WEIR_PACKAGE_INSTALL_TIMEOUT", default_value = "15m", value_parser = crate::time::parse_duration)]
    pub package_install_timeout: Duration,

    /// Let plugins import the system Python's site-packages (after the plugin venv's). Off by
    /// default: Debian's copies are often older than what a plugin needs, and InfluxDB 3's
    /// bundled Python has none.
    #[arg(long, env = "WEIR_PLUGIN_SYSTEM_PACKAGES")]
    pub plugin_system_packages: bool,

    /// Base URL for `gh:` plugin names.
    #[arg(
        long,
        env = "WEIR_PLUGIN_REPO",
        default_value = "https://raw.githubusercontent.com/influxdata/influxdb3_plugins/main/"
    )]
    pub plugin_repo: String,

    /// How long freed memory stays mapped for reuse before the allocator returns it to the OS
    /// (`-1`: never; `0`: at once). Short delays make every large write fault in fresh pages.
    #[arg(long, env = "WEIR_ALLOCATOR_PURGE_DELAY_MS", default_value_t = 10_000, allow_hyphen_values = true)]
    pub allocator_purge_delay_ms: i64,

    /// Let the heap use transparent huge pages. Off by default: the write buffer grows by
    /// fresh memory all the time, and faulting it in 2 MiB pages (each zeroed whole) cost ~17%
    /// more CPU a line than 4 KiB pages in the ingest load test.
    #[arg(long, env = "WEIR_ALLOCATOR_HUGE_PAGES")]
    pub allocator_huge_pages: bool,

    /// Width of a Parquet file's time window; the buffer is persisted whenever a window of the
    /// wall clock closes.
    #[arg(long, env = "WEIR_GEN1_DURATION", default_value = "10m", value_parser = crate::time::parse_duration)]
    pub gen1_duration: Duration,

    /// Cap on the bytes the write buffer holds; at the cap writes are answered 503 with
    /// `Retry-After` until persistence catches up. Default: a quarter of the machine's RAM.
    #[arg(long, env = "WEIR_MAX_BUFFER_BYTES")]
    pub max_buffer_bytes: Option<usize>,

    /// Persist as soon as the buffer holds this many bytes, whatever the clock. Default: half
    /// of `--max-buffer-bytes`.
    #[arg(long, env = "WEIR_PERSIST_THRESHOLD_BYTES")]
    pub persist_threshold_bytes: Option<usize>,

    /// Start even if a WAL segment is damaged (not just a torn tail): the segment is moved
    /// aside and the records after the damage are lost. Without it the server refuses to start.
    #[arg(long, env = "WEIR_WAL_SKIP_CORRUPT")]
    pub wal_skip_corrupt: bool,

    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, env = "WEIR_LOG_FILTER", default_value = "info")]
    pub log_filter: String,
}

impl ServeConfig {
    pub fn shard_count(&self) -> usize {
        self.shards.unwrap_or_else(|| cores() - cores() / 4).max(1)
    }

    pub fn py_executor_count(&self) -> usize {
        self.py_executors.unwrap_or_else(|| (cores() / 4).max(1)).max(1)
    }

    pub fn max_buffer_bytes(&self) -> usize {
        self.max_buffer_bytes.unwrap_or_else(|| (physical_memory_bytes() / 4).max(64 << 20))
    }

    pub fn query_limits(&self) -> crate::query::QueryLimits {
        crate::query::QueryLimits {
            memory_bytes: self.query_memory_bytes.unwrap_or_else(|| (physical_memory_bytes() / 8).max(64 << 20)).max(1),
            timeout: self.query_timeout,
        }
    }

    pub fn max_concurrent_queries(&self) -> usize {
        self.max_concurrent_queries.unwrap_or_else(|| (cores() * 4).max(8)).max(1)
    }

    pub fn persist_threshold_bytes(&self) -> usize {
        self.persist_threshold_bytes.unwrap_or_else(|| self.max_buffer_bytes() / 2).max(1)
    }

    pub fn trigger_memory_bytes(&self) -> usize {
        self.trigger_memory_bytes.unwrap_or_else(|| self.max_buffer_bytes() / 8)
    }

    pub fn plugin_memory_limit(&self) -> Option<u64> {
        self.plugin_memory_limit.unwrap_or(MemoryLimit(Some(physical_memory_bytes() as u64 / 8))).0
    }

    pub fn query_thread_count(&self) -> usize {
        self.query_threads.unwrap_or_else(|| (cores() / 2).max(2)).max(1)
    }
}

/// `--trigger-max-lag`: a duration (`10m`), a size of WAL kept for the trigger (`512MiB`,
/// `2GB`), or `none`.
fn parse_max_lag(s: &str) -> Result<MaxLag, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(MaxLag::None);
    }
    if let Ok(d) = crate::time::parse_duration(t) {
        return Ok(MaxLag::Time(d));
    }
    parse_size(t).map(MaxLag::Bytes).map_err(|_| format!("'{s}' is not a duration (10m), a size (512MiB) or none"))
}

/// A size in bytes: a number with an optional unit (B, KB, MB, GB, KiB, MiB, GiB).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("'{s}' is not a size: expected a number of bytes with an optional unit (512MiB, 2GB)");
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    Ok(n.saturating_mul(scale))
}

/// `--plugin-memory-limit`: a size, or `none`.
fn parse_memory_limit(s: &str) -> Result<MemoryLimit, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(MemoryLimit(None));
    }
    match parse_size(s)? {
        0 => Err("a memory limit must be more than zero bytes (or none)".into()),
        n => Ok(MemoryLimit(Some(n))),
    }
}

/// A plugin call's memory limit in bytes; `None` for no limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryLimit(pub Option<u64>);

/// The machine's RAM, from `/proc/meminfo` (4 GiB if it cannot be read).
pub fn physical_memory_bytes() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(4 << 30)
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_lag_is_a_duration_a_size_or_none() {
        assert_eq!(parse_max_lag("10m"), Ok(MaxLag::Time(Duration::from_secs(600))));
        assert_eq!(parse_max_lag("512MiB"), Ok(MaxLag::Bytes(512 << 20)));
        assert_eq!(parse_max_lag("2GB"), Ok(MaxLag::Bytes(2_000_000_000)));
        assert_eq!(parse_max_lag("none"), Ok(MaxLag::None));
        assert!(parse_max_lag("lots").unwrap_err().contains("512MiB"));
    }
}
