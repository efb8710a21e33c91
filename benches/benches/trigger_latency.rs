//! Trigger activation latency: from a commit settled in the commit log (the moment the shard
//! has made it durable and handed it over) and the engine's feeder woken, to the plugin's first
//! line running, p50/p99/p999 over many commits, one at a time. (In the server the feeder wakes
//! on the `--wal-flush-interval` tick; this measures what follows the tick.) Also the round trip to the plugin's `write_sync` reaching the
//! write path. Target (issue "Processing engine"): p99 < 100 µs.
//!
//! Then schedule jitter: an `every:10ms` trigger whose plugin reports `time_ns() - call_time`
//! (when it started minus when it was scheduled). Target (issue "Schedule and request
//! triggers"): p99 < 1 ms.
//!
//! The commit carries its own send time (CLOCK_MONOTONIC ns, the clock of both Rust's `Instant`
//! and Python's `time.monotonic_ns`); the plugin reports `monotonic_ns() - t0` through
//! `write_sync`, which a bench-side writer collects. Run with
//! `cargo bench -p weir-benches --bench trigger_latency`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use pipeline::buffer::WriteBuffer;
use pipeline::catalog::{Catalog, CatalogOp, Column, ColumnKind, ErrorBehavior, FieldType, Trigger};
use pipeline::commit_log::{CommitLog, TableBatch};
use pipeline::wal_retention::WalRetention;
use weir::py_api::{PluginWriter, Services, WriteDone, WriteOutcome};
use weir::plugin_logs::PluginLogs;
use weir::engine::cursors::CursorStore;
use weir::engine::{Engine, EngineConfig, WalSource};
use weir::query::plugin_sql::RuntimeSql;
use weir::query::QueryEngine;

const FLUSHES: usize = 20_000;
const WARMUP: usize = 1_000;

struct Collector(Sender<Vec<u8>>);

impl PluginWriter for Collector {
    fn submit(&self, _db: String, body: Vec<u8>, _no_sync: bool, done: WriteDone) {
        let _ = self.0.send(body);
        done(Ok(WriteOutcome { lines_written: 1, rejects: vec![] }));
    }
}

fn monotonic_ns() -> i64 {
    let mut ts = libc_timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given.
    unsafe { clock_gettime(1, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

#[repr(C)]
struct libc_timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clk: i32, ts: *mut libc_timespec) -> i32;
}

fn batch_with_t0(t0: i64) -> TableBatch {
    use arrow::array::{Int64Array, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let schema = Arc::new(Schema::new(vec![
        Field::new("t0", DataType::Int64, true),
        Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
    ]));
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(vec![t0])), Arc::new(TimestampNanosecondArray::from(vec![t0]))],
    )
    .expect("batch");
    TableBatch { db_id: 0, db_name: "bench".into(), table_name: "lat".into(), batch, commit: 0 }
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("lat.py"),
        "from time import monotonic_ns\n\
         def process_writes(influxdb3_local, table_batches, args=None):\n    \
             entered = monotonic_ns()\n    \
             t0 = table_batches[0]['rows'][0]['t0']\n    \
             influxdb3_local.write_sync(f'lat activation={entered - t0}i,t0={t0}i')\n",
    )
    .expect("plugin");
    std::fs::write(
        dir.path().join("jitter.py"),
        "import time\n\
         from datetime import timezone\n\
         def process_scheduled_call(influxdb3_local, call_time, args=None):\n    \
             now = time.time_ns()\n    \
             at = call_time.replace(tzinfo=timezone.utc)\n    \
             ns = int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000\n    \
             influxdb3_local.write_sync(f'jitter late={now - ns}i')\n",
    )
    .expect("plugin");
    let catalog = Arc::new(Catalog::in_memory());
    let cols = vec![Column { name: "t0".into(), kind: ColumnKind::Field(FieldType::Integer) }];
    catalog
        .update(&[
            CatalogOp::CreateDatabase { name: "bench".into(), retention_ns: None },
            CatalogOp::CreateTable { db: "bench".into(), table: "lat".into(), columns: cols },
            CatalogOp::CreateTrigger {
                db: "bench".into(),
                trigger: Trigger {
                    name: "lat".into(),
                    plugin_filename: "lat.py".into(),
                    specification: "table:lat".into(),
                    arguments: None,
                    run_async: false,
                    error_behavior: ErrorBehavior::Log,
                    disabled: false,
                    timeout_ms: None,
                    memory_limit_bytes: None,
                },
            },
        ])
        .expect("catalog");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let logs = Arc::new(PluginLogs::default());
    let buffer = Arc::new(WriteBuffer::new());
    let (tx, written): (Sender<Vec<u8>>, Receiver<Vec<u8>>) = crossbeam_channel::unbounded();
    let services = Arc::new(Services {
        writer: Arc::new(Collector(tx)),
        sql: Arc::new(RuntimeSql {
            engine: Arc::new(QueryEngine::new(catalog.clone(), buffer.clone(), Arc::new(weir::storage::Storage::in_memory()), logs.clone(), 1, Default::default()).expect("query engine")),
            runtime: runtime.handle().clone(),
        }),
        logs: logs.clone(),
        global_cache: Arc::default(),
        writes_in_flight: Default::default(),
    });
    let catalog_for_jitter = catalog.clone();
    let log = Arc::new(CommitLog::new(buffer.commits(), 64 << 20));
    let wal = WalSource {
        log: log.clone(),
        root: dir.path().join("wal"),
        retention: Arc::new(WalRetention::new()),
        cursors: CursorStore::open(dir.path().join("cursors.json")).expect("cursors"),
    };
    let engine = Engine::start(
        EngineConfig {
            plugin_dir: dir.path().to_path_buf(),
            plugin_repo: String::new(),
            executors: 1,
            default_timeout: Duration::from_secs(60),
            memory_limit: None,
            max_batch_rows: 100_000,
            // Fed only when woken below.
            flush_interval: Duration::from_secs(3600),
            max_lag: weir::engine::MaxLag::None,
            wal,
            packages: weir::engine::packages::PackagePolicy { enabled: false, timeout: Duration::from_secs(1), system_site_packages: false },
            auth_token: None,
        },
        catalog,
        buffer.clone(),
        services,
    )
    .expect("engine");

    let mut activation = Vec::with_capacity(FLUSHES);
    let mut round_trip = Vec::with_capacity(FLUSHES);
    let started = Instant::now();
    for i in 0..FLUSHES + WARMUP {
        let t0 = monotonic_ns();
        let commit = buffer.begin_commit();
        log.append(commit, &[TableBatch { commit, ..batch_with_t0(t0) }]);
        buffer.end_commit(commit);
        engine.feed_now();
        let line = written.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no answer; logs: {:?}", logs.for_database("bench")));
        let back = monotonic_ns();
        let text = String::from_utf8(line).expect("utf8");
        let act: i64 = text.split("activation=").nth(1).and_then(|s| s.split('i').next()).and_then(|s| s.parse().ok()).expect("activation");
        if i >= WARMUP {
            activation.push(act);
            round_trip.push(back - t0);
        }
    }
    let elapsed = started.elapsed();
    activation.sort_unstable();
    round_trip.sort_unstable();
    let us = |ns: i64| ns as f64 / 1000.0;
    println!("trigger activation over {FLUSHES} flushes (one sync trigger, one executor, 1-row flushes):");
    println!(
        "  flush handed over -> plugin entered: p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs",
        us(percentile(&activation, 0.5)),
        us(percentile(&activation, 0.99)),
        us(percentile(&activation, 0.999)),
        us(*activation.last().unwrap_or(&0))
    );
    println!(
        "  round trip to the plugin's write_sync:  p50 {:.1} µs  p99 {:.1} µs",
        us(percentile(&round_trip, 0.5)),
        us(percentile(&round_trip, 0.99))
    );
    println!("  {:.0} flushes/s one at a time", (FLUSHES + WARMUP) as f64 / elapsed.as_secs_f64());

    // Schedule jitter.
    catalog_for_jitter.update(&[CatalogOp::CreateTrigger {
        db: "bench".into(),
        trigger: Trigger {
            name: "jitter".into(),
            plugin_filename: "jitter.py".into(),
            specification: "every:10ms".into(),
            arguments: None,
            run_async: false,
            error_behavior: ErrorBehavior::Log,
            disabled: false,
            timeout_ms: None,
            memory_limit_bytes: None,
        },
    }])
    .expect("jitter trigger");
    engine.reconcile();
    let mut late = Vec::with_capacity(TICKS);
    while late.len() < TICKS {
        let line = written.recv_timeout(Duration::from_secs(10)).expect("a tick");
        let text = String::from_utf8(line).expect("utf8");
        if let Some(v) = text.split("late=").nth(1).and_then(|s| s.split('i').next()).and_then(|s| s.parse::<i64>().ok()) {
            late.push(v);
        }
    }
    late.sort_unstable();
    println!("schedule jitter over {TICKS} ticks of every:10ms (call started - scheduled instant):");
    println!(
        "  p50 {:.1} µs  p99 {:.1} µs  max {:.1} µs",
        us(percentile(&late, 0.5)),
        us(percentile(&late, 0.99)),
        us(*late.last().unwrap_or(&0))
    );
}

const TICKS: usize = 1_000;
