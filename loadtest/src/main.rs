//! `weir-loadtest`: drives a real `weir` binary and, side by side in the same run, its peers
//! (VictoriaMetrics and InfluxDB 1.6 for ingest and queries, uvicorn for request triggers),
//! each started alone on loopback with a temporary data directory and stopped after. Prints a
//! table, ratios Weir/peer, and optionally writes the whole report as JSON.
//!
//! `bash scripts/install-peers.sh` installs the peers and wrk; `cargo build --release` builds
//! the `weir` it drives. See docs/PERFORMANCE.md for the figures and the commands behind them.

mod cpu;
mod delivery;
mod duckdb;
mod hostile;
mod http1;
mod ingest;
mod query;
mod readback;
mod report;
mod request;
mod restart;
mod rss;
mod targets;
mod trigger;
mod tsbs;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, ValueEnum};

use ingest::{Load, Timeline};
use report::Report;
use targets::{Kind, Target};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Ingest,
    Query,
    Trigger,
    Request,
    /// Load `--restart-lines`, kill -9, time the restart (Weir only; not part of `all`).
    Restart,
    /// Ingest with and without a trigger that takes 2 s a call (Weir only; not part of `all`).
    SlowTrigger,
    /// Rows/s handed to a trigger `--catchup-lines` behind (Weir only; not part of `all`).
    Catchup,
    /// Ingest with auth off, then on (Basic auth on every write), same load (Weir only; not
    /// part of `all`).
    Auth,
    /// Ingest with no plugin, then beside each hostile plugin in turn (Weir only; not part of
    /// `all`).
    Hostile,
    /// One answer of `--readback-rows` rows as JSON, Parquet and Arrow Flight (Weir only; not
    /// part of `all`).
    Readback,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Peer {
    #[value(name = "victoria-metrics")]
    VictoriaMetrics,
    #[value(name = "influxdb-1.6")]
    Influx16,
    Uvicorn,
    /// Weir alone.
    None,
}

#[derive(Parser, Debug)]
#[command(name = "weir-loadtest", about = "Load tests of Weir, side by side with its peers")]
struct Args {
    /// Scenarios to run, in order.
    #[arg(required = true, value_enum)]
    scenarios: Vec<Scenario>,
    /// The weir binary to start.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/weir"))]
    weir_bin: PathBuf,
    /// Extra flags for `weir serve` (repeat it; none means Weir's defaults).
    #[arg(long = "weir-flag", allow_hyphen_values = true)]
    weir_flags: Vec<String>,
    /// Peers to run beside Weir.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "victoria-metrics,influxdb-1.6,uvicorn")]
    peers: Vec<Peer>,
    /// Hosts (series per field) in the TSBS data.
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Lines per write request.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Concurrent write connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds of ingest per target.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Times each query runs.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// Probes written in the trigger scenario.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// wrk connections for the request scenario.
    #[arg(long, default_value_t = 32)]
    request_connections: usize,
    /// Seconds of wrk per target.
    #[arg(long, default_value_t = 10)]
    request_duration: u64,
    /// A python with the `duckdb` package (scripts/install-peers.sh makes target/peers-venv):
    /// the query scenario then has Weir persist its data set and asks DuckDB the same
    /// questions over Weir's Parquet files.
    #[arg(long)]
    duckdb_python: Option<PathBuf>,
    /// Lines loaded before the restart scenario's kill.
    #[arg(long, default_value_t = 50_000_000)]
    restart_lines: u64,
    /// Lines written while the catch-up scenario's trigger is blocked.
    #[arg(long, default_value_t = 10_000_000)]
    catchup_lines: u64,
    /// Rows of the read-back scenario's one answer.
    #[arg(long, default_value_t = 1_000_000)]
    readback_rows: usize,
    /// A python with pyarrow (scripts/test.sh makes target/test-venv), for the read-back
    /// scenario's Flight client.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-venv/bin/python"))]
    flight_python: PathBuf,
    /// Also write the report here, as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let all = args.scenarios.contains(&Scenario::All);
    let wants = |s: Scenario| all || args.scenarios.contains(&s);
    let load = Load { hosts: args.hosts, batch: args.batch, connections: args.connections };
    let mut tsdb_targets = vec![Kind::Weir];
    if args.peers.contains(&Peer::VictoriaMetrics) {
        tsdb_targets.push(Kind::VictoriaMetrics);
    }
    if args.peers.contains(&Peer::Influx16) {
        tsdb_targets.push(Kind::Influx16);
    }
    let start = |kind: Kind| Target::start(kind, &args.weir_bin, &args.weir_flags);
    let mut report = Report::default();

    if wants(Scenario::Ingest) {
        for &kind in &tsdb_targets {
            eprintln!("ingest: {} for {} s ...", kind.label(), args.duration);
            let target = start(kind)?;
            let until = Instant::now() + Duration::from_secs(args.duration);
            let rss = rss::Sampler::start(target.pid());
            // Half-second ticks over 60 days: a billion fresh lines at 100 hosts.
            let timeline = Timeline::ending_an_hour_ago_every(60, 500_000_000);
            let mut out = ingest::drive(&target.write_url(), &load, timeline, Some(until), None);
            out.rss = rss.finish();
            report.rows.push(out.row("ingest", kind.label(), &load));
        }
    }
    if wants(Scenario::Query) {
        for &kind in &tsdb_targets {
            eprintln!("query: {} (loading a day of data first) ...", kind.label());
            let target = if kind == Kind::Weir && args.duckdb_python.is_some() {
                // Persist the data set at once, so Weir and DuckDB read the same files.
                let mut flags = args.weir_flags.clone();
                flags.push("--persist-threshold-bytes=1".into());
                Target::start(kind, &args.weir_bin, &flags)?
            } else {
                start(kind)?
            };
            report.rows.extend(query::run(&target, &load, args.iterations, args.duckdb_python.as_deref())?);
        }
    }
    if wants(Scenario::Trigger) {
        eprintln!("trigger: weir ...");
        let target = start(Kind::Weir)?;
        report.rows.extend(trigger::run(&target, args.samples, args.connections)?);
    }
    if wants(Scenario::Request) {
        let wrk = request::Wrk { connections: args.request_connections, threads: 2, seconds: args.request_duration };
        eprintln!("request: weir for {} s ...", wrk.seconds);
        let target = start(Kind::Weir)?;
        report.rows.push(request::weir(&target, &wrk)?);
        eprintln!("request: weir /health (the HTTP layer's ceiling) for {} s ...", wrk.seconds);
        report.rows.push(request::weir_ceiling(&target, &wrk)?);
        drop(target);
        if args.peers.contains(&Peer::Uvicorn) {
            eprintln!("request: uvicorn for {} s ...", wrk.seconds);
            report.rows.push(request::uvicorn(&wrk)?);
        }
    }

    if args.scenarios.contains(&Scenario::Readback) {
        eprintln!("readback: {} rows as JSON, Parquet and Flight ...", args.readback_rows);
        let target = start(Kind::Weir)?;
        report.rows.extend(readback::run(&target, args.readback_rows, &args.flight_python)?);
    }
    if args.scenarios.contains(&Scenario::Restart) {
        eprintln!("restart: weir after {} lines ...", args.restart_lines);
        report.rows.push(restart::run(&args.weir_bin, &args.weir_flags, &load, args.restart_lines)?);
    }

    if args.scenarios.contains(&Scenario::SlowTrigger) {
        report.rows.extend(delivery::slow_trigger(&args.weir_bin, &args.weir_flags, &load, args.duration)?);
    }
    if args.scenarios.contains(&Scenario::Catchup) {
        report.rows.extend(delivery::catchup(&args.weir_bin, &args.weir_flags, &load, args.catchup_lines)?);
    }

    if args.scenarios.contains(&Scenario::Auth) {
        for on in [false, true] {
            let label = if on { "auth on (a token checked on every write)" } else { "auth off" };
            eprintln!("auth: weir, {label}, for {} s ...", args.duration);
            let target = if on { Target::weir_with_auth(&args.weir_bin, &args.weir_flags)? } else { start(Kind::Weir)? };
            let until = Instant::now() + Duration::from_secs(args.duration);
            let timeline = Timeline::ending_an_hour_ago_every(60, 500_000_000);
            let out = ingest::drive(&target.write_url(), &load, timeline, Some(until), None);
            let mut row = out.row("auth", "weir", &load);
            row.measure = format!("write lines, {label}");
            report.rows.push(row);
        }
    }

    if args.scenarios.contains(&Scenario::Hostile) {
        report.rows.extend(hostile::run(&args.weir_bin, &args.weir_flags, &load, args.duration)?);
    }

    report.compute_ratios();
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}
