//! Results: latency summaries, one row per (scenario, target, measure), ratios of Weir against
//! each peer from the same run, printed as a table and written as JSON.
//!
//! It never measures anything itself.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latencies.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        Latency { count: samples.len(), p50_ms: at(0.50), p99_ms: at(0.99), max_ms: at(1.0) }
    }

    /// From signed nanosecond samples (a plugin may see a row before its writer sees the ack).
    pub fn of_signed_ns(mut samples: Vec<i64>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
        Latency { count: samples.len(), p50_ms: at(0.50), p99_ms: at(0.99), max_ms: at(1.0) }
    }
}

/// One measured line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub target: String,
    /// What was measured ("ingest", a query's name, "ack_to_plugin"...).
    pub measure: String,
    /// Throughput in `unit` per second, when the measure has one.
    pub rate: Option<f64>,
    pub unit: String,
    pub latency: Latency,
    pub errors: u64,
    /// Anything worth knowing about the row (rows a query returned, settings).
    pub note: String,
}

/// Weir divided by a peer, for one measure.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub scenario: String,
    pub measure: String,
    pub peer: String,
    /// Weir's rate / the peer's (above 1: Weir is faster).
    pub rate: Option<f64>,
    /// Weir's p50 / the peer's (below 1: Weir is faster in the middle).
    pub p50: Option<f64>,
    /// Weir's p99 / the peer's (below 1: Weir's tail is shorter).
    pub p99: Option<f64>,
}

#[derive(Default, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub ratios: Vec<Ratio>,
}

impl Report {
    /// Fills `ratios`: every Weir row against every other target's row of the same measure.
    pub fn compute_ratios(&mut self) {
        self.ratios.clear();
        for w in self.rows.iter().filter(|r| r.target == "weir") {
            for p in self.rows.iter().filter(|r| r.target != "weir" && r.scenario == w.scenario && r.measure == w.measure) {
                let rate = match (w.rate, p.rate) {
                    (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                    _ => None,
                };
                let p50 = (p.latency.p50_ms > 0.0).then(|| w.latency.p50_ms / p.latency.p50_ms);
                let p99 = (p.latency.p99_ms > 0.0).then(|| w.latency.p99_ms / p.latency.p99_ms);
                self.ratios.push(Ratio {
                    scenario: w.scenario.clone(),
                    measure: w.measure.clone(),
                    peer: p.target.clone(),
                    rate,
                    p50,
                    p99,
                });
            }
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<9} {:<17} {:<22} {:>14} {:>9} {:>9} {:>9} {:>6}  {}\n",
            "scenario", "target", "measure", "rate/s", "p50 ms", "p99 ms", "max ms", "errors", "note"
        ));
        for r in &self.rows {
            let rate = r.rate.map(|v| format!("{} {}", human(v), r.unit)).unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "{:<9} {:<17} {:<22} {:>14} {:>9.2} {:>9.2} {:>9.2} {:>6}  {}\n",
                r.scenario, r.target, r.measure, rate, r.latency.p50_ms, r.latency.p99_ms, r.latency.max_ms, r.errors, r.note
            ));
        }
        if !self.ratios.is_empty() {
            out.push_str("\nweir / peer, same run:\n");
            for q in &self.ratios {
                let rate = q.rate.map(|v| format!("{v:.2}x rate")).unwrap_or_default();
                let p50 = q.p50.map(|v| format!("{v:.2}x p50")).unwrap_or_default();
                let p99 = q.p99.map(|v| format!("{v:.2}x p99")).unwrap_or_default();
                out.push_str(&format!("  {:<9} {:<22} vs {:<17} {:>12} {:>12} {:>12}\n", q.scenario, q.measure, q.peer, rate, p50, p99));
            }
        }
        out
    }
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}K", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_ratios() {
        let l = Latency::of((1..=100).map(Duration::from_millis).collect());
        assert_eq!((l.count, l.p50_ms.round(), l.p99_ms.round(), l.max_ms), (100, 51.0, 99.0, 100.0));
        let row = |target: &str, rate: f64, p99_ms: f64| Row {
            scenario: "ingest".into(),
            target: target.into(),
            measure: "ingest".into(),
            rate: Some(rate),
            unit: "lines".into(),
            latency: Latency { count: 1, p50_ms: 1.0, p99_ms, max_ms: p99_ms },
            errors: 0,
            note: String::new(),
        };
        let mut r = Report { rows: vec![row("weir", 300.0, 5.0), row("victoria-metrics", 100.0, 10.0)], ratios: vec![] };
        r.compute_ratios();
        assert_eq!(r.ratios.len(), 1);
        assert_eq!((r.ratios[0].rate, r.ratios[0].p99), (Some(3.0), Some(0.5)));
        assert!(r.table().contains("3.00x rate"));
    }
}
