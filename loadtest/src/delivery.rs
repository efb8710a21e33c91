//! Trigger delivery under load (Weir only), the figures of the trigger-delivery issue:
//!
//! - `slow-trigger`: TSBS ingest on a fresh Weir with no trigger, then on another fresh Weir
//!   with a `table:cpu` trigger whose plugin sleeps 2 s a call, same load, same run: write
//!   throughput and p99 side by side (the trigger must not slow writes).
//! - `catchup`: a `table:cpu` trigger whose first call blocks until a flag file appears; N lines
//!   are written meanwhile, then the flag is set and the time until the trigger has completed
//!   every commit is taken: rows/s handed to a trigger that is N rows behind, once with a plugin
//!   that walks the rows as dicts and once with one that reads `batch["arrow"]`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::ingest::{self, Load, Timeline};
use crate::report::{Latency, Row};
use crate::targets::Target;

const SLOW: &str = "import time\n\ndef process_writes(influxdb3_local, table_batches, args=None):\n    time.sleep(2)\n";

/// Blocks its first call until `FLAG` exists, then counts what it is handed.
const DICTS: &str = r#"import os, time

def process_writes(influxdb3_local, table_batches, args=None):
    while not os.path.exists("FLAG"):
        time.sleep(0.05)
    n = 0
    for b in table_batches:
        for r in b["rows"]:
            n += 1
    influxdb3_local.cache.put("rows", influxdb3_local.cache.get("rows", 0) + n)
"#;

const ARROW: &str = r#"import os, time

def process_writes(influxdb3_local, table_batches, args=None):
    while not os.path.exists("FLAG"):
        time.sleep(0.05)
    n = sum(b["arrow"].num_rows for b in table_batches)
    influxdb3_local.cache.put("rows", influxdb3_local.cache.get("rows", 0) + n)
"#;

fn trigger_state(target: &Target, name: &str) -> Result<Value> {
    let rows = target.query(&format!(
        "SELECT calls, lag_commits, queued_events, errors FROM system.processing_engine_triggers WHERE trigger_name = '{name}'"
    ))?;
    rows.into_iter().next().ok_or_else(|| anyhow!("trigger {name} is not running"))
}

pub fn slow_trigger(bin: &Path, flags: &[String], load: &Load, seconds: u64) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for with in [false, true] {
        let label = if with { "with a 2 s-a-call table:cpu trigger" } else { "no trigger" };
        eprintln!("slow-trigger: weir, {label}, for {seconds} s ...");
        let target = Target::weir(bin, flags)?;
        if with {
            target.create_trigger("slow", SLOW, "table:cpu")?;
        }
        let until = Instant::now() + Duration::from_secs(seconds);
        let timeline = Timeline::ending_an_hour_ago_every(60, 500_000_000);
        let out = ingest::drive(&target.write_url(), load, timeline, Some(until), None);
        let mut row = out.row("slow-trigger", "weir", load);
        row.measure = format!("write lines, {label}");
        if with {
            let st = trigger_state(&target, "slow")?;
            row.note.push_str(&format!("; the trigger at the end: {} calls, {} commits behind", st["calls"], st["lag_commits"]));
        }
        rows.push(row);
    }
    Ok(rows)
}

pub fn catchup(bin: &Path, flags: &[String], load: &Load, lines: u64) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (label, source) in [("dicts", DICTS), ("arrow", ARROW)] {
        let mut flags = flags.to_vec();
        flags.extend(["--plugin-timeout=1h", "--trigger-max-lag=none"].map(String::from));
        let target = Target::weir(bin, &flags)?;
        if label == "arrow" {
            eprintln!("catchup: installing pyarrow into the plugin environment ...");
            ureq::post(&target.url("/api/v3/configure/plugin_environment/install_packages"))
                .timeout(Duration::from_secs(900))
                .set("Content-Type", "application/json")
                .send_string(r#"{"packages": ["pyarrow"]}"#)
                .map_err(|e| anyhow!("installing pyarrow: {e}"))?;
        }
        let flag = target.dir.path().join("plugins/go");
        target.create_trigger("catchup", &source.replace("FLAG", &flag.to_string_lossy()), "table:cpu")?;
        eprintln!("catchup ({label}): writing {lines} lines while the trigger is blocked ...");
        let timeline = Timeline::ending_an_hour_ago_every(60, 500_000_000);
        let ticks = lines.div_ceil(load.hosts.max(1) as u64);
        let loaded = ingest::drive(&target.write_url(), load, timeline, None, Some(ticks));
        if loaded.errors > 0 {
            bail!("loading failed: {}", loaded.first_error.unwrap_or_default());
        }
        let behind = trigger_state(&target, "catchup")?;
        std::fs::write(&flag, b"")?;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(3600);
        let end = loop {
            let st = trigger_state(&target, "catchup")?;
            if st["lag_commits"].as_u64() == Some(0) && st["queued_events"].as_u64() == Some(0) {
                break st;
            }
            if Instant::now() > deadline {
                bail!("the trigger did not catch up within an hour: {st}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let elapsed = started.elapsed();
        rows.push(Row {
            scenario: "catchup".into(),
            target: "weir".into(),
            measure: format!("rows handed to a trigger {}M rows behind, {label}", lines / 1_000_000),
            rate: Some(loaded.lines as f64 / elapsed.as_secs_f64().max(1e-9)),
            unit: "rows".into(),
            latency: Latency::of(vec![elapsed]),
            errors: end["errors"].as_u64().unwrap_or(0),
            note: format!(
                "{} lines acked while blocked ({} commits behind); caught up in {:.2} s over {} calls",
                loaded.lines,
                behind["lag_commits"],
                elapsed.as_secs_f64(),
                end["calls"]
            ),
        });
    }
    Ok(rows)
}
