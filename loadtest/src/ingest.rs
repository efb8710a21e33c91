//! The ingest scenario: TSBS cpu-only line protocol POSTed to a target's `/write` from several
//! keep-alive connections for a while, counting acked lines and each request's latency. The
//! query scenario uses the same writer to load its data set.
//!
//! Each batch covers its own run of ticks (a shared counter hands them out), so no two requests
//! write the same points.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http1::{Client, Endpoint};
use crate::report::{Latency, Row};
use crate::tsbs::{Batch, STEP_NS};

#[derive(Clone, Debug)]
pub struct Load {
    pub hosts: usize,
    pub batch: usize,
    pub connections: usize,
}

#[derive(Default)]
pub struct Outcome {
    pub lines: u64,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// The timeline ran out and points were written again (not fresh any more).
    pub wrapped: bool,
    /// The target's resident memory over the run (`rss::Sampler`), when sampled.
    pub rss: Option<crate::rss::Summary>,
}

impl Outcome {
    pub fn row(&self, scenario: &str, target: &str, load: &Load) -> Row {
        let mut note = format!("{} hosts, {} lines/request, {} connections", load.hosts, load.batch, load.connections);
        if self.wrapped {
            note.push_str("; TIMELINE WRAPPED: points were repeated");
        }
        if let Some(r) = &self.rss {
            note.push_str(&format!("; {r}"));
        }
        if let Some(e) = &self.first_error {
            note.push_str(&format!("; first error: {}", e.chars().take(160).collect::<String>()));
        }
        Row {
            scenario: scenario.into(),
            target: target.into(),
            measure: "write lines".into(),
            rate: Some(self.lines as f64 / self.elapsed.as_secs_f64().max(1e-9)),
            unit: "lines".into(),
            latency: Latency::of(self.latencies.clone()),
            errors: self.errors,
            note,
        }
    }
}

/// Where a run's data starts, and how many ticks fit before it would reach the present
/// (VictoriaMetrics refuses points too far in the future; the run wraps around instead).
#[derive(Clone, Copy)]
pub struct Timeline {
    pub t0_ns: i64,
    pub ticks: u64,
    pub step_ns: i64,
}

impl Timeline {
    /// `days` of TSBS's 10 s ticks ending an hour ago.
    pub fn ending_an_hour_ago(days: u64) -> Timeline {
        Timeline::ending_an_hour_ago_every(days, STEP_NS)
    }

    /// `days` of ticks `step_ns` apart ending an hour ago. A soak needs more ticks than 10 s
    /// ones give inside the peers' retention: 60 days of them are 52 M lines at 100 hosts,
    /// under two minutes of ingest.
    pub fn ending_an_hour_ago_every(days: u64, step_ns: i64) -> Timeline {
        let hour = 3_600_000_000_000i64;
        let step_ns = step_ns.max(1);
        let end = (crate::tsbs::now_ns() / hour - 1) * hour;
        let ticks = days * 86_400_000_000_000 / step_ns as u64;
        Timeline { t0_ns: end - ticks as i64 * step_ns, ticks, step_ns }
    }
}

/// Writes until `until` passes or, with `ticks_total`, until that many ticks are written.
pub fn drive(url: &str, load: &Load, timeline: Timeline, until: Option<Instant>, ticks_total: Option<u64>) -> Outcome {
    let endpoint = match Endpoint::parse(url) {
        Ok(e) => e,
        Err(e) => return Outcome { errors: 1, first_error: Some(e.to_string()), ..Outcome::default() },
    };
    let next_batch = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..load.connections.max(1))
        .map(|c| {
            let (endpoint, load, next_batch) = (endpoint.clone(), load.clone(), next_batch.clone());
            std::thread::spawn(move || writer(endpoint, &load, timeline, until, ticks_total, &next_batch, c as u64))
        })
        .collect();
    let mut out = Outcome::default();
    for t in threads {
        if let Ok(part) = t.join() {
            out.lines += part.lines;
            out.latencies.extend(part.latencies);
            out.errors += part.errors;
            out.first_error = out.first_error.or(part.first_error);
            out.wrapped |= part.wrapped;
        }
    }
    out.elapsed = started.elapsed();
    out
}

fn writer(endpoint: Endpoint, load: &Load, timeline: Timeline, until: Option<Instant>, ticks_total: Option<u64>, next_batch: &AtomicU64, seed: u64) -> Outcome {
    let mut client = Client::new(endpoint, Duration::from_secs(120));
    // A few value sets per connection, so consecutive requests do not repeat each other.
    let mut templates: Vec<Batch> = (0..4).map(|i| Batch::new(load.batch, load.hosts, 0x9e37_79b9 * (seed * 4 + i + 1))).collect();
    let ticks_per_batch = templates[0].ticks();
    let mut out = Outcome::default();
    loop {
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        let k = next_batch.fetch_add(1, Ordering::Relaxed);
        let first_tick = k * ticks_per_batch;
        if ticks_total.is_some_and(|n| first_tick >= n) {
            break;
        }
        let template = &mut templates[(k % 4) as usize];
        let lines = template.lines() as u64;
        out.wrapped |= first_tick >= timeline.ticks;
        let body = template.stamp(timeline.t0_ns, timeline.step_ns, first_tick % timeline.ticks.max(1));
        let sent = Instant::now();
        let failure = match client.post("text/plain; charset=utf-8", body) {
            Ok(resp) if (200..300).contains(&resp.status) => {
                out.latencies.push(sent.elapsed());
                out.lines += lines;
                None
            }
            Ok(resp) => Some(format!("{}: {}", resp.status, String::from_utf8_lossy(&resp.body))),
            Err(e) => Some(format!("{e:#}")),
        };
        if let Some(failure) = failure {
            out.errors += 1;
            out.first_error.get_or_insert(failure);
            // A refusing server is not hammered in a tight loop.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    out
}
