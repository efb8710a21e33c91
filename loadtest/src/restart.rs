//! The restart scenario: loads fresh TSBS lines into Weir (persistence on, at its settings),
//! kills it with SIGKILL right after the last ack, starts it again on the same data and times
//! how long until it listens (it replays its WAL tail first) and until a count answers with
//! every acked line. Restart time should follow the un-persisted tail, not the data's size.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Result};

use crate::ingest::{self, Load, Timeline};
use crate::report::{Latency, Row};
use crate::targets::Target;

/// Bytes of the files under `dir` whose names end with `suffix`.
fn bytes_under(dir: &Path, suffix: &str) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                total += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

fn count(target: &Target) -> Result<u64> {
    let rows = target.query("SELECT count(*) AS n FROM cpu")?;
    rows.first().and_then(|r| r["n"].as_u64()).ok_or_else(|| anyhow!("count: unexpected answer {rows:?}"))
}

pub fn run(bin: &Path, flags: &[String], load: &Load, lines: u64) -> Result<Row> {
    let target = Target::weir(bin, flags)?;
    let timeline = Timeline::ending_an_hour_ago_every(60, 500_000_000);
    let ticks = lines.div_ceil(load.hosts.max(1) as u64);
    let loaded = ingest::drive(&target.write_url(), load, timeline, None, Some(ticks));
    if loaded.errors > 0 && loaded.lines == 0 {
        return Err(anyhow!("loading failed: {}", loaded.first_error.unwrap_or_default()));
    }
    let data = target.dir.path().join("data");
    let (wal, parquet) = (bytes_under(&data, ".wal"), bytes_under(&data, ".parquet"));
    let started = Instant::now();
    let target = target.crash_and_restart(bin, flags)?;
    let listening = started.elapsed();
    let n = count(&target)?;
    let answered = started.elapsed();
    let gb = |b: u64| b as f64 / 1e9;
    let mut note = format!(
        "{} lines acked ({} x 503 retried as lost), kill -9, restart: listening after {:.2} s, count after {:.2} s; \
         WAL tail {:.2} GB, Parquet {:.2} GB",
        loaded.lines,
        loaded.errors,
        listening.as_secs_f64(),
        answered.as_secs_f64(),
        gb(wal),
        gb(parquet)
    );
    if n != loaded.lines {
        note.push_str(&format!("; COUNT {n} != ACKED {}", loaded.lines));
    }
    Ok(Row {
        scenario: "restart".into(),
        target: "weir".into(),
        measure: format!("restart after {}M lines", lines / 1_000_000),
        rate: None,
        unit: "restarts".into(),
        latency: Latency::of(vec![answered]),
        errors: u64::from(n != loaded.lines),
        note,
    })
}
