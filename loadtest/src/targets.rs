//! The servers under test: Weir and its peers, each started on a free loopback port with a
//! temporary data directory, and killed (directory removed) when dropped.
//!
//! It knows how to start each one, wait until it answers, and the URLs its write and query APIs
//! live at. It never generates load; the scenarios do.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Which server a target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Weir,
    VictoriaMetrics,
    Influx16,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Weir => "weir",
            Kind::VictoriaMetrics => "victoria-metrics",
            Kind::Influx16 => "influxdb-1.6",
        }
    }
}

/// The operator token of Weir targets started with auth on.
const LOADTEST_TOKEN: &str = "apiv3_weir-loadtest-operator-token";

/// The database (InfluxDB) every scenario writes to. VictoriaMetrics ignores it.
pub const DB: &str = "loadtest";

pub struct Target {
    pub kind: Kind,
    pub base: String,
    /// The token writes carry (Weir with auth on only).
    pub token: Option<String>,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Target {
    /// Weir at its default settings (1 s WAL flush, durable acks), but for `extra` flags.
    pub fn weir(bin: &Path, extra: &[String]) -> Result<Target> {
        Target::weir_in(bin, tempfile::tempdir()?, extra, false)
    }

    /// Kills Weir with SIGKILL, as a crash would, and starts it again on the same data; returns
    /// once it listens (which it does only after replaying its WAL).
    pub fn crash_and_restart(mut self, bin: &Path, extra: &[String]) -> Result<Target> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The directory moves to the new target; the old one must not delete it on drop.
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir()?);
        Target::weir_in(bin, dir, extra, self.token.is_some())
    }

    /// Weir with auth on: an operator token provisioned from a token file, sent with every write.
    pub fn weir_with_auth(bin: &Path, extra: &[String]) -> Result<Target> {
        Target::weir_in(bin, tempfile::tempdir()?, extra, true)
    }

    /// `auth`: on, with the operator token from a token file in `dir`; off: `--without-auth`,
    /// as the peers run without auth, so like is compared with like.
    fn weir_in(bin: &Path, dir: tempfile::TempDir, extra: &[String], auth: bool) -> Result<Target> {
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins)?;
        let mut auth_flags = vec!["--without-auth".to_string()];
        if auth {
            let file = dir.path().join("admin-token.json");
            std::fs::write(&file, serde_json::json!({ "token": LOADTEST_TOKEN, "name": "_admin" }).to_string())?;
            auth_flags = vec!["--admin-token-file".to_string(), file.display().to_string()];
        }
        let token = auth.then(|| LOADTEST_TOKEN.to_string());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("weir.log"))?;
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--http-bind")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--plugin-dir")
            .arg(&plugins)
            .arg("--log-filter")
            .arg("warn")
            .args(auth_flags)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let Some(rest) = line.strip_prefix("weir listening on ") {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        });
        // Long enough for a restart that replays a large WAL tail: that time is what the
        // restart scenario measures, and a failure shows the log rather than a timeout alone.
        let base = match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.path().join("weir.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
                bail!("weir did not start within 300 s (or exited); the end of its log:\n{}", tail.join("\n"));
            }
        };
        Ok(Target { kind: Kind::Weir, base, token, child, dir })
    }

    /// VictoriaMetrics from Debian's package, with its rollup cache off so that repeated
    /// queries do real work (Weir and InfluxDB 1.6 cache no results either).
    pub fn victoria_metrics() -> Result<Target> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let args = [
            format!("-storageDataPath={}", dir.path().join("data").display()),
            format!("-httpListenAddr=127.0.0.1:{port}"),
            "-retentionPeriod=100y".into(),
            "-search.disableCache".into(),
            "-loggerLevel=ERROR".into(),
        ];
        Target::start_peer(Kind::VictoriaMetrics, dir, port, "victoria-metrics", &args, "/health")
    }

    /// InfluxDB 1.6 from Debian's package, at its defaults but for directories, ports and its
    /// own logging and self-monitoring (off, as they would compete for the same cores).
    pub fn influx16() -> Result<Target> {
        let dir = tempfile::tempdir()?;
        let (port, rpc) = (free_port()?, free_port()?);
        let d = dir.path().display();
        let config = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n"
        );
        let conf_path = dir.path().join("influxdb.conf");
        std::fs::write(&conf_path, config)?;
        let args = ["-config".to_string(), conf_path.display().to_string()];
        let t = Target::start_peer(Kind::Influx16, dir, port, "influxd", &args, "/ping")?;
        let resp = ureq::post(&t.url("/query")).query("q", &format!("CREATE DATABASE {DB}")).call();
        resp.map_err(|e| anyhow!("creating the InfluxDB database: {e}"))?;
        Ok(t)
    }

    /// Starts a peer's `program` (logging to DIR/PROGRAM.log) listening on `port`, and waits
    /// until it answers `ready_path`.
    fn start_peer(kind: Kind, dir: tempfile::TempDir, port: u16, program: &str, args: &[String], ready_path: &str) -> Result<Target> {
        let log = std::fs::File::create(dir.path().join(format!("{program}.log")))?;
        let child = Command::new(find_bin(program)?)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {program} (scripts/install-peers.sh installs it)"))?;
        let t = Target { kind, base: format!("http://127.0.0.1:{port}"), token: None, child, dir };
        t.wait_ready(ready_path)?;
        Ok(t)
    }

    /// Puts `source` in the plugin dir as `NAME.py` and creates trigger NAME on `spec` (sync,
    /// errors logged), first writing one line so that the database exists.
    pub fn create_trigger(&self, name: &str, source: &str, spec: &str) -> Result<()> {
        self.create_trigger_with(name, source, spec, serde_json::json!({"run_async": false, "error_behavior": "log"}))
    }

    /// As `create_trigger`, with the trigger's settings given.
    pub fn create_trigger_with(&self, name: &str, source: &str, spec: &str, settings: serde_json::Value) -> Result<()> {
        std::fs::write(self.dir.path().join(format!("plugins/{name}.py")), source)?;
        ureq::post(&self.write_url()).send_string("probe,probe=warmup v=1i").map_err(|e| anyhow!("first write: {e}"))?;
        let body = serde_json::json!({
            "db": DB, "trigger_name": name, "plugin_filename": format!("{name}.py"),
            "trigger_specification": spec, "trigger_settings": settings,
        });
        ureq::post(&self.url("/api/v3/configure/processing_engine_trigger"))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
            .map_err(|e| anyhow!("creating trigger {name}: {e}"))?;
        Ok(())
    }

    pub fn start(kind: Kind, weir_bin: &Path, weir_flags: &[String]) -> Result<Target> {
        match kind {
            Kind::Weir => Target::weir(weir_bin, weir_flags),
            Kind::VictoriaMetrics => Target::victoria_metrics(),
            Kind::Influx16 => Target::influx16(),
        }
    }

    /// The server's process id (for RSS samples).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Runs `sql` on the load database and returns its rows as JSON.
    pub fn query(&self, sql: &str) -> Result<Vec<serde_json::Value>> {
        let text = ureq::get(&self.url("/api/v3/query_sql"))
            .query("db", DB)
            .query("q", sql)
            .timeout(std::time::Duration::from_secs(600))
            .call()
            .map_err(|e| anyhow!("query {sql:?}: {e}"))?
            .into_string()?;
        serde_json::from_str(&text).map_err(|e| anyhow!("query {sql:?}: {e}: {text}"))
    }

    /// Where line protocol goes: the InfluxDB 1.x `/write` endpoint all three speak.
    pub fn write_url(&self) -> String {
        let url = self.url(&format!("/write?db={DB}&precision=ns"));
        match &self.token {
            // Basic auth with the token as password, as InfluxDB 1.x clients send it.
            Some(t) => url.replacen("http://", &format!("http://loadtest:{t}@"), 1),
            None => url,
        }
    }

    /// Makes everything written so far visible to queries (VictoriaMetrics buffers for ~1 s;
    /// Weir and InfluxDB show a write once they have acked it).
    pub fn settle(&self) -> Result<()> {
        if self.kind == Kind::VictoriaMetrics {
            ureq::get(&self.url("/internal/force_flush")).call().map_err(|e| anyhow!("force_flush: {e}"))?;
            std::thread::sleep(Duration::from_secs(2));
        }
        Ok(())
    }

    /// Waits until Weir's `/metrics` shows `rows` rows in Parquet and an empty write buffer.
    pub fn wait_persisted(&self, rows: u64) -> Result<()> {
        let metric = |text: &str, name: &str| -> Option<f64> {
            text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if let Ok(text) = ureq::get(&self.url("/metrics")).call().map_err(|e| e.to_string()).and_then(|r| r.into_string().map_err(|e| e.to_string())) {
                if metric(&text, "weir_parquet_rows") >= Some(rows as f64) && metric(&text, "weir_write_buffer_bytes") == Some(0.0) {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("weir did not persist {rows} rows within 300 s (start it with a small --persist-threshold-bytes)")
    }

    fn wait_ready(&self, path: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if ureq::get(&self.url(path)).timeout(Duration::from_secs(1)).call().is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("{} did not answer {path} within 60 s; see the logs in {}", self.kind.label(), self.dir.path().display())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the OS had free a moment ago (peers take a fixed port, not port 0).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A program on PATH or in /usr/bin (Debian puts some servers where a user's PATH may not look).
pub fn find_bin(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{name} is not installed (bash scripts/install-peers.sh installs the peers)"))
}
