//! Counters and latency histograms of the write path, shared by all shards, rendered in the
//! Prometheus text format by the server's `/metrics`.
//!
//! Lock-free (relaxed atomics): a few adds per request or flush, never a lock on a shard.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bucket bounds in seconds, from 50 µs to 10 s.
pub const LATENCY_BUCKETS_S: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A cumulative histogram with fixed buckets.
pub struct Histogram {
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: LATENCY_BUCKETS_S.iter().map(|_| AtomicU64::new(0)).collect(), sum_ns: AtomicU64::new(0), count: AtomicU64::new(0) }
    }
}

impl Histogram {
    pub fn observe_ns(&self, ns: u64) {
        let s = ns as f64 / 1e9;
        if let Some(i) = LATENCY_BUCKETS_S.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_ns.fetch_add(ns, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The `q` quantile (0 to 1) as the upper bound in seconds of the bucket it falls in (so an
    /// over-estimate by at most one bucket); `None` before the first observation, infinity past
    /// the last bucket.
    pub fn quantile_upper_s(&self, q: f64) -> Option<f64> {
        let count = self.count.load(Relaxed);
        if count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut cumulative = 0;
        for (b, c) in LATENCY_BUCKETS_S.iter().zip(&self.counts) {
            cumulative += c.load(Relaxed);
            if cumulative >= rank {
                return Some(*b);
            }
        }
        Some(f64::INFINITY)
    }

    /// Appends the histogram as `name_bucket`, `name_sum`, `name_count`.
    pub fn render(&self, name: &str, help: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in LATENCY_BUCKETS_S.iter().zip(&self.counts) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let lb = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{lb} {}", self.sum_ns.load(Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{lb} {count}");
    }
}

/// Write-path counters.
#[derive(Default)]
pub struct WriteStats {
    pub requests: AtomicU64,
    pub lines: AtomicU64,
    pub rejected_lines: AtomicU64,
    pub bytes: AtomicU64,
    pub wal_flushes: AtomicU64,
    pub wal_flush_errors: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub wal_flush: Histogram,
}

pub fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
}

pub fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

impl WriteStats {
    pub fn render(&self, out: &mut String) {
        counter(out, "weir_write_requests_total", "Write requests received.", self.requests.load(Relaxed));
        counter(out, "weir_write_lines_total", "Lines accepted.", self.lines.load(Relaxed));
        counter(out, "weir_write_rejected_lines_total", "Lines refused.", self.rejected_lines.load(Relaxed));
        counter(out, "weir_write_bytes_total", "Line-protocol bytes received.", self.bytes.load(Relaxed));
        counter(out, "weir_wal_flushes_total", "WAL records written and synced.", self.wal_flushes.load(Relaxed));
        counter(out, "weir_wal_flush_errors_total", "WAL flushes that failed.", self.wal_flush_errors.load(Relaxed));
        counter(out, "weir_wal_bytes_total", "Bytes written to the WAL.", self.wal_bytes.load(Relaxed));
        self.wal_flush.render("weir_wal_flush_duration_seconds", "Durable (O_DSYNC) write of one WAL record.", "", out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe_ns(40_000);
        h.observe_ns(2_000_000);
        h.observe_ns(60_000_000_000);
        let mut out = String::new();
        h.render("x", "help", "", &mut out);
        assert!(out.contains("x_bucket{le=\"0.00005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.0025\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"));
    }

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let h = Histogram::default();
        assert_eq!(h.quantile_upper_s(0.5), None);
        for _ in 0..98 {
            h.observe_ns(300_000); // 0.3 ms: the 0.5 ms bucket
        }
        h.observe_ns(40_000_000); // 40 ms: the 50 ms bucket
        h.observe_ns(60_000_000_000); // a minute: past every bucket
        assert_eq!(h.quantile_upper_s(0.5), Some(0.0005));
        assert_eq!(h.quantile_upper_s(0.99), Some(0.05));
        assert_eq!(h.quantile_upper_s(1.0), Some(f64::INFINITY));
    }
}
