//! Samples a process's resident memory (`VmRSS` in `/proc/PID/status`) once a second while a
//! scenario runs, so a soak shows whether memory stays flat. It only reads `/proc`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<u64>>,
}

/// RSS over a run: peak, and at each quarter of it (to see a trend), in bytes.
#[derive(Clone, Debug)]
pub struct Summary {
    pub peak: u64,
    pub quarters: [u64; 4],
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gb = |b: u64| b as f64 / 1e9;
        let [a, b, c, d] = self.quarters.map(gb);
        write!(f, "RSS GB at 1/4, 1/2, 3/4, end: {a:.2}, {b:.2}, {c:.2}, {d:.2} (peak {:.2})", gb(self.peak))
    }
}

/// The resident set of `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(b) = rss_bytes(pid) {
                    samples.push(b);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            samples
        });
        Sampler { stop, thread }
    }

    pub fn finish(self) -> Option<Summary> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().ok()?;
        summarize(&samples)
    }
}

fn summarize(samples: &[u64]) -> Option<Summary> {
    let last = samples.len().checked_sub(1)?;
    let at = |q: usize| samples[(last * q) / 4];
    Some(Summary { peak: samples.iter().copied().max()?, quarters: [at(1), at(2), at(3), at(4)] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters_and_peak_of_a_run() {
        let s = summarize(&[1, 2, 9, 4, 5]).unwrap();
        assert_eq!(s.peak, 9);
        assert_eq!(s.quarters, [2, 9, 4, 5]);
        assert!(summarize(&[]).is_none());
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
