//! TSBS cpu-only-style line protocol: measurement `cpu`, 10 tags, 10 float fields, one line per
//! host per 10 s tick.
//!
//! Formatting ~370 bytes a line would cost the load generator as much CPU as a server spends
//! parsing it, on a machine with two cores for both. So a batch is formatted once as a
//! template, and each send only rewrites its fixed-width (19-digit) timestamps in place.

/// Ten seconds between a host's points, as TSBS does.
pub const STEP_NS: i64 = 10_000_000_000;

pub struct Batch {
    body: Vec<u8>,
    /// Where each line's 19-digit timestamp starts.
    stamps: Vec<usize>,
    hosts: usize,
}

impl Batch {
    /// `lines` lines cycling through `hosts` hosts (line `j` is host `j % hosts`), with field
    /// values drawn from `seed`.
    pub fn new(lines: usize, hosts: usize, seed: u64) -> Batch {
        let hosts = hosts.max(1);
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f64 / 100.0
        };
        let mut body = Vec::with_capacity(lines * 380);
        let mut stamps = Vec::with_capacity(lines);
        for j in 0..lines {
            let host = j % hosts;
            let line = format!(
                "cpu,hostname=host_{host},region=eu-west-{},datacenter=eu-west-1{},rack={},os=Ubuntu16.04LTS,arch=x64,\
                 team=NYC,service={},service_version=1,service_environment=production \
                 usage_user={},usage_system={},usage_idle={},usage_nice={},usage_iowait={},usage_irq={},\
                 usage_softirq={},usage_steal={},usage_guest={},usage_guest_nice={} ",
                host % 3,
                ["a", "b", "c"][host % 3],
                host % 87,
                host % 19,
                next(),
                next(),
                next(),
                next(),
                next(),
                next(),
                next(),
                next(),
                next(),
                next(),
            );
            body.extend_from_slice(line.as_bytes());
            stamps.push(body.len());
            body.extend_from_slice(b"1000000000000000000\n");
        }
        Batch { body, stamps, hosts }
    }

    /// Stamps the batch as ticks `first_tick..` (each `step_ns` apart) after `t0_ns` and
    /// returns the body to send.
    pub fn stamp(&mut self, t0_ns: i64, step_ns: i64, first_tick: u64) -> &[u8] {
        // Every host of a tick shares its timestamp: format it once a tick, copy it per line
        // (digit by digit per line, this was over 1% of the machine's time in a load test).
        let mut digits = [0u8; 19];
        for (k, stamps) in self.stamps.chunks(self.hosts).enumerate() {
            write_19(&mut digits, t0_ns + (first_tick + k as u64) as i64 * step_ns);
            for &at in stamps {
                self.body[at..at + 19].copy_from_slice(&digits);
            }
        }
        &self.body
    }

    /// Ticks one batch covers.
    pub fn ticks(&self) -> u64 {
        self.stamps.len().div_ceil(self.hosts) as u64
    }

    pub fn lines(&self) -> usize {
        self.stamps.len()
    }
}

/// Writes `v` (a nanosecond time between 2001 and 2286: always 19 digits) into `out`.
fn write_19(out: &mut [u8], mut v: i64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Now, in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_batches_are_tsbs_lines_with_advancing_times() {
        let mut b = Batch::new(5, 2, 7);
        let t0 = 1_700_000_000_000_000_000;
        let body = String::from_utf8(b.stamp(t0, STEP_NS, 4).to_vec()).expect("utf-8");
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(b.ticks(), 3);
        let times: Vec<i64> = lines.iter().map(|l| l.rsplit(' ').next().and_then(|t| t.parse().ok()).expect("time")).collect();
        let tick = |k: i64| t0 + k * STEP_NS;
        assert_eq!(times, vec![tick(4), tick(4), tick(5), tick(5), tick(6)]);
        assert!(lines[0].starts_with("cpu,hostname=host_0,"));
        assert!(lines[1].starts_with("cpu,hostname=host_1,"));
        assert_eq!(lines[0].split(' ').nth(1).map(|f| f.split(',').count()), Some(10));
        assert_eq!(lines[0].split(' ').next().map(|k| k.split(',').count()), Some(11));
    }
}
