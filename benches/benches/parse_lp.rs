//! Line-protocol parsing throughput on TSBS cpu-only-style lines (10 tags, 10 float fields).
//!
//! Target (pipeline/src/lp.rs): ≥ 500 MB/s per core. Run with
//! `cargo bench -p weir-benches --bench parse_lp`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pipeline::lp::parse_lines;

/// `n` lines shaped like TSBS's cpu-only data set, over 100 hosts.
pub fn tsbs_cpu_lines(n: usize) -> String {
    let mut s = String::with_capacity(n * 330);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 10_000) as f64 / 100.0
    };
    for i in 0..n {
        let host = i % 100;
        s.push_str(&format!(
            "cpu,hostname=host_{host},region=eu-west-1,datacenter=eu-west-1a,rack={},os=Ubuntu16.04LTS,arch=x64,\
             team=NYC,service={},service_version=1,service_environment=production \
             usage_user={},usage_system={},usage_idle={},usage_nice={},usage_iowait={},usage_irq={},\
             usage_softirq={},usage_steal={},usage_guest={},usage_guest_nice={} {}\n",
            host % 87,
            host % 19,
            next(), next(), next(), next(), next(), next(), next(), next(), next(), next(),
            1_451_606_400_000_000_000u64 + i as u64 * 10_000_000_000
        ));
    }
    s
}

fn parse(c: &mut Criterion) {
    let body = tsbs_cpu_lines(10_000);
    let mut g = c.benchmark_group("parse_lp");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("tsbs_cpu_10k_lines", |b| {
        b.iter(|| {
            let mut fields = 0usize;
            for item in parse_lines(black_box(body.as_bytes())) {
                if let Ok(line) = item.parsed {
                    fields += line.fields.len();
                }
            }
            assert_eq!(fields, 100_000);
            fields
        })
    });
    g.finish();
    let mut g = c.benchmark_group("parse_lp_lines");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("tsbs_cpu_10k_lines", |b| b.iter(|| parse_lines(black_box(body.as_bytes())).count()));
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
