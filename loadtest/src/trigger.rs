//! The trigger scenario (Weir only): how long after a write a `table:` trigger's plugin sees
//! the row. Probe lines go to table `probe` from several connections; a plugin on `table:probe`
//! records `time.time_ns()` on entry for each probe it is handed, into table `seen`. Compared
//! with the writer's clock (same machine) that gives write sent → plugin entered, and write
//! acked → plugin entered (negative when the plugin starts before the ack reaches the writer:
//! both follow the same durable flush).
//!
//! Activation latency proper (flush durable → plugin entered) is an in-process figure: the
//! `trigger_latency` criterion bench measures it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::report::{Latency, Row};
use crate::targets::Target;
use crate::tsbs::now_ns;

const PLUGIN: &str = r#"import time


def process_writes(influxdb3_local, table_batches, args=None):
    entered = time.time_ns()
    for batch in table_batches:
        for row in batch["rows"]:
            influxdb3_local.write(LineBuilder("seen").tag("probe", row["probe"]).int64_field("entered", entered))
"#;

pub fn run(target: &Target, samples: usize, connections: usize) -> Result<Vec<Row>> {
    target.create_trigger("lt_seen", PLUGIN, "table:probe")?;

    // Each connection sends its share of probes one after another, at staggered starts so the
    // probes fall at every phase of the flush clock.
    let per = samples.div_ceil(connections.max(1));
    let threads: Vec<_> = (0..connections.max(1))
        .map(|c| {
            let url = target.write_url();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(37 * c as u64));
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
                let mut times = Vec::with_capacity(per);
                for i in 0..per {
                    let id = format!("c{c}-{i}");
                    let sent = now_ns();
                    if agent.post(&url).send_string(&format!("probe,probe={id} v=1i")).is_ok() {
                        times.push((id, sent, now_ns()));
                    }
                }
                times
            })
        })
        .collect();
    let mut sent: HashMap<String, (i64, i64)> = HashMap::new();
    for t in threads {
        for (id, s, a) in t.join().map_err(|_| anyhow!("a probe writer panicked"))? {
            sent.insert(id, (s, a));
        }
    }

    // Wait for the plugin's rows to come back through the write path.
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        // The table may not exist yet: no rows then.
        let rows: Vec<Value> = target.query("SELECT probe, entered FROM seen").unwrap_or_default();
        let wanted = rows.iter().filter(|r| r["probe"].as_str().is_some_and(|p| sent.contains_key(p))).count();
        if wanted >= sent.len() || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (mut from_sent, mut from_ack) = (Vec::new(), Vec::new());
    for r in &seen {
        let (Some(id), Some(entered)) = (r["probe"].as_str(), r["entered"].as_i64()) else { continue };
        if let Some((s, a)) = sent.get(id) {
            from_sent.push(entered - s);
            from_ack.push(entered - a);
        }
    }
    if from_sent.is_empty() {
        bail!("the plugin saw none of {} probes (see {}/weir.log)", sent.len(), target.dir.path().display());
    }
    let missed = (sent.len() - from_sent.len()) as u64;
    let row = |measure: &str, samples: Vec<i64>| Row {
        scenario: "trigger".into(),
        target: target.kind.label().into(),
        measure: measure.into(),
        rate: None,
        unit: String::new(),
        latency: Latency::of_signed_ns(samples),
        errors: missed,
        note: format!("{} probes, {} connections; errors = probes the plugin never saw", sent.len(), connections),
    };
    Ok(vec![row("write sent -> plugin", from_sent), row("write acked -> plugin", from_ack)])
}
