//! DuckDB reading Weir's own Parquet files: the query scenario's yardstick for Weir over
//! persisted data (the storage issue's "Weir's p50 against DuckDB reading the same files").
//!
//! DuckDB runs in a Python process (`duckdb` from PyPI, in the venv `--duckdb-python` names;
//! `scripts/install-peers.sh` makes one), timing each query in-process: no HTTP and no JSON
//! encoding, so the comparison leans in DuckDB's favour. It only reads the files.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::report::{Latency, Row};

const SCRIPT: &str = r#"
import json, sys, time
import duckdb
files, iterations, asks = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
con = duckdb.connect()
con.execute(f"CREATE VIEW cpu AS SELECT * FROM read_parquet('{files}')")
out = []
for name, sql in asks:
    latencies = []
    for _ in range(iterations):
        t = time.perf_counter()
        rows = con.execute(sql).fetchall()
        latencies.append(time.perf_counter() - t)
    out.append({"name": name, "rows": len(rows), "latencies": latencies})
print(json.dumps(out))
"#;

/// The query scenario's questions in DuckDB's SQL, over `(end - 1h, end)` and `(end - 1d, end)`.
fn asks(end_ns: i64) -> Vec<(&'static str, String)> {
    const HOUR_NS: i64 = 3_600_000_000_000;
    let us = |ns: i64| ns / 1_000;
    let (hour0, day0) = (end_ns - HOUR_NS, end_ns - 24 * HOUR_NS);
    vec![
        ("last point per host", "SELECT hostname, arg_max(usage_user, time) FROM cpu GROUP BY hostname".into()),
        (
            "mean/host/minute, 1h",
            format!(
                "SELECT hostname, time_bucket(INTERVAL '1 minute', time) AS minute, avg(usage_user) FROM cpu \
                 WHERE time >= make_timestamp({}) AND time < make_timestamp({}) GROUP BY hostname, minute",
                us(hour0),
                us(end_ns)
            ),
        ),
        (
            "max over a day",
            format!("SELECT max(usage_user) FROM cpu WHERE time >= make_timestamp({}) AND time < make_timestamp({})", us(day0), us(end_ns)),
        ),
    ]
}

/// Runs the questions `iterations` times over the Parquet files under `dir`.
pub fn run(python: &Path, dir: &Path, end_ns: i64, iterations: usize, expect: &dyn Fn(&str) -> usize) -> Result<Vec<Row>> {
    let files = format!("{}/**/*.parquet", dir.display());
    let asks = asks(end_ns);
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&files)
        .arg(iterations.max(1).to_string())
        .arg(serde_json::to_string(&asks)?)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        return Err(anyhow!("duckdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).context("reading duckdb's timings")?;
    Ok(answers
        .iter()
        .map(|a| {
            let name = a["name"].as_str().unwrap_or_default().to_string();
            let latencies: Vec<Duration> = a["latencies"]
                .as_array()
                .map(|l| l.iter().filter_map(Value::as_f64).map(Duration::from_secs_f64).collect())
                .unwrap_or_default();
            let rows = a["rows"].as_u64().unwrap_or(0) as usize;
            let want = expect(&name);
            let mut note = format!("{rows} of {want} values, in-process (no HTTP), over Weir's files");
            if rows < want {
                note.push_str(" (SHORT ANSWER)");
            }
            Row {
                scenario: "query".into(),
                target: "duckdb".into(),
                measure: name,
                rate: None,
                unit: "queries".into(),
                latency: Latency::of(latencies),
                errors: 0,
                note,
            }
        })
        .collect())
}
