//! Starts the real `weir` binary on a free loopback port and talks to it over HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_weir");

/// The binary servers are started from: `WEIR_TEST_BIN` if set (a copy, so that a long run such
/// as `scripts/crash-loop.sh` is not changed under it by a rebuild), else the one cargo built.
fn server_bin() -> std::ffi::OsString {
    std::env::var_os("WEIR_TEST_BIN").unwrap_or_else(|| BIN.into())
}

/// The operator token every test server is started with (through `--admin-token-file`, as a
/// deployment would), unless the test passes `--without-auth` or its own token file. Every
/// request [`send`] makes carries it unless it sets its own `Authorization`.
pub const TOKEN: &str = "apiv3_weir-test-suite-operator-token";

/// The `Authorization` header value for [`TOKEN`].
pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    /// Held so the directory lives as long as the server (None when the caller owns it).
    _temp: Option<tempfile::TempDir>,
    pub stderr_path: PathBuf,
}

impl Server {
    /// A server on a fresh data directory.
    pub fn start(extra: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut s = Server::start_in(temp.path(), extra);
        s._temp = Some(temp);
        s
    }

    /// A server on `dir` (which may hold an earlier server's data).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        Server::start_in_with(dir, extra, |_| {})
    }

    /// A server with auth on and no token at all, as a fresh install starts.
    pub fn start_unprovisioned(extra: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut s = Server::launch(temp.path(), extra, |_| {}, false);
        s._temp = Some(temp);
        s
    }

    /// As `start_in`, with `configure` applied to the command first (limits, environment).
    pub fn start_in_with(dir: &Path, extra: &[&str], configure: impl FnOnce(&mut Command)) -> Server {
        Server::launch(dir, extra, configure, true)
    }

    fn launch(dir: &Path, extra: &[&str], configure: impl FnOnce(&mut Command), provision: bool) -> Server {
        let data = dir.join("data");
        let plugins = dir.join("plugins");
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr_path = dir.join(format!("weir-{n}.log"));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr log");
        let mut cmd = Command::new(server_bin());
        cmd.arg("serve")
            .arg("--http-bind")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data)
            .arg("--plugin-dir")
            .arg(&plugins)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if provision && !extra.iter().any(|a| *a == "--without-auth" || *a == "--admin-token-file") {
            let file = dir.join("admin-token.json");
            std::fs::write(&file, serde_json::json!({ "token": TOKEN, "name": "_admin" }).to_string()).expect("token file");
            cmd.arg("--admin-token-file").arg(file);
        }
        configure(&mut cmd);
        if !extra.contains(&"--wal-flush-interval") {
            // Tests wait for trigger events; a short clock keeps them quick.
            cmd.arg("--wal-flush-interval").arg("10ms");
        }
        let mut child = cmd.spawn().expect("start weir");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(rest) = line.strip_prefix("weir listening on ") {
                    let url = rest.split_whitespace().next().unwrap_or_default().to_string();
                    let _ = tx.send(url);
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!("weir did not start within 60 s; its log:\n{log}");
            }
        };
        Server { child, base, data_dir: data, _temp: None, stderr_path }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        sigterm(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// POSTs line protocol to `path` (with its query string); returns status and body.
    pub fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        send(ureq::post(&self.url(path)), Some(body))
    }

    pub fn write(&self, db: &str, body: &str) -> (u16, String) {
        self.post(&format!("/api/v3/write_lp?db={db}"), body.as_bytes())
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        send(ureq::get(&self.url(path)), None)
    }

    /// Runs SQL and returns the JSON rows; panics on an error status.
    pub fn query(&self, db: &str, sql: &str) -> Vec<serde_json::Value> {
        let body = serde_json::json!({ "db": db, "q": sql }).to_string();
        let (status, text) = send(ureq::post(&self.url("/api/v3/query_sql")).set("Content-Type", "application/json"), Some(body.as_bytes()));
        assert_eq!(status, 200, "query {sql:?} failed: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON {text:?}: {e}"))
    }

    /// The server's plugin directory (it exists once the server started).
    pub fn plugin_dir(&self) -> PathBuf {
        self.data_dir.parent().expect("data dir has a parent").join("plugins")
    }

    /// Copies `plugins/examples/NAME` of the repository into the plugin directory.
    pub fn add_example(&self, name: &str) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/examples").join(name);
        std::fs::copy(&src, self.plugin_dir().join(name)).unwrap_or_else(|e| panic!("copying {}: {e}", src.display()));
    }

    /// Writes a plugin file into the plugin directory.
    pub fn add_plugin(&self, name: &str, source: &str) {
        let path = self.plugin_dir().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("plugin subdirectory");
        }
        std::fs::write(path, source).expect("writing plugin");
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> (u16, String) {
        send(ureq::post(&self.url(path)).set("Content-Type", "application/json"), Some(body.to_string().as_bytes()))
    }

    pub fn delete_json(&self, path: &str, body: &serde_json::Value) -> (u16, String) {
        send(ureq::delete(&self.url(path)).set("Content-Type", "application/json"), Some(body.to_string().as_bytes()))
    }

    /// Creates a trigger; panics unless the server accepts it.
    pub fn create_trigger(&self, db: &str, name: &str, plugin: &str, spec: &str, args: Option<serde_json::Value>, settings: serde_json::Value) {
        let (status, body) = self.post_json(
            "/api/v3/configure/processing_engine_trigger",
            &serde_json::json!({
                "db": db, "trigger_name": name, "plugin_filename": plugin,
                "trigger_specification": spec, "trigger_arguments": args, "trigger_settings": settings,
            }),
        );
        assert_eq!(status, 200, "creating trigger {name}: {body}");
    }

    /// The processing-engine log of `db` as (trigger, level, text), oldest first.
    pub fn engine_logs(&self, db: &str) -> Vec<(String, String, String)> {
        self.query(db, "SELECT trigger_name, log_level, log_text FROM system.processing_engine_logs ORDER BY event_time")
            .into_iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (s("trigger_name"), s("log_level"), s("log_text"))
            })
            .collect()
    }

    /// Runs SQL and returns rows, or None while the database or table does not exist yet.
    pub fn try_query(&self, db: &str, sql: &str) -> Option<Vec<serde_json::Value>> {
        let body = serde_json::json!({ "db": db, "q": sql }).to_string();
        let (status, text) = send(ureq::post(&self.url("/api/v3/query_sql")).set("Content-Type", "application/json"), Some(body.as_bytes()));
        if status != 200 {
            return None;
        }
        serde_json::from_str(&text).ok()
    }

    /// Polls `sql` until it returns at least one row (the table may not exist yet); panics after
    /// `secs` seconds.
    pub fn wait_rows(&self, secs: u64, db: &str, sql: &str) -> Vec<serde_json::Value> {
        wait_for(secs, sql, || self.try_query(db, sql).filter(|r| !r.is_empty()))
    }

    pub fn count(&self, db: &str, table: &str) -> i64 {
        let rows = self.query(db, &format!("SELECT count(*) AS n FROM {table}"));
        rows[0]["n"].as_i64().expect("count")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn send(req: ureq::Request, body: Option<&[u8]>) -> (u16, String) {
    let req = if req.header("Authorization").is_none() { req.set("Authorization", &bearer()) } else { req };
    send_as_is(req, body)
}

/// As [`send`], without adding a token.
pub fn send_as_is(req: ureq::Request, body: Option<&[u8]>) -> (u16, String) {
    let req = req.timeout(Duration::from_secs(60));
    let res = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    match res {
        Ok(r) => {
            let status = r.status();
            let mut s = String::new();
            let _ = r.into_reader().read_to_string(&mut s);
            (status, s)
        }
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("request failed: {e}"),
    }
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

/// Polls `f` until it returns Some, or panics with `what` after `secs` seconds.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `script` with the test python; answers whether it succeeded, and its stdout and stderr.
pub fn run_python(script: &str) -> (bool, String, String) {
    let out = Command::new(test_python()).arg("-c").arg(script).output().expect("run the test python");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

impl Server {
    /// The port the server listens on.
    pub fn port(&self) -> String {
        self.base.rsplit(':').next().expect("the base URL has a port").to_string()
    }

    /// Runs a client `script` that prints `ok` when all its checks pass; panics with its output
    /// and this server's log otherwise.
    pub fn python_prints_ok(&self, script: &str) {
        let (ok, out, err) = run_python(script);
        assert!(ok && out.trim() == "ok", "{out}\n{err}\nserver log:\n{}", self.log());
    }
}

/// A fresh venv with pyarrow and moto, made by scripts/test.sh (`WEIR_TEST_PYTHON` names its python).
pub fn test_python() -> PathBuf {
    let p = std::env::var_os("WEIR_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python"));
    assert!(p.exists(), "{} is missing: run scripts/test.sh, which makes the test venv", p.display());
    p
}

/// Starts the binary on `dir` expecting it to refuse; returns its stderr.
pub fn start_fails(dir: &Path, extra: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .arg("serve")
        .args(["--http-bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--plugin-dir")
        .arg(dir.join("plugins"))
        .args(extra)
        .output()
        .expect("test setup");
    assert!(!out.status.success(), "the server started: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A small deterministic generator (xorshift), so a failure can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn bytes(&mut self, n: usize, alphabet: &[u8]) -> Vec<u8> {
        (0..n).map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize]).collect()
    }
}
