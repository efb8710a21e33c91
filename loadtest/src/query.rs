//! The query scenario: loads a day of TSBS cpu data, then times representative queries, each in
//! the target's own language (SQL for Weir, InfluxQL for InfluxDB 1.6, MetricsQL for
//! VictoriaMetrics) asking the same question over the same points:
//! the last point per host, the mean per host per minute over an hour, and the max over the day.
//!
//! Every answer is checked for size (hosts, or hosts × minutes), so a target that answers
//! quickly with nothing does not win.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde_json::Value;

use crate::ingest::{self, Load, Timeline};
use crate::report::{Latency, Row};
use crate::targets::{Kind, Target, DB};

const HOUR_NS: i64 = 3_600_000_000_000;

/// One question, asked of one target: the path and query string to GET.
struct Ask {
    name: &'static str,
    path: &'static str,
    params: Vec<(&'static str, String)>,
    /// How many values a full answer has.
    expect: usize,
}

fn asks(kind: Kind, hosts: usize, end_ns: i64) -> Vec<Ask> {
    let (hour0, day0) = (end_ns - HOUR_NS, end_ns - 24 * HOUR_NS);
    let s = |ns: i64| ns / 1_000_000_000;
    let minutes = 60;
    match kind {
        Kind::Weir => {
            let sql = |q: String| vec![("db", DB.to_string()), ("q", q), ("format", "json".to_string())];
            vec![
                Ask {
                    name: "last point per host",
                    path: "/api/v3/query_sql",
                    params: sql("SELECT hostname, last_value(usage_user ORDER BY time) AS usage_user FROM cpu GROUP BY hostname".into()),
                    expect: hosts,
                },
                Ask {
                    name: "mean/host/minute, 1h",
                    path: "/api/v3/query_sql",
                    params: sql(format!(
                        "SELECT hostname, date_bin(INTERVAL '1 minute', time) AS minute, avg(usage_user) AS mean FROM cpu \
                         WHERE time >= to_timestamp({}) AND time < to_timestamp({}) GROUP BY hostname, minute",
                        s(hour0),
                        s(end_ns)
                    )),
                    expect: hosts * minutes,
                },
                Ask {
                    name: "max over a day",
                    path: "/api/v3/query_sql",
                    params: sql(format!(
                        "SELECT max(usage_user) AS max FROM cpu WHERE time >= to_timestamp({}) AND time < to_timestamp({})",
                        s(day0),
                        s(end_ns)
                    )),
                    expect: 1,
                },
                grafana_influxql(hosts, end_ns),
            ]
        }
        Kind::Influx16 => {
            let ql = |q: String| vec![("db", DB.to_string()), ("q", q), ("epoch", "ns".to_string())];
            vec![
                Ask { name: "last point per host", path: "/query", params: ql("SELECT last(usage_user) FROM cpu GROUP BY hostname".into()), expect: hosts },
                Ask {
                    name: "mean/host/minute, 1h",
                    path: "/query",
                    params: ql(format!(
                        "SELECT mean(usage_user) FROM cpu WHERE time >= {hour0} AND time < {end_ns} GROUP BY time(1m), hostname"
                    )),
                    expect: hosts * minutes,
                },
                Ask {
                    name: "max over a day",
                    path: "/query",
                    params: ql(format!("SELECT max(usage_user) FROM cpu WHERE time >= {day0} AND time < {end_ns}")),
                    expect: 1,
                },
                grafana_influxql(hosts, end_ns),
            ]
        }
        Kind::VictoriaMetrics => {
            // An instant query at `end` looks back over the window in brackets: (end - 1d, end].
            let at = (end_ns - 1) / 1_000_000_000;
            vec![
                Ask {
                    name: "last point per host",
                    path: "/api/v1/query",
                    params: vec![("query", "last_over_time(cpu_usage_user[1d])".into()), ("time", at.to_string())],
                    expect: hosts,
                },
                Ask {
                    name: "mean/host/minute, 1h",
                    path: "/api/v1/query_range",
                    params: vec![
                        ("query", "avg_over_time(cpu_usage_user[1m])".into()),
                        ("start", (s(hour0) + 60).to_string()),
                        ("end", s(end_ns).to_string()),
                        ("step", "60".into()),
                    ],
                    expect: hosts * minutes,
                },
                Ask {
                    name: "max over a day",
                    path: "/api/v1/query",
                    params: vec![("query", "max(max_over_time(cpu_usage_user[1d]))".into()), ("time", at.to_string())],
                    expect: 1,
                },
            ]
        }
    }
}

/// A Grafana InfluxQL panel's query (mean per host per minute over 6 hours, empty minutes as
/// null), asked of Weir and InfluxDB 1.6 alike over `/query`.
fn grafana_influxql(hosts: usize, end_ns: i64) -> Ask {
    let start = end_ns - 6 * HOUR_NS;
    Ask {
        name: "InfluxQL: mean/host/minute, 6h",
        path: "/query",
        params: vec![
            ("db", DB.to_string()),
            ("q", format!("SELECT mean(usage_user) FROM cpu WHERE time >= {start} AND time < {end_ns} GROUP BY time(1m), hostname fill(null)")),
            ("epoch", "ns".to_string()),
        ],
        expect: hosts * 360,
    }
}

/// Values in an answer: rows (Weir's SQL), points over all series (InfluxQL, VictoriaMetrics).
fn values_in(kind: Kind, path: &str, v: &Value) -> usize {
    match kind {
        Kind::Weir if path != "/query" => v.as_array().map_or(0, |a| a.len()),
        Kind::Weir | Kind::Influx16 => v["results"][0]["series"]
            .as_array()
            .map_or(0, |s| s.iter().map(|x| x["values"].as_array().map_or(0, |a| a.len())).sum()),
        Kind::VictoriaMetrics => v["data"]["result"]
            .as_array()
            .map_or(0, |r| r.iter().map(|x| x["values"].as_array().map_or(1, |a| a.len())).sum()),
    }
}

/// Loads a day of data into `target` and asks it each question `iterations` times. With
/// `duckdb` (a python with the `duckdb` package) and Weir as the target, waits until Weir has
/// persisted everything (start it with a small `--persist-threshold-bytes`), and then asks
/// DuckDB the same questions over Weir's Parquet files.
pub fn run(target: &Target, load: &Load, iterations: usize, duckdb: Option<&std::path::Path>) -> Result<Vec<Row>> {
    let timeline = Timeline::ending_an_hour_ago(1);
    let loaded = ingest::drive(&target.write_url(), load, timeline, None, Some(timeline.ticks));
    if loaded.errors > 0 {
        return Err(anyhow!("{}: loading the data set failed: {}", target.kind.label(), loaded.first_error.unwrap_or_default()));
    }
    target.settle()?;
    let over_files = duckdb.is_some() && target.kind == Kind::Weir;
    if over_files {
        target.wait_persisted(loaded.lines)?;
    }
    let end_ns = timeline.t0_ns + timeline.ticks as i64 * timeline.step_ns;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
    let mut rows = Vec::new();
    for ask in asks(target.kind, load.hosts, end_ns) {
        let mut latencies = Vec::with_capacity(iterations);
        let (mut errors, mut got, mut first_error) = (0u64, 0usize, None);
        for _ in 0..iterations.max(1) {
            let mut req = agent.get(&target.url(ask.path));
            for (k, v) in &ask.params {
                req = req.query(k, v);
            }
            let sent = Instant::now();
            match req.call().map_err(|e| e.to_string()).and_then(|r| r.into_string().map_err(|e| e.to_string()).and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))) {
                Ok(v) => {
                    latencies.push(sent.elapsed());
                    got = values_in(target.kind, ask.path, &v);
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        let mut note = format!("{got} of {} values", ask.expect);
        if let Some(e) = first_error {
            note.push_str(&format!("; first error: {}", e.chars().take(160).collect::<String>()));
        }
        if got < ask.expect {
            note.push_str(" (SHORT ANSWER)");
        }
        rows.push(Row {
            scenario: "query".into(),
            target: target.kind.label().into(),
            measure: ask.name.into(),
            rate: None,
            unit: "queries".into(),
            latency: Latency::of(latencies),
            errors,
            note,
        });
    }
    rows.push(Row { measure: "load data set".into(), ..loaded.row("query", target.kind.label(), load) });
    if let (Some(python), true) = (duckdb, over_files) {
        let expect = |name: &str| asks(Kind::Weir, load.hosts, end_ns).iter().find(|a| a.name == name).map_or(0, |a| a.expect);
        for r in rows.iter_mut().filter(|r| r.target == "weir") {
            r.note.push_str("; all persisted, read from Parquet");
        }
        rows.extend(crate::duckdb::run(python, &target.dir.path().join("data"), end_ns, iterations, &expect)?);
    }
    Ok(rows)
}
