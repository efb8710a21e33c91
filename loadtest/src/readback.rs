//! The read-back scenario: one answer of `--readback-rows` rows (1 M by default) fetched from
//! Weir three ways, in the same run: SQL over HTTP as JSON, SQL over HTTP as Parquet, and Arrow
//! Flight (pyarrow's client, `--flight-python`). Each is timed from request to last byte and
//! the server's RSS is sampled meanwhile; every answer is checked for its row count.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::report::{Latency, Row};
use crate::rss::Sampler;
use crate::targets::{Target, DB};

const TABLE: &str = "readback";
const CHUNK: usize = 20_000;

/// Writes `rows` fresh points: 100 hosts, an integer, a float and a string field each.
fn load(target: &Target, rows: usize) -> Result<()> {
    let url = target.write_url();
    let start_ns: i64 = 1_700_000_000_000_000_000;
    let mut body = String::with_capacity(CHUNK * 64);
    for first in (0..rows).step_by(CHUNK) {
        body.clear();
        for i in first..(first + CHUNK).min(rows) {
            use std::fmt::Write;
            let _ = writeln!(body, "{TABLE},host=h{} n={i}i,x={}.25,s=\"v{}\" {}", i % 100, i % 997, i % 13, start_ns + i as i64 * 1_000);
        }
        let mut req = ureq::post(&url);
        if let Some(t) = &target.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        req.send_string(&body).map_err(|e| anyhow!("loading the read-back rows: {e}"))?;
    }
    Ok(())
}

fn row(measure: &str, rows: usize, took: Duration, rss: Option<crate::rss::Summary>, bytes: Option<usize>) -> Row {
    let rss = rss.map(|r| format!("peak RSS {:.2} GB", r.peak as f64 / 1e9)).unwrap_or_default();
    let bytes = bytes.map(|b| format!(", {:.1} MB", b as f64 / 1e6)).unwrap_or_default();
    Row {
        scenario: "readback".into(),
        target: "weir".into(),
        measure: measure.into(),
        rate: Some(rows as f64 / took.as_secs_f64()),
        unit: "rows".into(),
        latency: Latency::of(vec![took]),
        errors: 0,
        note: format!("{:.2} s{bytes}; {rss}", took.as_secs_f64()),
    }
}

/// GETs `query_sql` in `format`; answers the bytes and how long they took.
fn http(target: &Target, format: &str) -> Result<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut req = ureq::get(&target.url("/api/v3/query_sql")).query("db", DB).query("q", &format!("SELECT * FROM {TABLE}")).query("format", format);
    if let Some(t) = &target.token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = req.call().map_err(|e| anyhow!("query as {format}: {e}"))?;
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)?;
    Ok((body, started.elapsed()))
}

pub fn run(target: &Target, rows: usize, python: &Path) -> Result<Vec<Row>> {
    load(target, rows)?;
    target.settle()?;
    let mut out = Vec::new();

    let rss = Sampler::start(target.pid());
    let (body, took) = http(target, "jsonl")?;
    let got = body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
    if got != rows {
        bail!("JSON lines answered {got} rows, not {rows}");
    }
    out.push(row("SQL over HTTP, JSON lines", rows, took, rss.finish(), Some(body.len())));

    let rss = Sampler::start(target.pid());
    let (body, took) = http(target, "parquet")?;
    if body.len() < 4 || &body[..4] != b"PAR1" {
        bail!("the Parquet answer is not Parquet");
    }
    out.push(row("SQL over HTTP, Parquet", rows, took, rss.finish(), Some(body.len())));

    let port = target.base.rsplit(':').next().context("the target's URL has no port")?;
    let token = target.token.clone().unwrap_or_default();
    let script = format!(
        r#"
import json, time, pyarrow.flight as fl
c = fl.FlightClient("grpc+tcp://127.0.0.1:{port}")
opts = fl.FlightCallOptions(headers=[(b"authorization", b"Bearer {token}")])
t0 = time.perf_counter()
rows = batches = 0
for chunk in c.do_get(fl.Ticket(json.dumps({{"database": "{DB}", "sql_query": "SELECT * FROM {TABLE}"}}).encode()), opts):
    rows += chunk.data.num_rows
    batches += 1
print(rows, batches, time.perf_counter() - t0)
"#
    );
    let rss = Sampler::start(target.pid());
    let o = Command::new(python).arg("-c").arg(&script).output().with_context(|| format!("running {}", python.display()))?;
    if !o.status.success() {
        bail!("the Flight client failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [got, batches, secs] = parts.as_slice() else { bail!("the Flight client answered {text}") };
    let got: usize = got.parse()?;
    if got != rows {
        bail!("Flight answered {got} rows, not {rows}");
    }
    let mut r = row("Arrow Flight (pyarrow)", rows, Duration::from_secs_f64(secs.parse()?), rss.finish(), None);
    r.note = format!("{} batches; {}", batches, r.note);
    out.push(r);
    Ok(out)
}
