//! Shared inputs for the criterion benches of Weir's hot paths.

/// `n` lines shaped like TSBS's cpu-only data set (10 tags, 10 float fields) over 100 hosts.
pub fn tsbs_cpu_lines(n: usize) -> String {
    tsbs_cpu_lines_over(n, 100)
}

/// `n` TSBS cpu-only lines cycling through `hosts` hosts (`hosts >= n`: every line a new series).
pub fn tsbs_cpu_lines_over(n: usize, hosts: usize) -> String {
    let hosts = hosts.max(1);
    let mut s = String::with_capacity(n * 370);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 10_000) as f64 / 100.0
    };
    for i in 0..n {
        let host = i % hosts;
        s.push_str(&format!(
            "cpu,hostname=host_{host},region=eu-west-1,datacenter=eu-west-1a,rack={},os=Ubuntu16.04LTS,arch=x64,\
             team=NYC,service={},service_version=1,service_environment=production \
             usage_user={},usage_system={},usage_idle={},usage_nice={},usage_iowait={},usage_irq={},\
             usage_softirq={},usage_steal={},usage_guest={},usage_guest_nice={} {}\n",
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
            1_451_606_400_000_000_000u64 + i as u64 * 10_000_000_000
        ));
    }
    s
}

/// A plugin directory for engine benches, with a venv holding pyarrow (installed once, kept
/// under `target/` so later runs reuse it).
pub fn bench_plugin_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-plugins");
    std::fs::create_dir_all(&dir).expect("bench plugin dir");
    let dir = std::fs::canonicalize(dir).expect("canonical plugin dir");
    if !dir.join(".venv/lib/python3.11/site-packages/pyarrow").exists() {
        eprintln!("installing pyarrow into {} (once)", dir.display());
        let policy = weir::engine::packages::PackagePolicy { enabled: true, timeout: std::time::Duration::from_secs(900), system_site_packages: false };
        weir::engine::packages::install(&dir, weir::engine::packages::Install::Packages(vec!["pyarrow".into()]), policy)
            .expect("pyarrow installs");
    }
    dir
}
