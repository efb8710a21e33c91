//! Writes beside hostile plugins (Weir only), the figure of the security issue: TSBS ingest on a
//! fresh Weir with no trigger, then on a fresh Weir for each hostile plugin, run every second
//! by a schedule trigger (2 s time limit, 256 MiB memory limit), same load, same run: write
//! throughput and p99 side by side. The target is a p99 within 2x of the run with none.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::ingest::{self, Load, Timeline};
use crate::report::Row;
use crate::targets::Target;

/// Each hostile plugin: its name in the report, its source, and its time and memory limits.
const PLUGINS: &[(&str, &str, &str, &str)] = &[
    ("spins until its time limit", "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    x = 0\n    while True:\n        x += 1\n", "2s", "256MiB"),
    (
        "allocates until MemoryError",
        "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    hoard = []\n    while True:\n        hoard.append(bytearray(10**6))\n",
        "2s",
        "256MiB",
    ),
    (
        "holds the GIL in C for ~1 s a call",
        "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    sum(range(3 * 10**7))\n",
        "2s",
        "256MiB",
    ),
    (
        "tries os._exit, os.fork and os.kill",
        "import os, signal\n\ndef process_scheduled_call(influxdb3_local, call_time, args=None):\n    for f in (lambda: os._exit(1), os.fork, lambda: os.kill(os.getpid(), signal.SIGKILL)):\n        try:\n            f()\n        except PermissionError:\n            pass\n",
        "2s",
        "256MiB",
    ),
    (
        "writes 10 M lines in one call",
        "def process_scheduled_call(influxdb3_local, call_time, args=None):\n    if influxdb3_local.cache.get(\"done\"):\n        return\n    influxdb3_local.cache.put(\"done\", True)\n    influxdb3_local.write(\"\\n\".join(f\"hostile,h=a v={i}i {i}\" for i in range(10_000_000)))\n",
        "120s",
        "4GiB",
    ),
];

/// Rows the plugin wrote, if it wrote any.
fn plugin_rows(target: &Target) -> Option<i64> {
    target.query("SELECT count(*) AS n FROM hostile").ok()?.first()?["n"].as_i64()
}

pub fn run(bin: &Path, flags: &[String], load: &Load, seconds: u64) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let runs = std::iter::once(("no plugin", None)).chain(PLUGINS.iter().map(|&(label, src, t, m)| (label, Some((src, t, m)))));
    for (label, source) in runs {
        eprintln!("hostile: weir, {label}, for {seconds} s ...");
        let target = Target::weir(bin, flags)?;
        if let Some((src, timeout, memory)) = source {
            let settings = serde_json::json!({"run_async": false, "error_behavior": "log", "timeout": timeout, "memory_limit": memory});
            target.create_trigger_with("hostile", src, "every:1s", settings)?;
        }
        let until = Instant::now() + Duration::from_secs(seconds);
        let timeline = Timeline::ending_an_hour_ago_every(60, 500_000_000);
        let out = ingest::drive(&target.write_url(), load, timeline, Some(until), None);
        let mut row = out.row("hostile", "weir", load);
        row.measure = format!("write lines, a plugin that {label}");
        if source.is_none() {
            row.measure = "write lines, no plugin".into();
        }
        if let Some(n) = plugin_rows(&target) {
            row.note.push_str(&format!("; the plugin's own rows stored by the end: {n}"));
        }
        rows.push(row);
    }
    Ok(rows)
}
